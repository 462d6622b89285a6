package pqfile

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go/format"

	"github.com/tierd/tierd/tiers"
)

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

// duckdb runs testenv/duckdb/read.mjs with args (installing DuckDB from npm
// into .cache/duckdb on first use) and decodes its JSON rows. A missing node
// or a failed install fails the test with the tool's output: the interop
// check is part of the suite, not optional.
func duckdb(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the DuckDB interop test (install Node.js ≥ 18): %v", err)
	}
	cmd := exec.Command(node, append([]string{filepath.Join(root, "testenv", "duckdb", "read.mjs")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb %q: %v\nstderr:\n%s", args, err, stderr.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("duckdb %q: bad JSON %q: %v\nstderr:\n%s", args, stdout.String(), err, stderr.String())
	}
	return rows
}

// sqlString quotes s as a SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// writeFile writes recs with Write to path.
func writeFile(t *testing.T, path, stream string, recs []tiers.Record, opts Options) Info {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Write(context.Background(), f, stream, seqOf(recs), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestDuckDBReadsSameRows: DuckDB, a standard engine, reads the rows Write
// wrote, field for field, with ts as TIMESTAMP_NS, and sees the tierd
// metadata, the statistics and the key bloom filter.
func TestDuckDBReadsSameRows(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("format %d", version), func(t *testing.T) { testDuckDBReadsSameRows(t, version) })
	}
}

// duckdbRowsV2 is read.mjs's default query for a format 2 file: the same
// columns, ts_ns rebuilt from ts (µs) and ts_nanos, the value's bytes from
// whichever of value (JSON, as UTF-8) and value_bin is set, and which are
// NULL.
func duckdbRowsV2(t *testing.T, path string) []map[string]any {
	return duckdb(t, "--sql", fmt.Sprintf(`
		SELECT "offset"::VARCHAR AS "offset",
		       (epoch_us(ts) * 1000 + ts_nanos)::VARCHAR AS ts_ns,
		       typeof(ts) AS ts_type,
		       strftime(ts, '%%Y-%%m-%%d') AS day,
		       key, tags,
		       coalesce(hex(encode(value::VARCHAR)), hex(value_bin)) AS value_hex,
		       (value IS NOT NULL)::VARCHAR AS is_json,
		       (value_bin IS NOT NULL)::VARCHAR AS is_bin,
		       typeof(value) AS value_type
		  FROM read_parquet(%s) ORDER BY "offset"`, sqlString(path)))
}

func testDuckDBReadsSameRows(t *testing.T, version int) {
	recs := mixedRecords(2100, 1<<40)
	path := filepath.Join(t.TempDir(), "seg.parquet")
	info := writeFile(t, path, "IF2406", recs, Options{RowGroupRows: 700, Version: version})

	var rows []map[string]any
	wantTSType, fv := "TIMESTAMP_NS", FormatVersion1
	if version == 2 {
		rows, wantTSType, fv = duckdbRowsV2(t, path), "TIMESTAMP", FormatVersion
	} else {
		rows = duckdb(t, path)
	}
	if len(rows) != len(recs) {
		t.Fatalf("DuckDB read %d rows, want %d", len(rows), len(recs))
	}
	for i, r := range recs {
		got := rows[i]
		tags := []string{}
		for _, x := range got["tags"].([]any) {
			tags = append(tags, x.(string))
		}
		value, err := hex.DecodeString(got["value_hex"].(string))
		if err != nil {
			t.Fatal(err)
		}
		rec := tiers.Record{Key: got["key"].(string), Tags: tags, Value: value}
		if rec.Offset, err = strconv.ParseUint(got["offset"].(string), 10, 64); err != nil {
			t.Fatal(err)
		}
		if rec.TS, err = strconv.ParseInt(got["ts_ns"].(string), 10, 64); err != nil {
			t.Fatal(err)
		}
		if got["ts_type"] != wantTSType {
			t.Fatalf("DuckDB types ts as %v, want %s", got["ts_type"], wantTSType)
		}
		if version == 2 {
			js := IsJSON(r.Value)
			if got["is_json"] != strconv.FormatBool(js) || got["is_bin"] != strconv.FormatBool(!js) || got["value_type"] != "JSON" {
				t.Fatalf("row %d: value set %v, value_bin set %v (type %v); the value is JSON: %t", i, got["is_json"], got["is_bin"], got["value_type"], js)
			}
			if day := time.Unix(0, r.TS).UTC().Format(time.DateOnly); got["day"] != day {
				t.Fatalf("row %d: DuckDB's day of ts is %v, the UTC day %s", i, got["day"], day)
			}
		}
		if !rec.Equal(&r) {
			t.Fatalf("row %d: DuckDB read %s, want %s", i, abbrev(rec), abbrev(r))
		}
	}

	kv := duckdb(t, "--sql", fmt.Sprintf(
		`SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata(%s) WHERE decode(key) LIKE 'tierd.%%' ORDER BY k`, sqlString(path)))
	gotKV := map[string]string{}
	for _, r := range kv {
		gotKV[r["k"].(string)] = r["v"].(string)
	}
	want, err := metadataOf(&info.Meta, nil, fv, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The 1.2 keys, as the file holds them, and the metadata checksum
	// DuckDB's bytes must sum to.
	fb, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pr := openBytes(t, fb)
	for _, k := range []string{MetaRowGroups, MetaChecksum} {
		v, ok := pr.file.Lookup(k)
		if !ok {
			t.Fatalf("the file has no %s", k)
		}
		want[k] = v
	}
	if len(gotKV) != len(want) {
		t.Errorf("DuckDB sees %d tierd keys, want %d: %v", len(gotKV), len(want), gotKV)
	}
	for k, v := range want {
		if gotKV[k] != v {
			t.Errorf("DuckDB sees %s = %q, want %q", k, gotKV[k], v)
		}
	}
	var kvs []format.KeyValue
	for k, v := range gotKV {
		kvs = append(kvs, format.KeyValue{Key: k, Value: v})
	}
	if sum, err := metaChecksum(kvs); err != nil || sum != gotKV[MetaChecksum] {
		t.Errorf("DuckDB's tierd metadata sums to %s (%v), %s is %s", sum, err, MetaChecksum, gotKV[MetaChecksum])
	}

	md := duckdb(t, "--sql", fmt.Sprintf(
		`SELECT row_group_id::VARCHAR AS rg, path_in_schema AS col, stats_min_value AS lo, stats_max_value AS hi,
		        (bloom_filter_offset IS NOT NULL)::VARCHAR AS bloom, compression
		   FROM parquet_metadata(%s) ORDER BY row_group_id, column_id`, sqlString(path)))
	for _, m := range md {
		if m["compression"] != "ZSTD" {
			t.Errorf("row group %v column %v compression %v, want ZSTD", m["rg"], m["col"], m["compression"])
		}
		rg, _ := strconv.Atoi(m["rg"].(string))
		switch m["col"] {
		case "offset":
			lo, hi := fmt.Sprint(recs[rg*700].Offset), fmt.Sprint(recs[rg*700+699].Offset)
			if m["lo"] != lo || m["hi"] != hi {
				t.Errorf("row group %d offset statistics %v..%v, want %s..%s", rg, m["lo"], m["hi"], lo, hi)
			}
		case "ts":
			if m["lo"] == nil || m["hi"] == nil {
				t.Errorf("row group %d has no ts statistics", rg)
			}
		case "key":
			if m["bloom"] != "true" {
				t.Errorf("row group %d: no bloom filter on key", rg)
			}
		}
	}

	probe := duckdb(t, "--sql", fmt.Sprintf(
		`SELECT count(*)::VARCHAR AS n FROM parquet_bloom_probe(%s, 'key', 'no-such-key') WHERE NOT bloom_filter_excludes`, sqlString(path)))
	if probe[0]["n"] != "0" {
		t.Errorf("DuckDB's bloom probe cannot exclude an absent key from %v row groups", probe[0]["n"])
	}
}

// TestDuckDBHivePartitions: the cold store's key layout
// stream=<s>/date=<d>/<base>-<last>.parquet gives DuckDB stream and date
// columns with hive_partitioning.
func TestDuckDBHivePartitions(t *testing.T) {
	dir := t.TempDir()
	parts := []struct {
		stream, date string
		base         uint64
		n            int
	}{
		{"IF2406", "2026-11-21", 0, 300},
		{"IF2406", "2026-11-22", 300, 200},
		{"IC2406", "2026-11-22", 0, 100},
	}
	for _, p := range parts {
		recs := uniformRecords(p.n, p.base, 50, 5, 0)
		name := fmt.Sprintf("%020d-%020d.parquet", p.base, p.base+uint64(p.n)-1)
		writeFile(t, filepath.Join(dir, "stream="+p.stream, "date="+p.date, name), p.stream, recs, Options{})
	}
	rows := duckdb(t, "--sql", fmt.Sprintf(
		`SELECT stream, date::VARCHAR AS date, typeof(date) AS date_type, count(*)::VARCHAR AS n, min("offset")::VARCHAR AS lo
		   FROM read_parquet(%s, hive_partitioning = true) GROUP BY ALL ORDER BY stream, date`,
		sqlString(filepath.Join(dir, "**", "*.parquet"))))
	want := []string{
		"IC2406 2026-11-22 DATE 100 0",
		"IF2406 2026-11-21 DATE 300 0",
		"IF2406 2026-11-22 DATE 200 300",
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%v %v %v %v %v", r["stream"], r["date"], r["date_type"], r["n"], r["lo"]))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("DuckDB over the hive layout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
