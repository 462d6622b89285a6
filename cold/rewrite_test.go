package cold

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/tiers"
)

// putV1 writes recs as a format 1.2 object (what tierd wrote before format
// 2) at key and returns the segment's catalog metadata.
func putV1(t *testing.T, b objstore.Bucket, key, stream string, recs []tiers.Record) tiers.SegmentMeta {
	t.Helper()
	var buf bytes.Buffer
	info, err := pqfile.Write(context.Background(), &buf, stream, seqOf(recs), pqfile.Options{Version: 1, SealedAt: time.Unix(1e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), key, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		t.Fatal(err)
	}
	m := info.Meta
	m.SealedAt = time.Unix(1e9, 0)
	m.Placements = tiers.Of(tiers.Cold)
	return m
}

func objectVersion(t *testing.T, b objstore.Bucket, key string) string {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := pqfile.Open(context.Background(), bytes.NewReader(body), int64(len(body)), key)
	if err != nil {
		t.Fatal(err)
	}
	return r.FormatVersion()
}

// TestRewriteFormat1: a format 1.2 object (at its key, or at the legacy key
// of an encoded stream name) becomes a format 2 object at the segment's
// key holding the same records; the legacy object goes; a second Rewrite
// does nothing.
func TestRewriteFormat1(t *testing.T) {
	ctx := context.Background()
	b, err := objstore.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tier, err := New(Options{Bucket: b, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	for _, c := range []struct {
		stream string
		legacy bool
	}{{"orders", false}, {"2026", true}} {
		t.Run(c.stream, func(t *testing.T) {
			var recs []tiers.Record
			for i := range 50 {
				r := tiers.Record{Offset: 7 + uint64(i), TS: 1e18 + int64(i)*1001, Key: fmt.Sprint(i % 4)}
				if i%3 == 0 {
					r.Value = []byte{0xff, byte(i)}
				} else {
					r.Value = fmt.Appendf(nil, `{"px":%d}`, i)
				}
				recs = append(recs, r)
			}
			probe := tiers.SegmentMeta{Stream: c.stream, Base: 7, Last: 56, MinTS: recs[0].TS}
			at := ObjectKey(probe)
			if c.legacy {
				at = LegacyObjectKey(probe)
				if at == ObjectKey(probe) {
					t.Fatalf("%s has no legacy key", c.stream)
				}
			}
			m := putV1(t, b, at, c.stream, recs)
			if v := objectVersion(t, b, at); v != "1.2" {
				t.Fatalf("fixture is format %s", v)
			}
			did, err := tier.Rewrite(ctx, m)
			if err != nil || !did {
				t.Fatalf("Rewrite: %v, %v", did, err)
			}
			if v := objectVersion(t, b, ObjectKey(m)); v != "2.0" {
				t.Fatalf("after Rewrite the object is format %s", v)
			}
			if c.legacy {
				if _, err := b.Stat(ctx, at); !errors.Is(err, objstore.ErrNotFound) {
					t.Fatalf("legacy object still there: %v", err)
				}
			}
			var got []tiers.Record
			for r, err := range tier.Scan(ctx, m, tiers.AllRecords()) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, r)
			}
			if !slices.EqualFunc(got, recs, func(a, b tiers.Record) bool {
				return a.Offset == b.Offset && a.TS == b.TS && a.Key == b.Key && bytes.Equal(a.Value, b.Value) && len(a.Tags) == len(b.Tags)
			}) {
				t.Fatalf("records differ after Rewrite")
			}
			if err := tier.Verify(ctx, m); err != nil {
				t.Fatal(err)
			}
			if did, err := tier.Rewrite(ctx, m); err != nil || did {
				t.Fatalf("second Rewrite: %v, %v, want nothing done", did, err)
			}
		})
	}
}

// TestRewriteRefusesDamage: a format 1.2 object whose rows fail their
// checks is not rewritten (the error is corruption) and stays as it was.
func TestRewriteRefusesDamage(t *testing.T) {
	ctx := context.Background()
	b, err := objstore.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tier, err := New(Options{Bucket: b, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	var recs []tiers.Record
	for i := range 200 {
		recs = append(recs, tiers.Record{Offset: uint64(i), TS: 1e18 + int64(i), Value: bytes.Repeat([]byte{byte(i)}, 64)})
	}
	m := putV1(t, b, ObjectKey(tiers.SegmentMeta{Stream: "s", Base: 0, Last: 199, MinTS: 1e18}), "s", recs)
	// The catalog's digest is what the rows must hash to: a catalog that
	// disagrees with the object stands for damage the footer hides.
	bad := m
	bad.Digest[0] ^= 1
	var ce *tiers.CorruptionError
	if _, err := tier.Rewrite(ctx, bad); !errors.As(err, &ce) {
		t.Fatalf("Rewrite of a segment whose object differs: %v, want corruption", err)
	}
	if v := objectVersion(t, b, ObjectKey(m)); v != "1.2" {
		t.Fatalf("object became format %s", v)
	}
}
