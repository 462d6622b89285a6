package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	icebergio "github.com/apache/iceberg-go/io"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/testenv"
)

// The Iceberg tables end to end, on the real tierd binary with a file cold
// store: each stream's table holds exactly its retained cold records, read
// back with iceberg-go's scan from the table's metadata file alone, after
// uploads, retention deletes, kill -9 between a cold commit and its
// snapshot, and a catalog rebuild followed by `tierctl table sync`.

// tablesDaemon starts tierd on tablesConfig with env added (failpoints).
func tablesDaemon(t *testing.T, env ...string) (d *daemon, c *client.Client, dir string) {
	t.Helper()
	dir = t.TempDir()
	config := writeConfig(t, dir, tablesConfig(dir))
	d = startDaemonEnv(t, config, filepath.Join(dir, "data"), env...)
	return d, client.New("http://" + d.addr), dir
}

// TestTablesPublishCold: three offloads of one stream, one table whose
// snapshot holds their three objects (no copy) and exactly the records
// tierd serves; `tierctl table` names it and its queries; verify does not
// count the tables' metadata as orphans.
func TestTablesPublishCold(t *testing.T) {
	d, c, dir := tablesDaemon(t)
	ctx := context.Background()
	if _, err := c.Table(ctx, "ticks"); err == nil || !strings.Contains(err.Error(), "stream") {
		t.Fatalf("table of a stream not written yet: %v, want stream_not_found", err)
	}
	for b := range 3 {
		appendSealOffload(t, c, "ticks", workload(b, 40))
	}
	want := served(t, c, "ticks")
	if len(want) != 120 {
		t.Fatalf("tierd serves %d records, want 120", len(want))
	}
	tb, files := waitTableExact(t, c, "ticks", want, nil)
	objects := coldObjects(t, filepath.Join(dir, "cold"))
	if len(objects) != 3 || !slices.Equal(localPaths(files), objects) {
		t.Fatalf("the table's data files %q, want the three cold objects %q", files, objects)
	}
	if tb.Table != "tierd.ticks" || tb.Files != 3 || tb.SnapshotID == 0 || !strings.Contains(tb.Queries.DuckDB, tb.MetadataLocation) {
		t.Fatalf("table %+v", tb)
	}
	r := runCtl(t, ctlEnv("TIERD_ADDR=http://"+d.addr), "", "table", "ticks")
	if r.code != 0 || !strings.Contains(r.stdout, tb.MetadataLocation) || !strings.Contains(r.stdout, "records:   120") || !strings.Contains(r.stdout, "Trino:") {
		t.Fatalf("%s", r)
	}
	r = runCtl(t, ctlEnv("TIERD_ADDR=http://"+d.addr), "", "table", "sync")
	if r.code != 0 || !strings.Contains(r.stdout, "1 stream synced, 0 failed") || !strings.Contains(r.stdout, "ticks   0      0") {
		t.Fatalf("table sync of an exact table must change nothing:\n%s", r)
	}
	if v := verifyOK(t, d.addr); v.ColdObjects != 3 {
		t.Fatalf("verify looked at %d cold objects, want the 3 segments only", v.ColdObjects)
	}
}

