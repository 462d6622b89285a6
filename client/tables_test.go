package client_test

import (
	"context"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/server"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
)

// tablesEngine is a real engine whose tables answer fixed values: what
// the client must carry through unchanged.
type tablesEngine struct {
	*engine.Engine
	table  api.Table
	rep    api.TableSyncReport
	synced []string
}

func (e *tablesEngine) TablesEnabled() bool { return true }

func (e *tablesEngine) Table(ctx context.Context, stream string) (api.Table, error) {
	if stream != e.table.Stream {
		return api.Table{}, tablesync.ErrNoTable
	}
	return e.table, nil
}

func (e *tablesEngine) SyncTables(ctx context.Context, stream string) (api.TableSyncReport, error) {
	e.synced = append(e.synced, stream)
	return e.rep, nil
}

func TestTables(t *testing.T) {
	ctx := context.Background()
	_, err := client.New(newServer(t, engine.Options{}, nil)).Table(ctx, "s")
	if !client.TablesDisabled(err) || client.NoTable(err) {
		t.Fatalf("Table of a server without tables = %v, want tables_disabled", err)
	}
	eng, err := engine.Open(ctx, engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	for _, s := range []string{"s", "t"} {
		if _, err := eng.Append(ctx, s, []tiers.Record{{Value: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	be := &tablesEngine{Engine: eng,
		table: api.Table{Stream: "s", Table: "tierd.s", MetadataLocation: "s3://b/_iceberg/tierd/s/metadata/1.json", SnapshotID: 42, Files: 3, Records: 300, LastUpdated: at,
			Queries: api.TableQueries{DuckDB: "d", Spark: "sp", Trino: "tr"}},
		rep: api.TableSyncReport{Streams: []api.TableSync{{Stream: "s", Added: 1, Removed: 2, Skipped: []string{"k"}, SnapshotID: 42}}},
	}
	srv := httptest.NewServer(server.New(be, server.Options{}))
	defer srv.Close()
	c := client.New(srv.URL)
	got, err := c.Table(ctx, "s")
	if err != nil || !reflect.DeepEqual(got, be.table) {
		t.Fatalf("Table = %+v, %v\nwant %+v", got, err, be.table)
	}
	if _, err := c.Table(ctx, "t"); !client.NoTable(err) {
		t.Fatalf("Table of a stream without one = %v, want no_table", err)
	}
	rep, err := c.SyncTables(ctx, "s")
	if err != nil || !reflect.DeepEqual(rep, be.rep) {
		t.Fatalf("SyncTables = %+v, %v", rep, err)
	}
	if _, err := c.SyncTables(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(be.synced, []string{"s", ""}) {
		t.Fatalf("the server synced %q, want [s, every stream]", be.synced)
	}
}
