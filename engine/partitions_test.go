package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
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

// node runs a testenv script (testenv/duckdb/read.mjs, testenv/polars/
// read.mjs: each installs its engine from npm into .cache on first use)
// and decodes its JSON answer into out. A missing node or a failed
// install fails the test: the interop check is part of the suite.
func node(t *testing.T, script string, out any, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the DuckDB and Polars interop tests (install Node.js ≥ 20): %v", err)
	}
	cmd := exec.Command(bin, append([]string{filepath.Join(repoRoot(t), "testenv", script)}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstderr:\n%s", script, args, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("%s %q: bad JSON %q: %v\nstderr:\n%s", script, args, stdout.String(), err, stderr.String())
	}
}

// duckdb runs one query with DuckDB and returns its rows.
func duckdb(t *testing.T, sql string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	node(t, "duckdb/read.mjs", &rows, "--sql", sql)
	return rows
}

// polarsScan is what testenv/polars/read.mjs prints.
type polarsScan struct {
	Schema map[string]string `json:"schema"`
	Rows   []struct {
		Stream any    `json:"stream"`
		Date   string `json:"date"`
		TSDate string `json:"ts_date"`
		Offset any    `json:"offset"`
	} `json:"rows"`
}

func polars(t *testing.T, args ...string) polarsScan {
	t.Helper()
	var out polarsScan
	node(t, "polars/read.mjs", &out, args...)
	return out
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// partitionNames are stream names engines would read as NULL, numbers,
// dates or booleans if written raw, and an ordinary one.
var partitionNames = []string{"NULL", "null", "2026", "000001", "1e5", "2026-01-01", "true", "IF2406"}

// acrossMidnight appends n in-order records to stream in batches of 7
// (so batches straddle midnight) from 3 s before day1's midnight on, 200
// ms apart, jumping a day after record 40: the stream's records cover
// three UTC days. It returns the number of records per UTC day.
func acrossMidnight(t *testing.T, e *Engine, stream string, n int) map[string]int {
	t.Helper()
	mid := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	days := map[string]int{}
	var recs []tiers.Record
	for i := range n {
		ts := mid.Add(-3*time.Second + time.Duration(i)*200*time.Millisecond)
		if i >= 40 {
			ts = ts.Add(24 * time.Hour)
		}
		days[ts.UTC().Format("2006-01-02")]++
		recs = append(recs, tiers.Record{TS: ts.UnixNano(), Key: fmt.Sprintf("k%d", i%3), Value: []byte(fmt.Sprintf(`{"i":%d}`, i))})
	}
	for len(recs) > 0 {
		k := min(7, len(recs))
		if _, err := e.Append(context.Background(), stream, recs[:k]); err != nil {
			t.Fatal(err)
		}
		recs = recs[k:]
	}
	return days
}

// offloadAll seals the stream and moves every segment to the cold tier.
func offloadAll(t *testing.T, e *Engine, stream string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.Seal(ctx, stream); err != nil {
		t.Fatal(err)
	}
	segs, err := e.catalog.Segments(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range segs {
		if tiers.UTCDay(m.MinTS) != tiers.UTCDay(m.MaxTS) {
			t.Errorf("%s: segment [%d, %d] spans two UTC days", stream, m.Base, m.Last)
		}
		if _, err := e.Offload(ctx, stream, m.Base, false); err != nil {
			t.Fatal(err)
		}
	}
}

// TestColdPartitionsAreHonest: the engine writes real cold files for
// in-order streams whose records cross midnight (inside batches too) and
// whose names engines would mistype; DuckDB over the files with Hive
// partitioning counts as many rows for `date = D` as for `ts::date = D`,
// for every D and every stream, and reads every stream name back as the
// same string (VARCHAR), also when it reads only all-numeric stream
// directories; Polars with default settings reads the names back as the
// same strings and each row's date is its ts's day. What Polars does with
// only numeric-looking names (it types them as numbers whatever the
// encoding, since it decodes before inferring) is asserted too, with the
// reader setting that fixes it (docs/format/parquet.md, "Partitions").
func TestColdPartitionsAreHonest(t *testing.T) {
	dir, storeURL := fileStore(t)
	e := openWithCold(t, t.TempDir(), storeURL)
	defer e.Close(context.Background())
	const n = 60
	var days map[string]int
	for _, name := range partitionNames {
		days = acrossMidnight(t, e, name, n)
		offloadAll(t, e, name)
	}
	wantVerifyClean(t, e)
	if len(days) != 3 {
		t.Fatalf("records on %d days, want 3", len(days))
	}
	glob := sqlString(filepath.Join(dir, "**", "*.parquet"))

	// date = D and ts::date = D agree for every D, per stream and overall.
	// ts::date is the UTC day both for format 1.2's TIMESTAMP_NS ts and
	// format 2's TIMESTAMP (MICROS, not adjusted to UTC).
	rows := duckdb(t, `
		WITH t AS (SELECT stream, date, ts FROM read_parquet(`+glob+`, hive_partitioning = true)),
		     d AS (SELECT DISTINCT stream, date AS d FROM t UNION SELECT DISTINCT stream, ts::date FROM t)
		SELECT stream, d::VARCHAR AS d, typeof(stream) AS stream_type,
		       (SELECT count(*) FROM t WHERE t.stream = d.stream AND t.date = d.d)::INTEGER AS by_date,
		       (SELECT count(*) FROM t WHERE t.stream = d.stream AND t.ts::date = d.d)::INTEGER AS by_ts
		FROM d ORDER BY stream, d`)
	var streams []string
	for _, r := range rows {
		s, ok := r["stream"].(string)
		if !ok || r["stream_type"] != "VARCHAR" {
			t.Errorf("DuckDB reads stream %v as %v (%T)", r["stream"], r["stream_type"], r["stream"])
			continue
		}
		if r["by_date"] != r["by_ts"] || r["by_date"] != float64(days[r["d"].(string)]) {
			t.Errorf("stream %s, day %v: %v rows with date = D, %v with ts::date = D, wrote %d", s, r["d"], r["by_date"], r["by_ts"], days[r["d"].(string)])
		}
		if !slices.Contains(streams, s) {
			streams = append(streams, s)
		}
	}
	want := slices.Clone(partitionNames)
	sort.Strings(want)
	sort.Strings(streams)
	if !slices.Equal(streams, want) {
		t.Fatalf("DuckDB reads streams %q, want %q", streams, want)
	}
	all := duckdb(t, `SELECT d::VARCHAR AS d,
		(SELECT count(*) FROM read_parquet(`+glob+`, hive_partitioning = true) WHERE date = d)::INTEGER AS by_date,
		(SELECT count(*) FROM read_parquet(`+glob+`, hive_partitioning = true) WHERE ts::date = d)::INTEGER AS by_ts
		FROM (SELECT DISTINCT date AS d FROM read_parquet(`+glob+`, hive_partitioning = true)) ORDER BY d`)
	if len(all) != 3 {
		t.Fatalf("DuckDB sees %d dates, want 3: %v", len(all), all)
	}
	for _, r := range all {
		if r["by_date"] != r["by_ts"] || r["by_date"] != float64(len(partitionNames)*days[r["d"].(string)]) {
			t.Errorf("day %v: %v rows with date = D, %v with ts::date = D", r["d"], r["by_date"], r["by_ts"])
		}
	}
	// A filter on the partition finds the stream by its name.
	for _, name := range partitionNames {
		got := duckdb(t, `SELECT count(*)::INTEGER AS n FROM read_parquet(`+glob+`, hive_partitioning = true) WHERE stream = `+sqlString(name))
		if len(got) != 1 || got[0]["n"] != float64(n) {
			t.Errorf("WHERE stream = %q: %v, want %d rows", name, got, n)
		}
	}
	// Only numeric-looking stream directories: DuckDB infers the type from
	// them alone, and the encoding keeps them strings.
	numeric := t.TempDir()
	for _, name := range []string{"2026", "000001"} {
		sub := "stream=" + cold.EscapeStream(name)
		if err := os.CopyFS(filepath.Join(numeric, sub), os.DirFS(filepath.Join(dir, sub))); err != nil {
			t.Fatal(err)
		}
	}
	got := duckdb(t, `SELECT DISTINCT stream, typeof(stream) AS ty FROM read_parquet(`+sqlString(filepath.Join(numeric, "**", "*.parquet"))+`, hive_partitioning = true) ORDER BY stream`)
	if fmt.Sprint(got) != "[map[stream:000001 ty:VARCHAR] map[stream:2026 ty:VARCHAR]]" {
		t.Errorf("DuckDB over numeric-looking streams only: %v", got)
	}

	// Polars, default settings, the whole archive: the names come back
	// exactly, and date is each row's ts's day.
	ps := polars(t, dir)
	if ps.Schema["stream"] != "String" || ps.Schema["date"] != "Date" {
		t.Errorf("Polars types the partitions %v", ps.Schema)
	}
	count := map[string]int{}
	for _, r := range ps.Rows {
		s, ok := r.Stream.(string)
		if !ok {
			t.Fatalf("Polars reads stream %v (%T)", r.Stream, r.Stream)
		}
		count[s]++
		if r.Date != r.TSDate {
			t.Errorf("Polars: stream %s offset %v has date %s, ts on %s", s, r.Offset, r.Date, r.TSDate)
		}
	}
	for _, name := range partitionNames {
		if count[name] != n {
			t.Errorf("Polars reads %d rows of stream %q, want %d (all: %v)", count[name], name, n, count)
		}
	}
	// Polars over numeric-looking names only: it percent-decodes before it
	// infers, so no key encoding keeps them strings; hiveSchema does.
	ps = polars(t, numeric)
	if ps.Schema["stream"] != "Int64" {
		t.Errorf("Polars (defaults) over streams 2026 and 000001 types stream %s; docs/format/parquet.md says Int64", ps.Schema["stream"])
	}
	ps = polars(t, "--string-hive", numeric)
	names := map[string]bool{}
	for _, r := range ps.Rows {
		s, _ := r.Stream.(string)
		names[s] = true
	}
	if ps.Schema["stream"] != "String" || len(names) != 2 || !names["2026"] || !names["000001"] {
		t.Errorf("Polars with hiveSchema {stream: String}: %v, names %v", ps.Schema, names)
	}
}

// TestEncodedStreamKeysOnEveryStore: segments of streams whose names are
// encoded in keys (NULL, 2026) go to the encoded keys on the file store and
// both S3 drivers against MinIO ('%' in an S3 key), read back exactly after
// a restart; an object an earlier release left at the raw key is read,
// verified (no orphan finding), and found by a catalog rebuild.
func TestEncodedStreamKeysOnEveryStore(t *testing.T) {
	ctx := context.Background()
	names := map[string]string{"NULL": "stream=%4EULL/", "2026": "stream=%32026/"}
	for _, cs := range coldStores {
		t.Run(cs.name, func(t *testing.T) {
			dir, storeURL := t.TempDir(), cs.url(t)
			e := openWithCold(t, dir, storeURL)
			want := map[string][]Item{}
			for name := range names {
				acrossMidnight(t, e, name, 30)
				offloadAll(t, e, name)
				want[name] = readAll(t, e, name, tiers.AllRecords())
			}
			if err := e.Close(ctx); err != nil {
				t.Fatal(err)
			}
			keys := listObjects(t, storeURL)
			for _, k := range keys {
				if !strings.HasPrefix(k, names["NULL"]) && !strings.HasPrefix(k, names["2026"]) {
					t.Errorf("object at %s: not an encoded stream key", k)
				}
			}
			// One object moves to its legacy key, as an earlier release
			// would have written it.
			ct := openCold(t, storeURL)
			var moved string
			for o, err := range ct.Objects(ctx, "2026") {
				if err != nil {
					t.Fatal(err)
				}
				moved = o.Key
				break
			}
			ct.Close()
			legacy := strings.Replace(moved, names["2026"], "stream=2026/", 1)
			moveKey(t, storeURL, moved, legacy)

			check := func(when string) {
				t.Helper()
				e := openWithCold(t, dir, storeURL)
				defer e.Close(ctx)
				for name, w := range want {
					got := readAll(t, e, name, tiers.AllRecords())
					if len(got) != len(w) {
						t.Fatalf("%s: %s reads %d records, want %d", when, name, len(got), len(w))
					}
					for i := range got {
						if !got[i].Record.Equal(&w[i].Record) || got[i].Tier != tiers.Cold {
							t.Fatalf("%s: %s record %d = %+v from %v, want %+v from cold", when, name, i, got[i].Record, got[i].Tier, w[i].Record)
						}
					}
				}
				wantVerifyClean(t, e)
			}
			check("with an object at its legacy key")
			if err := os.Remove(filepath.Join(dir, "catalog.db")); err != nil {
				t.Fatal(err)
			}
			ct = openCold(t, storeURL)
			rep, err := RebuildCatalog(ctx, dir, ct, nil, nil)
			ct.Close()
			if err != nil || rep.ColdObjects != len(keys) || len(rep.Unreadable) != 0 || len(rep.Conflicts) != 0 {
				t.Fatalf("rebuild: %+v, %v; want %d cold objects read", rep, err, len(keys))
			}
			check("after a catalog rebuild")
		})
	}
}

// moveKey moves an object of the store at storeURL to another key.
func moveKey(t *testing.T, storeURL, from, to string) {
	t.Helper()
	ctx := context.Background()
	b, err := objstore.Open(ctx, storeURL, storeOptions(storeURL))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rc, err := b.Get(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, to, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, from); err != nil {
		t.Fatal(err)
	}
}
