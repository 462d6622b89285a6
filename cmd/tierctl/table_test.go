package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/server"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
)

// tablesEngine is a real engine whose tables answer fixed values, as a
// tierd with tables would.
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

// TestTableDisabled: against a tierd without tables, one line that says
// what to set, exit 1, nothing on stdout.
func TestTableDisabled(t *testing.T) {
	s := newServer(t)
	for _, args := range [][]string{{"table", "s"}, {"table", "sync"}, {"table", "sync", "s"}} {
		r := tierctl(t, s.url, "", args...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "tables_disabled") || !strings.Contains(r.stderr, "tables.enabled: true") {
			t.Fatalf("tierctl %v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestTable(t *testing.T) {
	ctx := context.Background()
	eng, err := engine.Open(ctx, engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	for _, s := range []string{"IF2406", "sync", "empty"} {
		if _, err := eng.Append(ctx, s, []tiers.Record{{Value: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	be := &tablesEngine{Engine: eng,
		table: api.Table{Stream: "IF2406", Table: "tierd.IF2406", MetadataLocation: "s3://archive/tierd/_iceberg/tierd/IF2406/metadata/00002-a.metadata.json",
			SnapshotID: 8123, Files: 3, Records: 3000, LastUpdated: at,
			Queries: api.TableQueries{DuckDB: "SELECT count(*) FROM iceberg_scan('s3://…')", Spark: "SELECT count(*) FROM tierd.IF2406", Trino: `SELECT count(*) FROM iceberg.tierd."IF2406"`}},
		rep: api.TableSyncReport{Failed: 1, Streams: []api.TableSync{
			{Stream: "IF2406", Added: 2, Removed: 1, SnapshotID: 8124},
			{Stream: "empty"},
			{Stream: "old", Skipped: []string{"stream=old/date=2026-01-01/x.parquet"}, SnapshotID: 5},
			{Stream: "sync", Error: &api.Error{Code: api.CodeTablesUnavailable, Message: "catalog down"}},
		}},
	}
	srv := httptest.NewServer(server.New(be, server.Options{}))
	defer srv.Close()

	got := mustRun(t, srv.URL, "", "table", "IF2406")
	want := strings.Join([]string{
		"stream:    IF2406",
		"table:     tierd.IF2406",
		"metadata:  s3://archive/tierd/_iceberg/tierd/IF2406/metadata/00002-a.metadata.json",
		"snapshot:  8123",
		"files:     3",
		"records:   3000",
		"updated:   2026-12-02T05:00:00Z",
		"",
		"DuckDB:",
		"  SELECT count(*) FROM iceberg_scan('s3://…')",
		"Spark:",
		"  SELECT count(*) FROM tierd.IF2406",
		"Trino:",
		`  SELECT count(*) FROM iceberg.tierd."IF2406"`,
		"",
	}, "\n")
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
	for _, args := range [][]string{{"table", "IF2406", "--json"}, {"-o", "json", "table", "IF2406"}} {
		var back api.Table
		if err := json.Unmarshal([]byte(mustRun(t, srv.URL, "", args...)), &back); err != nil {
			t.Fatalf("tierctl %v: %v", args, err)
		}
		if !reflect.DeepEqual(back, be.table) {
			t.Fatalf("tierctl %v = %+v\nwant %+v", args, back, be.table)
		}
	}
	r := tierctl(t, srv.URL, "", "table", "empty")
	if r.code != 1 || !strings.Contains(r.stderr, "no_table") || !strings.Contains(r.stderr, "empty") {
		t.Fatalf("table of a stream without one: exit %d, stderr %q", r.code, r.stderr)
	}
	r = tierctl(t, srv.URL, "", "table", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, `no stream "nope"`) {
		t.Fatalf("table of an unknown stream: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := tierctl(t, srv.URL, "", "table"); r.code != 2 {
		t.Fatalf("table without a stream: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
	if r := tierctl(t, srv.URL, "", "table", "sync", "a", "b"); r.code != 2 {
		t.Fatalf("table sync with two streams: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}

	r = tierctl(t, srv.URL, "", "table", "sync")
	want = strings.Join([]string{
		"STREAM  ADDED  REMOVED  NOT_PUBLISHED  SNAPSHOT  ERROR",
		"IF2406  2      1        0              8124      -",
		"empty   0      0        0              -         -",
		"old     0      0        1              5         -",
		"sync    0      0        0              -         tables_unavailable: catalog down",
		"3 streams synced, 1 failed",
		"",
	}, "\n")
	if r.code != 1 || r.stdout != want || !strings.Contains(r.stderr, "1 of 4 streams failed") {
		t.Fatalf("table sync: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	tierctl(t, srv.URL, "", "table", "sync", "IF2406")
	if r := tierctl(t, srv.URL, "", "table", "--", "sync"); r.code != 1 || !strings.Contains(r.stderr, "no_table") {
		t.Fatalf("table -- sync (the stream named sync): exit %d, stderr %q; want its no_table", r.code, r.stderr)
	}
	if !reflect.DeepEqual(be.synced, []string{"", "IF2406"}) {
		t.Fatalf("synced %q, want every stream, then IF2406", be.synced)
	}
}
