package tables

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// store is a cold store for a test: its URL, the bucket, and the options a
// Publisher needs to reach it.
type store struct {
	name   string
	url    string
	bucket objstore.Bucket
	opts   Options // ColdURL and credentials
}

func fileStore(t testing.TB) store {
	t.Helper()
	dir := t.TempDir()
	url := "file://" + dir
	b, err := objstore.Open(context.Background(), url, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return store{name: "file", url: url, bucket: b, opts: Options{ColdURL: url}}
}

func minioStore(t testing.TB) store {
	t.Helper()
	m := testenv.StartMinIO(t)
	url := m.URL("minio")
	b, err := objstore.Open(context.Background(), url, objstore.Options{AccessKey: m.AccessKey, SecretKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return store{name: "minio", url: url, bucket: b, opts: Options{ColdURL: url, AccessKey: m.AccessKey, SecretKey: m.SecretKey}}
}

// eachStore runs f against file:// and MinIO, with the file catalog and
// with the PostgreSQL catalog.
func eachStore(t *testing.T, f func(t *testing.T, s store)) {
	for _, c := range []struct {
		name string
		mk   func(t testing.TB) store
		pg   bool
	}{
		{"file", fileStore, false},
		{"minio", minioStore, false},
		{"file+pg", fileStore, true},
		{"minio+pg", minioStore, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := c.mk(t)
			if c.pg {
				s.opts.CatalogDSN = testenv.StartPostgres(t).DSN
			}
			f(t, s)
		})
	}
}

// source is the catalog's view for a test: the wanted cold segments.
type source struct {
	mu   sync.Mutex
	segs map[string][]tiers.SegmentMeta
}

func newSource() *source { return &source{segs: map[string][]tiers.SegmentMeta{}} }

func (s *source) ColdSegments(_ context.Context, stream string) ([]tiers.SegmentMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.segs[stream]), nil
}

func (s *source) StreamNames(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.segs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func (s *source) add(ms ...tiers.SegmentMeta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms {
		s.segs[m.Stream] = append(s.segs[m.Stream], m)
	}
}

func (s *source) drop(stream string, base uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.segs[stream] = slices.DeleteFunc(s.segs[stream], func(m tiers.SegmentMeta) bool { return m.Base == base })
}

// records makes n records from offset base: ts from ts0 in steps of step
// ns (not multiples of 1000, so ts_nanos matters), JSON values with a px
// field, every fifth a binary value and every seventh an empty one.
func records(base uint64, n int, ts0, step int64) []tiers.Record {
	recs := make([]tiers.Record, n)
	for i := range recs {
		o := base + uint64(i)
		r := tiers.Record{Offset: o, TS: ts0 + int64(i)*step, Key: fmt.Sprintf("k%03d", o%17)}
		switch {
		case o%7 == 3:
			r.Value = []byte{}
		case o%5 == 1:
			r.Value = []byte{0xff, 0x00, byte(o), '{'}
		default:
			r.Value = fmt.Appendf(nil, `{"px":%d.5,"n":%d}`, o, o)
		}
		if o%3 == 0 {
			r.Tags = []string{"a", fmt.Sprint(o % 4)}
		}
		recs[i] = r
	}
	return recs
}

func seqOf(recs []tiers.Record) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// putSegment writes recs with pqfile.Write (format version, typed columns)
// to the store at cold.ObjectKey and returns the segment's metadata.
func putSegment(t testing.TB, s store, stream string, recs []tiers.Record, popts pqfile.Options) tiers.SegmentMeta {
	t.Helper()
	ctx := context.Background()
	f, err := os.CreateTemp(t.TempDir(), "seg-*.parquet")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := pqfile.Write(ctx, f, stream, seqOf(recs), popts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	m := info.Meta
	m.Placements = tiers.Of(tiers.Cold)
	m.ColdBytes = m.Bytes
	if err := s.bucket.Put(ctx, cold.ObjectKey(m), f, m.Bytes); err != nil {
		t.Fatal(err)
	}
	return m
}

// pxColumns is a typed column projected from the test values.
var pxColumns = []pqfile.Column{{Name: "px", Path: "$.px", Type: pqfile.TypeDouble}}

func open(t testing.TB, s store, src *source) *Publisher {
	t.Helper()
	o := s.opts
	o.Segments = src
	p, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func mustSync(t *testing.T, p *Publisher, stream string) SyncResult {
	t.Helper()
	res, err := p.Sync(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func loadTable(t *testing.T, p *Publisher, stream string) *table.Table {
	t.Helper()
	tbl, err := p.load(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	if tbl == nil {
		t.Fatalf("no table for %s", stream)
	}
	return tbl
}

// scanRecords reads the table with iceberg-go's scan (arrow) and rebuilds
// the records: ts_ns from ts and ts_nanos, the value from value or
// value_bin (exactly one set). Rows come sorted by offset.
func scanRecords(t *testing.T, tbl *table.Table, opts ...table.ScanOption) []tiers.Record {
	t.Helper()
	_, batches, err := tbl.Scan(opts...).ToArrowRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []tiers.Record
	for b, err := range batches {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, batchRecords(t, b)...)
		b.Release()
	}
	slices.SortFunc(out, func(a, b tiers.Record) int { return cmp.Compare(a.Offset, b.Offset) })
	return out
}

func col(t *testing.T, b arrow.RecordBatch, name string) arrow.Array {
	t.Helper()
	idx := b.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("scan has no column %s: %s", name, b.Schema())
	}
	return b.Column(idx[0])
}

func batchRecords(t *testing.T, b arrow.RecordBatch) []tiers.Record {
	t.Helper()
	off := col(t, b, "offset").(*array.Int64)
	ts := col(t, b, "ts").(*array.Timestamp)
	tsn := col(t, b, "ts_nanos").(*array.Int32)
	key := col(t, b, "key").(*array.String)
	tags := col(t, b, "tags").(*array.List)
	tagv := tags.ListValues().(*array.String)
	val := col(t, b, "value").(*array.String)
	bin := col(t, b, "value_bin").(*array.Binary)
	out := make([]tiers.Record, b.NumRows())
	for i := range out {
		r := tiers.Record{Offset: uint64(off.Value(i)), TS: int64(ts.Value(i))*1000 + int64(tsn.Value(i)), Key: key.Value(i)}
		lo, hi := tags.ValueOffsets(i)
		for j := lo; j < hi; j++ {
			r.Tags = append(r.Tags, tagv.Value(int(j)))
		}
		switch {
		case val.IsValid(i) && !bin.IsValid(i):
			r.Value = []byte(val.Value(i))
		case bin.IsValid(i) && !val.IsValid(i):
			r.Value = slices.Clone(bin.Value(i))
		default:
			t.Fatalf("offset %d: value valid %v, value_bin valid %v: want exactly one", r.Offset, val.IsValid(i), bin.IsValid(i))
		}
		out[i] = r
	}
	return out
}

func sameRecords(t *testing.T, got, want []tiers.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || g.TS != w.TS || g.Key != w.Key || !slices.Equal(g.Tags, w.Tags) || !bytes.Equal(g.Value, w.Value) {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
	}
}

// plannedFiles is the data files a scan with opts plans.
func plannedFiles(t *testing.T, tbl *table.Table, opts ...table.ScanOption) []string {
	t.Helper()
	tasks, err := tbl.Scan(opts...).PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, task := range tasks {
		paths = append(paths, task.File.FilePath())
	}
	slices.Sort(paths)
	return paths
}

// tsFilter is ts in [from, to] (Unix ns, to whole microseconds).
func tsFilter(from, to int64) table.ScanOption {
	return table.WithRowFilter(iceberg.NewAnd(
		iceberg.GreaterThanEqual(iceberg.Reference("ts"), iceberg.Timestamp(from/1000)),
		iceberg.LessThanEqual(iceberg.Reference("ts"), iceberg.Timestamp(to/1000))))
}

// repoRoot finds the module root above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// duckdb runs testenv/duckdb/read.mjs --sql (as cold/pqfile's tests do)
// and decodes its JSON rows. A missing node fails the test: the interop
// check is part of the suite.
func duckdb(t *testing.T, sql string) []map[string]any {
	t.Helper()
	rows, stderr, err := duckdbRun(t, sql)
	if err != nil {
		t.Fatalf("duckdb %q: %v\nstderr:\n%s", sql, err, stderr)
	}
	return rows
}

// duckdbRun is duckdb returning the failure and DuckDB's stderr.
func duckdbRun(t *testing.T, sql string) ([]map[string]any, string, error) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the DuckDB interop test: %v", err)
	}
	cmd := exec.Command(node, filepath.Join(repoRoot(t), "testenv", "duckdb", "read.mjs"), "--sql", sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("duckdb hung:\n%s", stderr.String())
	}
	if err != nil {
		return nil, stderr.String(), err
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("duckdb: bad JSON %q: %v", stdout.String(), err)
	}
	return rows, stderr.String(), nil
}

func sqlList(paths []string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = sqlString(strings.TrimPrefix(p, "file://"))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// pxProjector projects the test values' top-level fields named like the
// columns (the tests' stand-in for cold/colproj): double from a number,
// string from a string.
type pxProjector struct{ cols []pqfile.Column }

func (p pxProjector) Project(value []byte, out []pqfile.Value) {
	var m map[string]any
	err := json.Unmarshal(value, &m)
	for i, c := range p.cols {
		out[i] = pqfile.Value{}
		if err != nil {
			continue
		}
		switch v := m[strings.TrimPrefix(c.Path, "$.")].(type) {
		case float64:
			if c.Type == pqfile.TypeDouble {
				out[i] = pqfile.Value{Valid: true, F: v}
			}
		case string:
			if c.Type == pqfile.TypeString {
				out[i] = pqfile.Value{Valid: true, S: v}
			}
		}
	}
}

// withColumns returns pqfile options writing cols with pxProjector.
func withColumns(cols []pqfile.Column) pqfile.Options {
	return pqfile.Options{Columns: cols, Projector: pxProjector{cols}}
}