// TestTablesRetentionRemovesFirst: retention takes a segment out of its
// table before it deletes the object. The daemon is killed at
// delete/after-table-remove: the table no longer lists the segment while
// its object is still there; after the restart the deletion finishes and
// the table stays exact.
func TestTablesRetentionRemovesFirst(t *testing.T) {
	d, c, dir := tablesDaemon(t, "TIERD_FAILPOINTS=delete/after-table-remove=crash")
	coldDir := filepath.Join(dir, "cold")
	ctx := context.Background()
	appendSealOffload(t, c, "exp.a", workload(0, 20))
	waitTableExact(t, c, "exp.a", served(t, c, "exp.a"), nil)
	before := coldObjects(t, coldDir)
	if len(before) != 1 {
		t.Fatalf("cold objects %q, want one", before)
	}
	// Past cold.max_age (2s): the first run tombstones, the next (past
	// delete_delay, 1s) deletes, and dies right after the table's snapshot.
	time.Sleep(2500 * time.Millisecond)
	if _, err := c.Migrate(ctx, client.MigrateRequest{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	c.Migrate(ctx, client.MigrateRequest{}) // the daemon dies in it
	select {
	case <-d.Exited():
	case <-time.After(60 * time.Second):
		t.Fatalf("tierd did not reach delete/after-table-remove:\n%s", d.tail(4000))
	}
	if ws, ok := d.ProcessState().Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("tierd exited with %v, not killed by its failpoint:\n%s", d.ProcessState(), d.tail(4000))
	}
	meta := currentMetadata(t, coldDir, "exp.a")
	got, files := scanTable(t, "exp.a", meta, nil)
	if len(got) != 0 || len(files) != 0 {
		t.Fatalf("after the table removal the table still has %d records in %q", len(got), files)
	}
	if now := coldObjects(t, coldDir); !slices.Equal(now, before) {
		t.Fatalf("cold objects %q at the crash, want %q still there: the table goes first", now, before)
	}

	d.restart(t)
	waitFor(t, 60*time.Second, "the interrupted deletion finishes", func() (bool, string) {
		objs := coldObjects(t, coldDir)
		return len(objs) == 0, strings.Join(objs, " ")
	})
	tb, err := c.Table(ctx, "exp.a")
	if err != nil {
		t.Fatal(err)
	}
	if got, files := scanTable(t, "exp.a", tb.MetadataLocation, nil); len(got) != 0 || len(files) != 0 || tb.Files != 0 {
		t.Fatalf("table after the deletion: %+v, %d records", tb, len(got))
	}
	verifyOK(t, d.addr)
}

// TestTablesKilledBeforeSnapshot: kill -9 between a segment's cold commit
// and its table snapshot (right after the commit; in the publishing loop
// before its sync). The restart's sync repairs the table: every cold
// segment exactly once, none lost or doubled.
func TestTablesKilledBeforeSnapshot(t *testing.T) {
	// tables/before-sync is hit first by the sync of every stream at
	// start: its second hit is the sync after the offload.
	for _, fp := range []string{"move/after-commit=crash", "tables/before-sync=crash@2"} {
		t.Run(strings.ReplaceAll(fp, "/", "-"), func(t *testing.T) {
			d, c, dir := tablesDaemon(t)
			ctx := context.Background()
			appendSealOffload(t, c, "ticks", workload(0, 30))
			waitTableExact(t, c, "ticks", served(t, c, "ticks"), nil)
			d.stop(t)

			// Armed from the second start on: one segment is in the table.
			d2 := startDaemonEnv(t, filepath.Join(dir, "tierd.yaml"), filepath.Join(dir, "data"), "TIERD_FAILPOINTS="+fp)
			c2 := client.New("http://" + d2.addr)
			if _, err := c2.Append(ctx, "ticks", workload(1, 30)); err != nil {
				t.Fatal(err)
			}
			res, err := c2.Seal(ctx, "ticks")
			if err != nil {
				t.Fatal(err)
			}
			c2.Offload(ctx, "ticks", res.Segment.Base, false) // dies in it, or within commit_interval after
			select {
			case <-d2.Exited():
			case <-time.After(60 * time.Second):
				t.Fatalf("tierd did not reach %s:\n%s", fp, d2.tail(4000))
			}
			if ws, ok := d2.ProcessState().Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("tierd exited with %v, not killed by its failpoint:\n%s", d2.ProcessState(), d2.tail(4000))
			}
			coldDir := filepath.Join(dir, "cold")
			if objs := coldObjects(t, coldDir); len(objs) != 2 {
				t.Fatalf("cold objects at the crash: %q, want both segments'", objs)
			}
			if got, _ := scanTable(t, "ticks", currentMetadata(t, coldDir, "ticks"), nil); len(got) != 30 {
				t.Fatalf("the table holds %d records at the crash, want the first segment's 30: the test exercised nothing", len(got))
			}

			d2.restart(t)
			c3 := client.New("http://" + d2.addr)
			want := served(t, c3, "ticks")
			if len(want) != 60 {
				t.Fatalf("tierd serves %d records after the restart, want 60", len(want))
			}
			_, files := waitTableExact(t, c3, "ticks", want, nil)
			if objs := coldObjects(t, coldDir); !slices.Equal(localPaths(files), objs) {
				t.Fatalf("table files %q, cold objects %q", files, objs)
			}
			verifyOK(t, d2.addr)
		})
	}
}

