package tables

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

const day = int64(86400e9)

// threeSegments puts three format-2 segments of stream on s, each in its
// own hour of one day, and returns them and their records.
func threeSegments(t *testing.T, s store, stream string, popts pqfile.Options) ([]tiers.SegmentMeta, []tiers.Record) {
	t.Helper()
	var segs []tiers.SegmentMeta
	var all []tiers.Record
	t0 := 20000*day + 1234567
	for i := range 3 {
		recs := records(uint64(i*100), 100, t0+int64(i)*3600e9, 1_000_003)
		segs = append(segs, putSegment(t, s, stream, recs, popts))
		all = append(all, recs...)
	}
	return segs, all
}

// TestPublishAndScan: a Sync publishes the stream's format-2 objects as they
// are; iceberg-go's scan reads exactly their records; a second Sync is a
// no-op; a ts filter plans only the overlapping files.
func TestPublishAndScan(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		src := newSource()
		p := open(t, s, src)
		ctx := context.Background()
		if _, err := p.Describe(ctx, "orders"); !errors.Is(err, ErrNoTable) {
			t.Fatalf("Describe before any Sync: %v, want ErrNoTable", err)
		}
		segs, want := threeSegments(t, s, "orders", pqfile.Options{RowGroupRows: 40})
		src.add(segs...)

		res := mustSync(t, p, "orders")
		if res.Added != 3 || res.Removed != 0 || !res.Committed || res.Files != 3 || len(res.Skipped) != 0 {
			t.Fatalf("first Sync: %+v", res)
		}
		tbl := loadTable(t, p, "orders")
		sameRecords(t, scanRecords(t, tbl), want)

		again := mustSync(t, p, "orders")
		if again.Committed || again.Added != 0 || again.SnapshotID != res.SnapshotID || again.Files != 3 {
			t.Fatalf("second Sync changed the table: %+v (first %+v)", again, res)
		}

		// The second segment's hour only: one file planned, its records read.
		m := segs[1]
		tasks := plannedFiles(t, tbl, tsFilter(m.MinTS, m.MaxTS-1000))
		if len(tasks) != 1 || tasks[0] != p.fileURI(m) {
			t.Fatalf("ts filter planned %v, want only %s", tasks, p.fileURI(m))
		}
		sameRecords(t, scanRecords(t, tbl, tsFilter(m.MinTS, m.MaxTS)), want[100:200])
		// Spanning the end of the first and the start of the second: two.
		if n := len(plannedFiles(t, tbl, tsFilter(segs[0].MaxTS-1e9, segs[1].MinTS+1e9))); n != 2 {
			t.Fatalf("ts filter over two segments planned %d files, want 2", n)
		}
		// Before everything: none.
		if n := len(plannedFiles(t, tbl, tsFilter(0, segs[0].MinTS-1e6))); n != 0 {
			t.Fatalf("ts filter before the data planned %d files, want 0", n)
		}
		// offset and key prune too.
		if n := len(plannedFiles(t, tbl, table.WithRowFilter(iceberg.EqualTo(iceberg.Reference("offset"), int64(250))))); n != 1 {
			t.Fatalf("offset filter planned %d files, want 1", n)
		}
		if n := len(plannedFiles(t, tbl, table.WithRowFilter(iceberg.EqualTo(iceberg.Reference("key"), "zzz")))); n != 0 {
			t.Fatalf("key filter above every key planned %d files, want 0", n)
		}

		info, err := p.Describe(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if info.Files != 3 || info.Records != 300 || info.SnapshotID != res.SnapshotID || info.Table != "tierd.orders" ||
			info.MetadataLocation != tbl.MetadataLocation() || strings.Contains(info.MetadataLocation, "file:") {
			t.Fatalf("Describe: %+v", info)
		}
		for _, engine := range []string{"duckdb", "spark", "trino"} {
			if !strings.Contains(info.Queries[engine], "orders") {
				t.Fatalf("%s query %q does not name the table", engine, info.Queries[engine])
			}
		}
		if s.opts.SecretKey != "" && strings.Contains(fmt.Sprint(info.Queries), s.opts.SecretKey) {
			t.Fatal("a query carries the secret key")
		}
		t.Logf("%s: metadata %s\nduckdb:\n%s\nspark:\n%s\ntrino:\n%s", s.name, info.MetadataLocation,
			info.Queries["duckdb"], info.Queries["spark"], info.Queries["trino"])
	})
}

