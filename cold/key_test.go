package cold

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// oddNames are stream names an engine reading Hive partitions would take
// for something else than the string if written raw, and ordinary ones.
var oddNames = map[string]string{
	"NULL":       "%4EULL",
	"null":       "%6Eull",
	"Null":       "%4Eull",
	"2026":       "%32026",
	"000001":     "%3000001",
	"1e5":        "%31e5",
	"2026-01-01": "%32026-01-01",
	"0x1F":       "%30x1F",
	"inf":        "%69nf",
	"Infinity":   "%49nfinity",
	"epoch":      "%65poch",
	"true":       "true",
	"NaN":        "NaN",
	"IF2406":     "IF2406",
	"a.b_c-d":    "a.b_c-d",
	"nulls":      "nulls",
}

// TestEscapeStream: the names engines would misread get their first
// character percent-encoded, the others stay as they are, and a key of
// either form parses back to the name, with the raw form of an encoded
// name marked legacy.
func TestEscapeStream(t *testing.T) {
	for name, want := range oddNames {
		if got := EscapeStream(name); got != want {
			t.Errorf("EscapeStream(%q) = %q, want %q", name, got, want)
		}
		m := tiers.SegmentMeta{Stream: name, Base: 7, Last: 9, MinTS: time.Date(2026, 1, 2, 23, 0, 0, 0, time.UTC).UnixNano()}
		key := ObjectKey(m)
		if wantKey := "stream=" + want + "/date=2026-01-02/00000000000000000007-00000000000000000009.parquet"; key != wantKey {
			t.Errorf("ObjectKey = %q, want %q", key, wantKey)
		}
		for _, k := range []string{key, LegacyObjectKey(m)} {
			p, ok := parseKey(k)
			if !ok || p.stream != name || p.base != 7 || p.last != 9 || p.legacy != (k != key) {
				t.Errorf("parseKey(%q) = %+v, %v", k, p, ok)
			}
			if !IsObjectKeyOf(k, m) {
				t.Errorf("IsObjectKeyOf(%q, %s) = false", k, name)
			}
			km, ok := KeySegment(k)
			if !ok || !IsObjectKeyOf(k, km) || ObjectKey(km) != key {
				t.Errorf("KeySegment(%q) = %+v, %v", k, km, ok)
			}
		}
	}
	for _, key := range []string{
		"stream=%41BC/date=2026-01-02/00000000000000000007-00000000000000000009.parquet",  // 'A' needs no encoding
		"stream=%4eULL/date=2026-01-02/00000000000000000007-00000000000000000009.parquet", // lower-case hex
		"stream=%4/date=2026-01-02/00000000000000000007-00000000000000000009.parquet",
		"stream=%/date=2026-01-02/00000000000000000007-00000000000000000009.parquet",
		"stream=%ZZab/date=2026-01-02/00000000000000000007-00000000000000000009.parquet",
		"stream=%2Eab/date=2026-01-02/00000000000000000007-00000000000000000009.parquet", // ".ab" is no name
		"stream=%C3%A9/date=2026-01-02/00000000000000000007-00000000000000000009.parquet",
		"stream=NULL/date=2026-13-02/00000000000000000007-00000000000000000009.parquet",
		"stream=NULL/date=x/00000000000000000007-00000000000000000009.parquet",
		"stream=/date=2026-01-02/00000000000000000007-00000000000000000009.parquet",
		"_iceberg/tierd/s/metadata/00000-abc.metadata.json",
		"_iceberg/stream=s/date=2026-01-02/00000000000000000007-00000000000000000009.parquet",
		"_journal/node-1/00000000000000000001.journal",
	} {
		if _, _, _, ok := ParseObjectKey(key); ok {
			t.Errorf("ParseObjectKey(%q) accepted a key no release writes", key)
		}
	}
}

// FuzzParseObjectKey: whatever a listing returns, ParseObjectKey never
// panics, and a key it accepts is exactly ObjectKey or LegacyObjectKey of
// the segment it names.
func FuzzParseObjectKey(f *testing.F) {
	for name := range oddNames {
		m := tiers.SegmentMeta{Stream: name, Base: 1, Last: 2, MinTS: 1e18}
		f.Add(ObjectKey(m))
		f.Add(LegacyObjectKey(m))
	}
	f.Add("_journal/x")
	f.Fuzz(func(t *testing.T, key string) {
		m, ok := KeySegment(key)
		s, b, l, ok2 := ParseObjectKey(key)
		if ok != ok2 || (ok && (s != m.Stream || b != m.Base || l != m.Last)) {
			t.Fatalf("KeySegment and ParseObjectKey disagree on %q", key)
		}
		if ok && key != ObjectKey(m) && key != LegacyObjectKey(m) {
			t.Fatalf("accepted %q, which is neither %q nor %q", key, ObjectKey(m), LegacyObjectKey(m))
		}
	})
}

