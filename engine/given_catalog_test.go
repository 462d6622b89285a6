package engine

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// countingStore is a catalog.Store that counts what the engine asks of it,
// standing for a catalog the engine did not open itself.
type countingStore struct {
	catalog.Store
	puts, locates, closes atomic.Int32
}

func (c *countingStore) PutSegment(ctx context.Context, m tiers.SegmentMeta) error {
	c.puts.Add(1)
	return c.Store.PutSegment(ctx, m)
}

func (c *countingStore) Locate(ctx context.Context, stream string, from, to uint64) ([]tiers.SegmentMeta, uint64, error) {
	c.locates.Add(1)
	return c.Store.Locate(ctx, stream, from, to)
}

func (c *countingStore) Close() error {
	c.closes.Add(1)
	return c.Store.Close()
}

// TestEngineOnAGivenCatalog: an engine given a catalog.Store registers its
// persisted segments there and routes reads below memory through it, opens
// no catalog of its own, and closes the one it was given once; a second
// engine given the same catalog file finds every record.
func TestEngineOnAGivenCatalog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "elsewhere.db") // not DataDir/catalog.db
	given := func() *countingStore {
		c, err := catalog.Open(path, catalog.Options{RetentionDir: RetentionDir(dir)})
		if err != nil {
			t.Fatal(err)
		}
		return &countingStore{Store: c}
	}
	cs := given()
	e := open(t, dir, func(o *Options) { o.Catalog = cs; o.HotMaxBytes = 64 << 10 })
	want := fill(t, e, "s", 2000)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, e, "s", tiers.AllRecords()); len(got) != len(want) || got[0].Tier != tiers.Warm {
		t.Fatalf("read %d records (first from %v), want %d with the first from warm", len(got), got[0].Tier, len(want))
	}
	if cs.puts.Load() == 0 || cs.locates.Load() == 0 {
		t.Fatalf("the given catalog saw %d puts and %d locates, want both", cs.puts.Load(), cs.locates.Load())
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := cs.closes.Load(); n != 1 {
		t.Fatalf("the given catalog was closed %d times, want once", n)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "catalog.db")); len(m) != 0 {
		t.Fatalf("the engine opened a catalog of its own: %v", m)
	}

	cs = given()
	e = open(t, dir, func(o *Options) { o.Catalog = cs })
	defer e.Close(ctx)
	got := readAll(t, e, "s", tiers.AllRecords())
	if len(got) != len(want) {
		t.Fatalf("after reopening on the given catalog: %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !got[i].Record.Equal(&want[i]) || got[i].Offset != uint64(i) {
			t.Fatalf("record %d differs after reopening: %+v", i, got[i])
		}
	}
}