// TestDuckDBReadsPlannedFiles: DuckDB over the files an iceberg-go scan
// plans gives the scan's rows, and the duckdb query Describe returns runs.
func TestDuckDBReadsPlannedFiles(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	segs, want := threeSegments(t, s, "IF2406", withColumns(pxColumns))
	src.add(segs...)
	mustSync(t, p, "IF2406")
	tbl := loadTable(t, p, "IF2406")
	files := plannedFiles(t, tbl)
	rows := duckdb(t, fmt.Sprintf(`
		SELECT "offset"::VARCHAR AS o, (epoch_us(ts) * 1000 + ts_nanos)::VARCHAR AS ts_ns, key,
		       coalesce(hex(encode(value::VARCHAR)), hex(value_bin)) AS value_hex
		  FROM read_parquet(%s) ORDER BY "offset"`, sqlList(files)))
	if len(rows) != len(want) {
		t.Fatalf("DuckDB read %d rows over %d planned files, want %d", len(rows), len(files), len(want))
	}
	for i, r := range want {
		v, err := hex.DecodeString(rows[i]["value_hex"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if rows[i]["o"] != strconv.FormatUint(r.Offset, 10) || rows[i]["ts_ns"] != strconv.FormatInt(r.TS, 10) ||
			rows[i]["key"] != r.Key || string(v) != string(r.Value) {
			t.Fatalf("row %d: DuckDB %v, want %+v", i, rows[i], r)
		}
	}
	// The typed column is in the table and reads back as the JSON field.
	if _, ok := tbl.Schema().FindFieldByName("px"); !ok {
		t.Fatalf("schema lacks the typed column px: %s", tbl.Schema())
	}
}

// TestRemove: Remove takes the segments' files out in a new snapshot (the
// caller deletes the objects afterwards); unknown files are ignored.
func TestRemove(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		src := newSource()
		p := open(t, s, src)
		ctx := context.Background()
		segs, want := threeSegments(t, s, "audit", pqfile.Options{})
		src.add(segs...)
		first := mustSync(t, p, "audit")
		if err := p.Remove(ctx, "audit", segs[:1]); err != nil {
			t.Fatal(err)
		}
		tbl := loadTable(t, p, "audit")
		if tbl.CurrentSnapshot().SnapshotID == first.SnapshotID {
			t.Fatal("Remove made no snapshot")
		}
		sameRecords(t, scanRecords(t, tbl), want[100:])
		// Again, and a stream without a table: nothing to do.
		if err := p.Remove(ctx, "audit", segs[:1]); err != nil {
			t.Fatal(err)
		}
		if err := p.Remove(ctx, "nosuch", segs[:1]); err != nil {
			t.Fatal(err)
		}
		if got := loadTable(t, p, "audit").CurrentSnapshot().SnapshotID; got != tbl.CurrentSnapshot().SnapshotID {
			t.Fatal("a Remove of files not in the table made a snapshot")
		}
		// The catalog still lists it (the retention delete did not get to
		// drop it): the next Sync puts it back, as the catalog is the truth.
		if res := mustSync(t, p, "audit"); res.Added != 1 {
			t.Fatalf("Sync after Remove of a still-wanted segment: %+v", res)
		}
	})
}

