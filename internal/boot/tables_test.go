package boot

import (
	"testing"

	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tables"
	"github.com/tierd/tierd/tablesync"
)

// TestTablesMetadataPrefix: verify and the catalog rebuild pass by the
// keys the publisher writes its metadata under.
func TestTablesMetadataPrefix(t *testing.T) {
	if tablesync.MetadataPrefix != tables.MetadataPrefix+"/" {
		t.Fatalf("tablesync.MetadataPrefix %q, tables.MetadataPrefix %q: verify would call the tables' metadata orphans", tablesync.MetadataPrefix, tables.MetadataPrefix)
	}
}

// TestTablesOpener: no tables without tables.enabled or without a cold
// store; an opener otherwise.
func TestTablesOpener(t *testing.T) {
	cfg := policy.Default()
	cfg.DataDir = t.TempDir()
	if !cfg.TablesEnabled() || TablesOpener(cfg, "", nil, nil) == nil {
		t.Fatal("no tables opener with the defaults")
	}
	off := cfg
	off.Tables.Enabled = false
	if TablesOpener(off, "", nil, nil) != nil {
		t.Fatal("a tables opener with tables.enabled false")
	}
	none := cfg
	none.Cold.Store = policy.StoreNone
	if TablesOpener(none, "", nil, nil) != nil {
		t.Fatal("a tables opener without a cold store")
	}
}
