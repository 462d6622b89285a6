package warm

import (
	"testing"

	"github.com/tierd/tierd/internal/vfs"
	"github.com/tierd/tierd/tiers"
)

// TestMemFS runs the store on a memory filesystem: files that cannot be
// mapped are read into memory, served the same, charged whole against
// MapCacheBytes (the cache stays bounded), and survive a crash once
// committed.
func TestMemFS(t *testing.T) {
	m := vfs.NewCrashableMem()
	s, err := Open("/data/warm", Options{FS: m, MapCacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	recs := genRecords(7, 100, 300)
	meta := commitSegment(t, s, "s", recs)
	check := func(s *Store) {
		t.Helper()
		r, err := s.Acquire("s", 100)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		if r.sg.mapped {
			t.Fatal("a memory filesystem's file is mapped")
		}
		if r.sg.charge < meta.Bytes {
			t.Fatalf("charge %d for a %d-byte heap copy", r.sg.charge, meta.Bytes)
		}
		if err := r.Verify(); err != nil {
			t.Fatal(err)
		}
		var n int
		for rec, err := range r.Scan(tiers.AllRecords()) {
			if err != nil {
				t.Fatal(err)
			}
			if rec.Offset != recs[n].Offset || string(rec.Value) != string(recs[n].Value) {
				t.Fatalf("record %d: offset %d", n, rec.Offset)
			}
			n++
		}
		if n != len(recs) {
			t.Fatalf("scanned %d records, want %d", n, len(recs))
		}
	}
	check(s)
	s.mu.Lock()
	cached := len(s.mu.cache)
	s.mu.Unlock()
	if cached != 0 {
		t.Fatalf("%d readers cached over a 1-byte MapCacheBytes", cached)
	}
	s.Close()
	after, err := Open("/data/warm", Options{FS: m.CrashClone(vfs.CrashOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	check(after)
}