// TestSyncRepairsCrash: after a crash between the catalog commit and the
// snapshot (a segment the table lacks) and the other way round (a file in
// the table the catalog no longer has), one Sync repairs both in one
// snapshot.
func TestSyncRepairsCrash(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		src := newSource()
		p := open(t, s, src)
		segs, want := threeSegments(t, s, "ticks", pqfile.Options{})
		src.add(segs[0], segs[1])
		mustSync(t, p, "ticks")
		// Crash: segs[2] committed in the catalog, no snapshot; segs[0]
		// gone from the catalog (say, by a rebuild), still in the table.
		src.add(segs[2])
		src.drop("ticks", segs[0].Base)
		before := loadTable(t, p, "ticks")
		res := mustSync(t, p, "ticks")
		if res.Added != 1 || res.Removed != 1 || res.Files != 2 {
			t.Fatalf("repair Sync: %+v", res)
		}
		after := loadTable(t, p, "ticks")
		if n := len(after.Metadata().Snapshots()) - len(before.Metadata().Snapshots()); n != 1 {
			t.Fatalf("repair made %d snapshots, want 1", n)
		}
		sameRecords(t, scanRecords(t, after), want[100:])
	})
}

// TestLegacyObjects: a format-1 object is not published (its ts is in
// nanoseconds and its value unannotated) but reported in Skipped, never
// dropped silently; with a Rewrite hook that rewrites it as format 2 it is
// published in the same Sync.
func TestLegacyObjects(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	recs := records(0, 50, 20000*day, 999)
	old := putSegment(t, s, "legacy", recs, pqfile.Options{Version: 1})
	src.add(old)
	res := mustSync(t, p, "legacy")
	if len(res.Skipped) != 1 || !res.Skipped[0].Legacy || res.Skipped[0].Segment.Base != 0 || res.Added != 0 {
		t.Fatalf("Sync of a format-1 object: %+v", res)
	}
	t.Logf("skipped: %+v", res.Skipped[0].Reason)

	calls := 0
	o := s.opts
	o.Segments = src
	o.Rewrite = func(ctx context.Context, m tiers.SegmentMeta) error {
		calls++
		putSegment(t, s, m.Stream, recs, pqfile.Options{})
		return nil
	}
	p2, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	res = mustSync(t, p2, "legacy")
	if calls != 1 || res.Added != 1 || len(res.Skipped) != 0 {
		t.Fatalf("Sync with a Rewrite hook: %+v (%d calls)", res, calls)
	}
	sameRecords(t, scanRecords(t, loadTable(t, p2, "legacy")), recs)
}

// TestSchemaEvolution: files with a new typed column add it to the schema;
// older files read it as NULL; a file whose column has another type than
// the table's is skipped and reported.
func TestSchemaEvolution(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	a := putSegment(t, s, "evo", records(0, 10, 20000*day, 1000), pqfile.Options{})
	src.add(a)
	mustSync(t, p, "evo")
	b := putSegment(t, s, "evo", records(10, 10, 20000*day+1e9, 1000), withColumns(pxColumns))
	src.add(b)
	if res := mustSync(t, p, "evo"); res.Added != 1 {
		t.Fatalf("Sync with a new column: %+v", res)
	}
	tbl := loadTable(t, p, "evo")
	f, ok := tbl.Schema().FindFieldByName("px")
	if !ok || !f.Type.Equals(iceberg.PrimitiveTypes.Float64) || f.Required {
		t.Fatalf("px in the schema: %+v %v", f, ok)
	}
	at, err := tbl.Scan(table.WithSelectedFields("offset", "px")).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	if at.NumRows() != 20 {
		t.Fatalf("scan: %d rows", at.NumRows())
	}
	// px is NULL in the older file and the JSON field in the newer one.
	pxByOffset := map[int64]string{}
	for i := range int(at.NumCols()) {
		if at.Schema().Field(i).Name != "px" {
			continue
		}
		offs := at.Column(0).Data().Chunks()
		pxs := at.Column(i).Data().Chunks()
		for c := range pxs {
			for r := range pxs[c].Len() {
				pxByOffset[offs[c].(*array.Int64).Value(r)] = pxs[c].ValueStr(r)
			}
		}
	}
	for o := range int64(20) {
		want := "(null)"
		if o >= 10 && o%5 != 1 && o%7 != 3 {
			want = fmt.Sprintf("%d.5", o)
		}
		if pxByOffset[o] != want {
			t.Fatalf("px at offset %d: %q, want %q", o, pxByOffset[o], want)
		}
	}
	// A policy that changed px to a string: that file is skipped.
	c := putSegment(t, s, "evo", records(20, 10, 20000*day+2e9, 1000),
		withColumns([]pqfile.Column{{Name: "px", Path: "$.px", Type: pqfile.TypeString}}))
	src.add(c)
	res := mustSync(t, p, "evo")
	if res.Added != 0 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "px") {
		t.Fatalf("Sync of a file whose column changed type: %+v", res)
	}
	got := scanRecords(t, loadTable(t, p, "evo"))
	if len(got) != 20 || !slices.IsSortedFunc(got, func(x, y tiers.Record) int { return cmp.Compare(x.Offset, y.Offset) }) {
		t.Fatalf("scan after the skipped file: %d records", len(got))
	}
}

