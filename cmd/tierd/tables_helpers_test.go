package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	icebergio "github.com/apache/iceberg-go/io"

	"github.com/tierd/tierd/client"
)

// Helpers of the Iceberg tables' end-to-end tests (tables_test.go): a
// workload with JSON and binary values, its records as tierd serves them,
// and the table read back with iceberg-go's scan, from the metadata file
// alone, as any engine would.

// tablesConfig is a local-mode configuration with a file cold store under
// dir, tables committed every second, the migrator run by hand (an hourly
// schedule) and, with retention, cold segments of stream family "exp*"
// deleted once they are two seconds old (after a one second delete delay).
func tablesConfig(dir string) string {
	return fmt.Sprintf(`
hot: {max_age: 1s}
cold: {store: %q, delete_delay: 1s}
migrator: {schedule: "@every 1h"}
tables: {commit_interval: 1s}
policies:
  - name: expiring
    streams: ["exp*"]
    warm: {max_age: 1s}
    cold: {max_age: 2s}
    columns: [{name: px, path: $.px, type: double}]
  - name: keep
    streams: ["*"]
    columns: [{name: px, path: $.px, type: double}, {name: sym, path: $.sym, type: string}]
`, "file://"+filepath.Join(dir, "cold"))
}

// tableRecord is a record as the table holds it: ts to the nanosecond
// (ts and ts_nanos), the value's bytes (value or value_bin).
type tableRecord struct {
	Offset uint64
	TS     int64
	Key    string
	Tags   []string
	Value  []byte
}

func (r tableRecord) String() string {
	return fmt.Sprintf("{%d %d %q %q %q}", r.Offset, r.TS, r.Key, r.Tags, r.Value)
}

// workload is n records of one batch: JSON values with px and sym, every
// fourth one bytes that are not JSON, timestamps with nanoseconds.
func workload(batch, n int) []client.Record {
	base := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).Add(time.Duration(batch) * time.Minute)
	recs := make([]client.Record, n)
	for i := range recs {
		r := client.Record{Key: fmt.Sprintf("k%d-%d", batch, i), TS: base.Add(time.Duration(i)*time.Millisecond + 123*time.Nanosecond), Tags: []string{"b" + strconv.Itoa(batch)}}
		if i%4 == 3 {
			r.ValueB64 = []byte{0, 0xff, byte(batch), byte(i), '\n'}
		} else {
			r.Value = []byte(fmt.Sprintf(`{"px":%d.25,"sym":"IF%d"}`, i, batch))
		}
		recs[i] = r
	}
	return recs
}

// appendSealOffload appends recs to stream as one batch, seals it and
// moves it to the cold tier: one cold segment.
func appendSealOffload(t *testing.T, c *client.Client, stream string, recs []client.Record) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Append(ctx, stream, recs); err != nil {
		t.Fatal(err)
	}
	res, err := c.Seal(ctx, stream)
	if err != nil || res.Segment == nil {
		t.Fatalf("seal %s: %+v, %v", stream, res, err)
	}
	if _, err := c.Offload(ctx, stream, res.Segment.Base, false); err != nil {
		t.Fatalf("offload %s/%d: %v", stream, res.Segment.Base, err)
	}
}

// served is every record of stream tierd serves, as a table holds them.
func served(t *testing.T, c *client.Client, stream string) []tableRecord {
	t.Helper()
	var out []tableRecord
	for r, err := range c.Read(context.Background(), stream, client.Query{Limit: 100000}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tableRecord{Offset: r.Offset, TS: r.TS.UnixNano(), Key: r.Key, Tags: r.Tags, Value: r.Bytes()})
	}
	return out
}

