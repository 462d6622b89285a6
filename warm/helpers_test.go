package warm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// genRecords returns n records with dense offsets from base: keys from a
// small set (some empty), 0–3 tags, values empty, small or large, and ts
// jittered so they are out of order.
func genRecords(seed uint64, base uint64, n int) []tiers.Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	keys := []string{"", "alpha", "beta", "gamma", "IF2406", "ключ"}
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("k-%d", i))
	}
	tagSet := []string{"buy", "sell", "fill", "cancel", "x"}
	recs := make([]tiers.Record, n)
	for i := range recs {
		r := &recs[i]
		r.Offset = base + uint64(i)
		r.TS = 1_700_000_000_000_000_000 + int64(i)*1000 + rng.Int64N(100_000) - 50_000
		r.Key = keys[rng.IntN(len(keys))]
		for range rng.IntN(4) {
			r.Tags = append(r.Tags, tagSet[rng.IntN(len(tagSet))])
		}
		switch p := rng.IntN(100); {
		case p < 10: // empty value
		case p < 11:
			r.Value = make([]byte, 200<<10+rng.IntN(1000))
		default:
			r.Value = make([]byte, rng.IntN(300))
		}
		for j := range r.Value {
			r.Value[j] = byte(rng.Uint32())
		}
	}
	return recs
}

// commitSegment writes recs as one segment and returns its meta.
func commitSegment(t testing.TB, s *Store, stream string, recs []tiers.Record) tiers.SegmentMeta {
	t.Helper()
	w, err := s.Create(stream, recs[0].Offset)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer w.Abort()
	for i := range recs {
		if err := w.Append(&recs[i]); err != nil {
			t.Fatalf("Append %d: %v", recs[i].Offset, err)
		}
	}
	meta, err := w.Commit(context.Background())
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return meta
}

func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func acquire(t testing.TB, s *Store, stream string, base uint64) *Reader {
	t.Helper()
	r, err := s.Acquire(stream, base)
	if err != nil {
		t.Fatalf("Acquire(%s, %d): %v", stream, base, err)
	}
	t.Cleanup(r.Release)
	return r
}

// collect drains a scan, returning the records and the first error.
func collect(r *Reader, q tiers.Query) ([]tiers.Record, error) {
	var out []tiers.Record
	for rec, err := range r.Scan(q) {
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func filter(recs []tiers.Record, q tiers.Query) []tiers.Record {
	var out []tiers.Record
	for i := range recs {
		if q.Match(&recs[i]) {
			out = append(out, recs[i])
		}
	}
	return out
}

func digestOf(recs []tiers.Record) tiers.Digest {
	d := tiers.NewDigester()
	for i := range recs {
		d.Add(&recs[i])
	}
	return d.Sum()
}

func sameRecords(t *testing.T, what string, got, want []tiers.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !got[i].Equal(&want[i]) {
			t.Fatalf("%s: record %d (offset %d) differs from offset %d", what, i, got[i].Offset, want[i].Offset)
		}
	}
}

// asCorruption returns err as a CorruptionError or fails the test.
func asCorruption(t *testing.T, what string, err error) *tiers.CorruptionError {
	t.Helper()
	var ce *tiers.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: error %v is not a *tiers.CorruptionError", what, err)
	}
	return ce
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func allQuery() tiers.Query { return tiers.AllRecords() }