// TestHistoryBounded: however many Syncs run, the table keeps a bounded
// number of snapshots, metadata files, manifest lists and manifests (those
// only expired snapshots listed are deleted), and still reads exactly;
// with the file catalog on a file store and the PostgreSQL catalog on
// MinIO.
func TestHistoryBounded(t *testing.T) {
	for _, c := range []struct {
		name string
		mk   func(t testing.TB) store
		pg   bool
	}{{"file", fileStore, false}, {"minio+pg", minioStore, true}} {
		t.Run(c.name, func(t *testing.T) {
			s := c.mk(t)
			if c.pg {
				s.opts.CatalogDSN = testenv.StartPostgres(t).DSN
			}
			testHistoryBounded(t, s)
		})
	}
}

func testHistoryBounded(t *testing.T, s store) {
	ctx := context.Background()
	src := newSource()
	p := open(t, s, src)
	p.sweepGrace = 0 // the files no commit references are gone at once
	var all []tiers.Record
	syncs := 2*expireAbove + 5 // two rounds of expiry
	for i := range syncs {
		recs := records(uint64(i*5), 5, 20000*day+int64(i)*1e9, 1000)
		src.add(putSegment(t, s, "hist", recs, pqfile.Options{}))
		all = append(all, recs...)
		if r := mustSync(t, p, "hist"); i%20 == 0 {
			t.Logf("sync %d: %v", i, r.Duration)
		}
	}
	tbl := loadTable(t, p, "hist")
	if n := len(tbl.Metadata().Snapshots()); n > expireAbove {
		t.Fatalf("%d snapshots after %d Syncs, want at most %d", n, syncs, expireAbove)
	}
	sameRecords(t, scanRecords(t, tbl), all)

	// Between two expiries, each commit may leave a manifest no snapshot
	// lists (iceberg-go's manifest merge does); the next expiry sweeps
	// them. Without the collection, every manifest of every expired
	// snapshot would still be there.
	root := strings.TrimSuffix(p.root, "/") + "/"
	avro, metas, unneeded := metadataFiles(t, s, tbl, root)
	if len(unneeded) > expireAbove-keepSnapshots {
		t.Fatalf("%d of %d manifest files are listed by no retained snapshot: %v", len(unneeded), len(avro), unneeded)
	}
	if len(metas) > keepSnapshots+2 {
		t.Fatalf("%d metadata files kept, want at most %d", len(metas), keepSnapshots+2)
	}
	t.Logf("%d snapshots, %d metadata files, %d manifest lists and manifests (%d unlisted) after %d Syncs",
		len(tbl.Metadata().Snapshots()), len(metas), len(avro), len(unneeded), syncs)
	// A sweep now leaves exactly what the table references.
	if _, err := p.sweepMetadata(ctx, tbl, tbl.Metadata(), tbl.MetadataLocation(), sweepKeep(t, tbl)); err != nil {
		t.Fatal(err)
	}
	if avro, _, unneeded = metadataFiles(t, s, tbl, root); len(unneeded) > 0 || len(avro) == 0 {
		t.Fatalf("after a sweep %d of %d manifest files are listed by no retained snapshot: %v", len(unneeded), len(avro), unneeded)
	}
	sameRecords(t, scanRecords(t, loadTable(t, p, "hist")), all)
}

