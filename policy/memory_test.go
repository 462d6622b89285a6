package policy

import (
	"path/filepath"
	"testing"
)

// TestMemoryLimit: the Go memory limit is the live heap the budgets allow
// plus a quarter of the hot budget, for the default configuration and the
// edge profile alike.
func TestMemoryLimit(t *testing.T) {
	def := Default()
	if got, want := def.MemoryLimit(), int64(GiB+GiB/4+64*MiB+32*MiB+BaseMemory); got != want {
		t.Errorf("default MemoryLimit = %d, want %d", got, want)
	}
	edge, err := Load(filepath.Join("..", "examples", "edge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := edge.Hot.MaxBytes + edge.Hot.MaxBytes/4 + edge.Cold.CacheBytes + edge.Warm.MapCacheBytes + BaseMemory
	if got := edge.MemoryLimit(); got != want || got >= 100*MiB {
		t.Errorf("edge MemoryLimit = %d, want %d, under the profile's 100 MiB", got, want)
	}
}

// TestEdgeExampleFile: the edge profile is valid, warns of nothing, and
// keeps the budgets it is documented with (docs/operations.md).
func TestEdgeExampleFile(t *testing.T) {
	c, err := Load(filepath.Join("..", "examples", "edge.yaml"))
	if err != nil {
		t.Fatalf("examples/edge.yaml: %v", err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("examples/edge.yaml has warnings: %v", w)
	}
	if c.Cold.Store != "" || c.Hot.MaxBytes > 32*MiB || c.Cold.CacheBytes > 16*MiB || c.Warm.MapCacheBytes > 8*MiB ||
		c.Migrator.Concurrency != 1 || c.WAL.SegmentBytes > 16*MiB || c.Segment.MaxBytes > c.Hot.MaxBytes/2 || c.HTTP.MaxConnections > 1000 {
		t.Errorf("examples/edge.yaml is not an edge profile (the local file store, small budgets): %+v", c)
	}
}