// uploadSegment stores a segment of n records of stream s through Upload and
// returns its catalog metadata.
func uploadSegment(t *testing.T, tier *Tier, stream string, n int) tiers.SegmentMeta {
	t.Helper()
	recs := make([]tiers.Record, n)
	d := tiers.NewDigester()
	m := tiers.SegmentMeta{Stream: stream, Base: 100, Last: 100 + uint64(n) - 1, Count: uint64(n), MinTS: math.MaxInt64, MaxTS: math.MinInt64, SealedAt: time.Unix(1e9, 0)}
	for i := range recs {
		recs[i] = tiers.Record{Offset: 100 + uint64(i), TS: 1e18 + int64(i), Key: fmt.Sprintf("k%d", i%3), Value: []byte(fmt.Sprint(i))}
		d.Add(&recs[i])
		m.MinTS, m.MaxTS = min(m.MinTS, recs[i].TS), max(m.MaxTS, recs[i].TS)
	}
	m.Digest = d.Sum()
	seq := func(yield func(tiers.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
	if _, err := tier.Upload(context.Background(), m, seq); err != nil {
		t.Fatal(err)
	}
	return m
}

// moveObject moves an object to another key of the bucket.
func moveObject(t *testing.T, b objstore.Bucket, from, to string) {
	t.Helper()
	ctx := context.Background()
	rc, err := b.Get(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, to, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, from); err != nil {
		t.Fatal(err)
	}
}

// TestLegacyKeyStaysServed: a segment object written by an earlier release
// at the raw key of a name now encoded (stream=NULL/…) is still read,
// verified, checked, listed (as the stream's and as a segment), described
// for a catalog rebuild, kept by a new upload (no second copy) and deleted.
func TestLegacyKeyStaysServed(t *testing.T) {
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
	for _, name := range []string{"NULL", "2026", "000001"} {
		t.Run(name, func(t *testing.T) {
			m := uploadSegment(t, tier, name, 40)
			key, legacy := ObjectKey(m), LegacyObjectKey(m)
			if !strings.HasPrefix(key, "stream=%") || key == legacy {
				t.Fatalf("ObjectKey %q, legacy %q", key, legacy)
			}
			moveObject(t, b, key, legacy)
			tier.cache.drop(key)

			n := 0
			for _, err := range tier.Scan(ctx, m, tiers.AllRecords()) {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != 40 {
				t.Fatalf("scanned %d records at the legacy key, want 40", n)
			}
			if err := tier.Verify(ctx, m); err != nil {
				t.Fatalf("verify at the legacy key: %v", err)
			}
			size, err := tier.Check(ctx, m)
			if err != nil || size <= 0 {
				t.Fatalf("check at the legacy key: %d, %v", size, err)
			}
			var listed []Object
			for o, err := range tier.Objects(ctx, name) {
				if err != nil {
					t.Fatal(err)
				}
				listed = append(listed, o)
			}
			if len(listed) != 1 || listed[0].Key != legacy || !listed[0].Segment || !listed[0].Legacy || listed[0].Stream != name || listed[0].Base != m.Base {
				t.Fatalf("Objects(%q) = %+v, want the legacy object", name, listed)
			}
			got, err := tier.ObjectMeta(ctx, legacy)
			if err != nil || got.Stream != name || got.Digest != m.Digest {
				t.Fatalf("ObjectMeta(%q) = %+v, %v", legacy, got, err)
			}
			// A re-run upload (an intent finished after an upgrade) keeps
			// the legacy object rather than writing a second one.
			if again, err := tier.Upload(ctx, m, func(func(tiers.Record, error) bool) {}); err != nil || again != size {
				t.Fatalf("upload over the legacy object: %d, %v", again, err)
			}
			if _, err := b.Stat(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("upload wrote %s beside the legacy object: %v", key, err)
			}
			if err := tier.Delete(ctx, m); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Stat(ctx, legacy); !errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("after Delete the legacy object is still there: %v", err)
			}
			if _, err := tier.Check(ctx, m); !errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("check after delete: %v, want not found", err)
			}
		})
	}
}

// TestObjectsListsBothPrefixes: a stream with objects at the encoded and
// the legacy prefix lists both, in key order, and a listing of every
// stream parses both.
func TestObjectsListsBothPrefixes(t *testing.T) {
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
	old := uploadSegment(t, tier, "2026", 10)
	moveObject(t, b, ObjectKey(old), LegacyObjectKey(old))
	cur := old
	cur.Base, cur.Last = 200, 209
	put := func(key string) {
		if err := b.Put(ctx, key, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	put(ObjectKey(cur))
	put(LegacyObjectKey(tiers.SegmentMeta{Stream: "20260", Base: 1, Last: 1})) // another stream, same prefix text
	var keys []string
	for o, err := range tier.Objects(ctx, "2026") {
		if err != nil {
			t.Fatal(err)
		}
		if !o.Segment || o.Stream != "2026" {
			t.Errorf("listed %+v", o)
		}
		keys = append(keys, o.Key)
	}
	want := []string{ObjectKey(cur), LegacyObjectKey(old)}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("Objects(2026) = %v, want %v", keys, want)
	}
	n := 0
	for o, err := range tier.Objects(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		if !o.Segment {
			t.Errorf("%s not parsed as a segment", o.Key)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("listed %d objects, want 3", n)
	}
}