// scanTable reads the table whose current metadata file is metaLoc with
// iceberg-go's scan and returns its records in offset order, and the data
// files the scan planned. props are iceberg-go's IO properties (S3
// endpoint and credentials; nil for a file store).
func scanTable(t *testing.T, stream, metaLoc string, props map[string]string) ([]tableRecord, []string) {
	t.Helper()
	ctx := context.Background()
	tbl, err := table.NewFromLocation(ctx, table.Identifier{"tierd", stream}, metaLoc, icebergio.LoadFSFunc(props, metaLoc), nil)
	if err != nil {
		t.Fatalf("open the table at %s: %v", metaLoc, err)
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, task := range tasks {
		files = append(files, task.File.FilePath())
	}
	slices.Sort(files)
	_, batches, err := tbl.Scan().ToArrowRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []tableRecord
	for b, err := range batches {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, arrowRecords(t, b)...)
		b.Release()
	}
	slices.SortFunc(out, func(a, b tableRecord) int { return cmpU64(a.Offset, b.Offset) })
	return out, files
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func arrowColumn(t *testing.T, b arrow.RecordBatch, name string) arrow.Array {
	t.Helper()
	idx := b.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("the scan has no column %s: %s", name, b.Schema())
	}
	return b.Column(idx[0])
}

// arrowRecords rebuilds the records of a scanned batch: ts_ns from ts and
// ts_nanos, the value from value or value_bin, exactly one of them set.
func arrowRecords(t *testing.T, b arrow.RecordBatch) []tableRecord {
	t.Helper()
	off := arrowColumn(t, b, "offset").(*array.Int64)
	ts := arrowColumn(t, b, "ts").(*array.Timestamp)
	tsn := arrowColumn(t, b, "ts_nanos").(*array.Int32)
	key := arrowColumn(t, b, "key").(*array.String)
	tags := arrowColumn(t, b, "tags").(*array.List)
	tagv := tags.ListValues().(*array.String)
	val := arrowColumn(t, b, "value").(*array.String)
	bin := arrowColumn(t, b, "value_bin").(*array.Binary)
	out := make([]tableRecord, b.NumRows())
	for i := range out {
		r := tableRecord{Offset: uint64(off.Value(i)), TS: int64(ts.Value(i))*1000 + int64(tsn.Value(i)), Key: key.Value(i)}
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
			t.Fatalf("offset %d: value set %v, value_bin set %v: want exactly one", r.Offset, val.IsValid(i), bin.IsValid(i))
		}
		out[i] = r
	}
	return out
}

// diffRecords describes how got differs from want, "" when equal.
func diffRecords(got, want []tableRecord) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || g.TS != w.TS || g.Key != w.Key || !slices.Equal(g.Tags, w.Tags) || !bytes.Equal(g.Value, w.Value) {
			return fmt.Sprintf("record %d is %v, want %v", i, g, w)
		}
	}
	return ""
}

// waitTableExact waits until stream's table (GET …/table: its metadata
// file) scans to exactly want, and returns the table and its data files.
func waitTableExact(t *testing.T, c *client.Client, stream string, want []tableRecord, props map[string]string) (client.Table, []string) {
	t.Helper()
	var tb client.Table
	var files []string
	waitFor(t, 60*time.Second, "the table of "+stream+" holds exactly the served records", func() (bool, string) {
		var err error
		tb, err = c.Table(context.Background(), stream)
		if err != nil {
			return false, err.Error()
		}
		if tb.Records != int64(len(want)) {
			return false, fmt.Sprintf("table %+v, want %d records", tb, len(want))
		}
		var got []tableRecord
		got, files = scanTable(t, stream, tb.MetadataLocation, props)
		d := diffRecords(got, want)
		return d == "", d
	})
	return tb, files
}

// currentMetadata is the current metadata file of a table in the
// file-based catalog under coldDir, found without tierd: the highest
// v<N>.metadata.json (what version-hint.text names).
func currentMetadata(t *testing.T, coldDir, stream string) string {
	t.Helper()
	dir := filepath.Join(coldDir, "_iceberg", "tierd", stream, "metadata")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^v(\d+)\.metadata\.json$`)
	best, bestN := "", -1
	for _, e := range entries {
		if m := re.FindStringSubmatch(e.Name()); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > bestN {
				best, bestN = filepath.Join(dir, e.Name()), n
			}
		}
	}
	return best
}

// coldObjects lists the segment objects under coldDir (not the tables'
// metadata), as paths.
func coldObjects(t *testing.T, coldDir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(coldDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "_iceberg" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// localPaths are the table's data file names as local paths (a file
// store's data files may be named with or without file://).
func localPaths(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = strings.TrimPrefix(f, "file://")
	}
	return out
}