// sweepKeep is the set of tbl's manifest lists and manifests that
// sweepMetadata is given, as expire computes it.
func sweepKeep(t *testing.T, tbl *table.Table) map[string]bool {
	t.Helper()
	fio, err := tbl.FS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keep, err := manifestsOf(fio, tbl.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	return keep
}

// metadataFiles lists the manifest lists and manifests (avro) and the
// metadata files under the store's Iceberg prefix, and the avro files no
// snapshot of tbl lists (unneeded).
func metadataFiles(t *testing.T, s store, tbl *table.Table, root string) (avro, metas, unneeded []string) {
	t.Helper()
	ctx := context.Background()
	fio, err := tbl.FS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	needed := map[string]bool{}
	for _, sn := range tbl.Metadata().Snapshots() {
		needed[strings.TrimPrefix(sn.ManifestList, root)] = true
		mans, err := sn.Manifests(fio)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mans {
			needed[strings.TrimPrefix(m.FilePath(), root)] = true
		}
	}
	for a, err := range s.bucket.List(ctx, MetadataPrefix+"/") {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(a.Key, ".avro"):
			avro = append(avro, a.Key)
			if !needed[a.Key] {
				unneeded = append(unneeded, a.Key)
			}
		case strings.HasSuffix(a.Key, ".metadata.json"):
			metas = append(metas, a.Key)
		}
	}
	if len(avro) < len(needed) {
		t.Fatalf("%d manifest files in the bucket, the retained snapshots need %d", len(avro), len(needed))
	}
	return avro, metas, unneeded
}

// TestDuckDBIcebergQuery: the DuckDB query Describe gives runs in DuckDB's
// iceberg extension over the file catalog's table and reads its rows.
func TestDuckDBIcebergQuery(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	segs, want := threeSegments(t, s, "IF2406", withColumns(pxColumns))
	src.add(segs...)
	mustSync(t, p, "IF2406")
	info, err := p.Describe(context.Background(), "IF2406")
	if err != nil {
		t.Fatal(err)
	}
	q := strings.Replace(info.Queries["duckdb"], "SELECT *", `SELECT "offset"::VARCHAR AS o, (epoch_us(ts) * 1000 + ts_nanos)::VARCHAR AS ts_ns, px`, 1)
	rows, stderr, err := duckdbRun(t, q)
	if err != nil && strings.Contains(stderr, "Failed to download extension") {
		// DuckDB fetches its iceberg extension from its own site, which
		// this machine cannot reach (only the npm, Go and Debian
		// registries are): the query is checked where it can be.
		t.Skipf("DuckDB cannot install its iceberg extension here: %s", strings.TrimSpace(stderr))
	}
	if err != nil {
		t.Fatalf("duckdb %q: %v\n%s", q, err, stderr)
	}
	if len(rows) != 100 {
		t.Fatalf("DuckDB iceberg_scan: %d rows, want 100 (LIMIT)", len(rows))
	}
	for i, r := range want[:100] {
		if rows[i]["o"] != strconv.FormatUint(r.Offset, 10) || rows[i]["ts_ns"] != strconv.FormatInt(r.TS, 10) {
			t.Fatalf("row %d: %v, want %+v", i, rows[i], r)
		}
	}
}

// TestAwkwardStreamNames: stream names with dots, or that engines would
// read as NULL or a number, are tables of their own in both catalogs.
func TestAwkwardStreamNames(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		src := newSource()
		p := open(t, s, src)
		names := []string{"NULL", "2026", "000001", "md.IF2406.tick", "a.b"}
		for i, name := range names {
			recs := records(0, 5+i, 20000*day, 1000)
			src.add(putSegment(t, s, name, recs, pqfile.Options{}))
		}
		results, err := p.SyncAll(context.Background())
		if err != nil || len(results) != len(names) {
			t.Fatalf("SyncAll: %v, %+v", err, results)
		}
		for _, res := range results {
			if res.Added != 1 {
				t.Fatalf("%s: %+v", res.Stream, res)
			}
		}
		for i, name := range names {
			info, err := p.Describe(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			if info.Records != int64(5+i) || info.Table != "tierd."+name {
				t.Fatalf("%s: %+v", name, info)
			}
			if got := len(scanRecords(t, loadTable(t, p, name))); got != 5+i {
				t.Fatalf("%s: scan read %d records, want %d", name, got, 5+i)
			}
		}
	})
}

