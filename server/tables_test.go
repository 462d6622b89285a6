package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
)

// countingTables is the tablesync.Tables contract kept in memory over the
// engine's real catalog (CatalogSource): a table is made by its first
// Sync and holds the stream's cold segments. Syncs of stream "down" fail
// as unavailable. The real publisher is tested in package tables and end
// to end in cmd/tierd; this shows the server's answers.
type countingTables struct {
	src   tablesync.CatalogSource
	mu    sync.Mutex
	files map[string]int
}

func (c *countingTables) Sync(ctx context.Context, stream string) (api.TableSync, error) {
	if stream == "down" {
		return api.TableSync{}, tablesync.ErrUnavailable
	}
	segs, err := c.src.ColdSegments(ctx, stream)
	if err != nil {
		return api.TableSync{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	res := api.TableSync{Added: len(segs) - c.files[stream], SnapshotID: int64(len(segs))}
	c.files[stream] = len(segs)
	return res, nil
}

func (c *countingTables) Remove(ctx context.Context, stream string, segs []tiers.SegmentMeta) error {
	return nil
}

func (c *countingTables) Describe(ctx context.Context, stream string) (api.Table, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.files[stream]
	if !ok {
		return api.Table{}, tablesync.ErrNoTable
	}
	return api.Table{Table: "tierd." + stream, MetadataLocation: "file:///cold/_iceberg/x.metadata.json", Files: int64(n), SnapshotID: int64(n),
		Queries: api.TableQueries{DuckDB: "select 1", Spark: "select 2", Trino: "select 3"}}, nil
}

// Files lists the objects of the stream's cold segments once it has a
// table: a table in step with the catalog.
func (c *countingTables) Files(ctx context.Context, stream string) ([]string, error) {
	c.mu.Lock()
	_, ok := c.files[stream]
	c.mu.Unlock()
	if !ok {
		return nil, tablesync.ErrNoTable
	}
	segs, err := c.src.ColdSegments(ctx, stream)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, m := range segs {
		keys = append(keys, cold.ObjectKey(m))
	}
	return keys, nil
}

// newTablesEnv is a server over an engine with a file cold store and
// tables (countingTables), with streams s and down appended and s's
// segment offloaded.
func newTablesEnv(t *testing.T) *testEnv {
	t.Helper()
	storeURL := (&url.URL{Scheme: "file", Path: filepath.Join(t.TempDir(), "cold")}).String()
	b, err := objstore.Open(context.Background(), storeURL, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, engine.Options{Cold: ct, Tables: func(ctx context.Context, src tablesync.CatalogSource) (*tablesync.Loop, error) {
		return tablesync.New(tablesync.Options{Tables: &countingTables{src: src, files: map[string]int{}}, Streams: src.StreamNames}), nil
	}}, Options{})
	for _, s := range []string{"s", "down"} {
		if r := e.do("POST", "/v1/streams/"+s+"/records", strings.NewReader(`{"value":{"px":1}}`+"\n")); r.status != http.StatusOK {
			t.Fatalf("append: %d %s", r.status, r.body)
		}
	}
	if err := e.eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.Offload(context.Background(), "s", 0, false); err != nil {
		t.Fatal(err)
	}
	return e
}

func decodeStrict(t *testing.T, r response, v any) {
	t.Helper()
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
}

// TestTablesDisabled: without tables (here: no cold store) both routes
// answer 404 tables_disabled, saying why.
func TestTablesDisabled(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	d := wantError(t, e.do("GET", "/v1/streams/s/table", nil), http.StatusNotFound, api.CodeTablesDisabled)
	if !strings.Contains(d.Message, "tables.enabled") {
		t.Fatalf("message %q does not name tables.enabled", d.Message)
	}
	wantError(t, e.do("POST", "/v1/tables/sync", nil), http.StatusNotFound, api.CodeTablesDisabled)
}

// TestTableRoutes: the table of a stream after a sync; before it
// no_table; unknown streams, bad names and parameters are 4xx; a sync
// that cannot reach the tables' catalog is 503 with Retry-After, alone,
// and a failed stream in the report of every stream.
func TestTableRoutes(t *testing.T) {
	e := newTablesEnv(t)
	wantError(t, e.do("GET", "/v1/streams/s/table", nil), http.StatusNotFound, api.CodeNoTable)
	wantError(t, e.do("GET", "/v1/streams/nope/table", nil), http.StatusNotFound, api.CodeStreamNotFound)
	wantError(t, e.do("GET", "/v1/streams/-bad/table", nil), http.StatusBadRequest, api.CodeInvalidStreamName)
	wantError(t, e.do("GET", "/v1/streams/s/table?x=1", nil), http.StatusBadRequest, api.CodeInvalidParameter)
	wantError(t, e.do("GET", "/v1/tables/sync", nil), http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)
	wantError(t, e.do("POST", "/v1/tables/sync?stream=nope", nil), http.StatusNotFound, api.CodeStreamNotFound)
	wantError(t, e.do("POST", "/v1/tables/sync?stream=a&stream=b", nil), http.StatusBadRequest, api.CodeInvalidParameter)
	wantError(t, e.do("POST", "/v1/tables/sync?streams=s", nil), http.StatusBadRequest, api.CodeInvalidParameter)

	var one api.TableSyncReport
	decodeStrict(t, e.do("POST", "/v1/tables/sync?stream=s", nil), &one)
	if len(one.Streams) != 1 || one.Streams[0].Stream != "s" || one.Streams[0].Added != 1 || one.Failed != 0 {
		t.Fatalf("sync of s: %+v, want one file added", one)
	}
	var tb api.Table
	decodeStrict(t, e.do("GET", "/v1/streams/s/table", nil), &tb)
	if tb.Stream != "s" || tb.Table != "tierd.s" || tb.Files != 1 || tb.Queries.DuckDB == "" || tb.MetadataLocation == "" {
		t.Fatalf("table of s: %+v", tb)
	}

	r := e.do("POST", "/v1/tables/sync?stream=down", nil)
	wantError(t, r, http.StatusServiceUnavailable, api.CodeTablesUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("tables_unavailable without Retry-After")
	}
	var all api.TableSyncReport
	decodeStrict(t, e.do("POST", "/v1/tables/sync", nil), &all)
	if len(all.Streams) != 2 || all.Failed != 1 || all.Streams[0].Stream != "down" || all.Streams[0].Error == nil ||
		all.Streams[0].Error.Code != api.CodeTablesUnavailable || all.Streams[1].Error != nil || all.Streams[1].Added != 0 {
		t.Fatalf("sync of every stream: %+v, want down failed and s already exact", all)
	}
}
