package catalog_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/catalog/catalogtest"
)

// TestConformance runs the catalog contract's suite against the bbolt
// Catalog, with retention markers kept as tierd keeps them.
func TestConformance(t *testing.T) {
	catalogtest.Run(t, boltFactory())
}

// boltFactory opens each Store in a fresh directory and reopens it from
// the same file.
func boltFactory() catalogtest.Factory {
	var paths sync.Map // catalog.Store -> its directory
	open := func(t *testing.T, dir string) catalog.Store {
		c, err := catalog.Open(filepath.Join(dir, "catalog.db"), catalog.Options{RetentionDir: filepath.Join(dir, "retention")})
		if err != nil {
			t.Fatalf("catalog.Open: %v", err)
		}
		paths.Store(c, dir)
		return c
	}
	return catalogtest.Factory{
		Open: func(t *testing.T) catalog.Store { return open(t, t.TempDir()) },
		Reopen: func(t *testing.T, s catalog.Store) catalog.Store {
			dir, ok := paths.LoadAndDelete(s)
			if !ok {
				t.Fatalf("Reopen of a Store this factory did not open")
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, dir.(string))
		},
	}
}