// TestTablesAfterCatalogRebuild: the catalog and the tables' metadata are
// lost; `tierctl catalog rebuild` recreates the catalog from the cold
// objects and `tierctl table sync` the table, exact.
func TestTablesAfterCatalogRebuild(t *testing.T) {
	d, c, dir := tablesDaemon(t)
	for b := range 2 {
		appendSealOffload(t, c, "ticks", workload(b, 25))
	}
	want := served(t, c, "ticks")
	waitTableExact(t, c, "ticks", want, nil)
	d.stop(t)

	dataDir := filepath.Join(dir, "data")
	if err := os.Remove(filepath.Join(dataDir, "catalog.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "cold", "_iceberg")); err != nil {
		t.Fatal(err)
	}
	env := ctlEnv()
	if r := runCtl(t, env, "", "catalog", "rebuild", "--config", filepath.Join(dir, "tierd.yaml"), "--data-dir", dataDir); r.code != 0 {
		t.Fatalf("%s", r)
	} else if strings.Contains(r.stdout, "_iceberg") || strings.Contains(r.stderr, "_iceberg") {
		t.Fatalf("the rebuild mentions the tables' metadata:\n%s", r)
	}
	d.restart(t)
	r := runCtl(t, ctlEnv("TIERD_ADDR=http://"+d.addr), "", "table", "sync", "ticks")
	if r.code != 0 || !strings.Contains(r.stdout, "1 stream synced, 0 failed") {
		t.Fatalf("%s", r)
	}
	if got := served(t, c, "ticks"); diffRecords(got, want) != "" {
		t.Fatalf("after the rebuild tierd serves other records: %s", diffRecords(got, want))
	}
	waitTableExact(t, c, "ticks", want, nil)
	verifyOK(t, d.addr)
}

// TestTablesCluster: two nodes over one MinIO bucket and one PostgreSQL
// database (the Iceberg catalog is in it too). Compaction's commits are
// published by the node that made them; the table, described through the
// other node and read from the bucket with iceberg-go, holds exactly the
// compacted records, its data files the segments' objects.
func TestTablesCluster(t *testing.T) {
	m := testenv.StartMinIO(t)
	useMinIOCredentials(t, m)
	pg := testenv.StartPostgres(t)
	spec := clusterSpec{dsn: pg.DSN, store: m.URL("aws"), extra: "tables: {commit_interval: 1s}\n"}
	nodes := startNodes(t, spec, 2)
	ctx := context.Background()
	for b := range 2 {
		if _, err := nodes[0].c.Append(ctx, "ticks", workload(b, 30)); err != nil {
			t.Fatal(err)
		}
		if res, err := nodes[0].c.Seal(ctx, "ticks"); err != nil || res.Segment == nil {
			t.Fatalf("seal (compaction) through n1: %+v, %v", res, err)
		}
	}
	want := served(t, nodes[1].c, "ticks")
	if len(want) != 60 {
		t.Fatalf("the cluster serves %d records, want 60", len(want))
	}
	props := map[string]string{icebergio.S3Region: testenv.Region, icebergio.S3EndpointURL: m.Endpoint,
		icebergio.S3AccessKeyID: m.AccessKey, icebergio.S3SecretAccessKey: m.SecretKey}
	tb, files := waitTableExact(t, nodes[1].c, "ticks", want, props)
	if !strings.HasPrefix(tb.MetadataLocation, "s3://"+m.Bucket+"/tierd/_iceberg/") || len(files) != 2 {
		t.Fatalf("table %+v with data files %q: want its metadata under _iceberg/ of the bucket and the two segments", tb, files)
	}
	for _, f := range files {
		if !strings.HasPrefix(f, "s3://"+m.Bucket+"/tierd/stream=ticks/") {
			t.Fatalf("data file %q is not a segment object of the bucket", f)
		}
	}
	if !strings.Contains(tb.Queries.Spark, "type=jdbc") {
		t.Fatalf("the Spark query of cluster mode does not name the JDBC catalog:\n%s", tb.Queries.Spark)
	}
	for _, n := range nodes {
		verifyClean(t, n)
	}

	// A file another writer adds to the table is a verify finding in
	// cluster mode too, until a table sync takes it out.
	o := objstore.Options{AccessKey: m.AccessKey, SecretKey: m.SecretKey}
	key := addForeignFile(t, m.URL("aws"), pg.DSN, o, "ticks")
	rep, err := nodes[1].c.Verify(ctx, client.VerifyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var drift []client.Finding
	for _, f := range rep.Findings {
		if f.Kind == api.FindingTable {
			drift = append(drift, f)
		}
	}
	if len(drift) != 1 || drift[0].Stream != "ticks" || drift[0].Path != key {
		t.Fatalf("cluster verify's table findings %+v, want one for %s; report %+v", drift, key, rep)
	}
	if _, err := nodes[0].c.SyncTables(ctx, "ticks"); err != nil {
		t.Fatal(err)
	}
	b, err := objstore.Open(ctx, m.URL("aws"), o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	waitTableExact(t, nodes[1].c, "ticks", want, props)
	verifyClean(t, nodes[0])
}