// TestBackfillInBatches: a Sync with more files to add than one commit
// takes adds them all, in several snapshots, and reads exactly.
func TestBackfillInBatches(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	p.maxAdds = 2
	var all []tiers.Record
	for i := range 5 {
		recs := records(uint64(i*10), 10, 20000*day+int64(i)*1e9, 1000)
		src.add(putSegment(t, s, "backfill", recs, pqfile.Options{}))
		all = append(all, recs...)
	}
	res := mustSync(t, p, "backfill")
	tbl := loadTable(t, p, "backfill")
	if res.Added != 5 || res.Files != 5 || len(tbl.Metadata().Snapshots()) != 3 {
		t.Fatalf("Sync: %+v, %d snapshots (want 3)", res, len(tbl.Metadata().Snapshots()))
	}
	sameRecords(t, scanRecords(t, tbl), all)
}

// TestClosed: calls after Close fail with ErrClosed; Close twice is fine.
func TestClosed(t *testing.T) {
	s := fileStore(t)
	o := s.opts
	o.Segments = newSource()
	p, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sync(context.Background(), "s"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: %v", err)
	}
	if err := p.Remove(context.Background(), "s", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Remove after Close: %v", err)
	}
	if _, err := p.Describe(context.Background(), "s"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Describe after Close: %v", err)
	}
	if _, err := Open(context.Background(), Options{ColdURL: "ftp://x"}); err == nil {
		t.Fatal("Open of a bad store URL succeeded")
	}
	if _, err := p.Sync(context.Background(), "../x"); err == nil {
		t.Fatal("Sync of a bad stream name succeeded")
	}
}

// TestSweepKeepsRecentFiles: the metadata sweep deletes an unreferenced
// manifest file older than the grace period and keeps one written just now
// (a writer's commit in flight), a file of another kind (the file catalog's
// own), and everything the table references.
func TestSweepKeepsRecentFiles(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	recs := records(0, 5, 20000*day, 1000)
	src.add(putSegment(t, s, "sweep", recs, pqfile.Options{}))
	mustSync(t, p, "sweep")
	tbl := loadTable(t, p, "sweep")
	dir := MetadataPrefix + "/" + DefaultNamespace + "/sweep/metadata/"
	put := func(name string, age time.Duration) {
		t.Helper()
		body := []byte("not a manifest")
		if err := s.bucket.Put(ctx, dir+name, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(strings.TrimPrefix(s.url, "file://"), dir, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	put("old-m0.avro", 2*sweepGrace)
	put("old.metadata.json", 2*sweepGrace)
	put("fresh-m0.avro", 0)
	put("notes.txt", 2*sweepGrace)
	n, err := p.sweepMetadata(ctx, tbl, tbl.Metadata(), tbl.MetadataLocation(), sweepKeep(t, tbl))
	if err != nil || n != 2 {
		t.Fatalf("sweep deleted %d files (%v), want the 2 old unreferenced ones", n, err)
	}
	for name, want := range map[string]bool{"old-m0.avro": false, "old.metadata.json": false, "fresh-m0.avro": true, "notes.txt": true} {
		_, err := s.bucket.Stat(ctx, dir+name)
		if got := err == nil; got != want {
			t.Errorf("%s exists: %v, want %v (%v)", name, got, want, err)
		}
	}
	sameRecords(t, scanRecords(t, loadTable(t, p, "sweep")), recs)
}

// TestFiles: Files lists a table's data files as their object keys, sorted;
// a stream without a table is ErrNoTable.
func TestFiles(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	if _, err := p.Files(ctx, "f"); !errors.Is(err, ErrNoTable) {
		t.Fatalf("Files of a stream without a table: %v, want ErrNoTable", err)
	}
	var want []string
	for i := range 3 {
		m := putSegment(t, s, "f", records(uint64(i*5), 5, 20000*day+int64(i)*1e9, 1000), pqfile.Options{})
		src.add(m)
		want = append(want, cold.ObjectKey(m))
	}
	mustSync(t, p, "f")
	got, err := p.Files(ctx, "f")
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Files = %q, %v; want %q", got, err, want)
	}
}
