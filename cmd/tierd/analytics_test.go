package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tierd/tierd/client"
)

// docQueries are the code blocks of docs/analytics.md marked
// "-- checked: NAME" (SQL) or "// checked: NAME" (JavaScript), by name, as
// written there.
func docQueries(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "analytics.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)```(?:sql|js)\n(?:--|//) checked: ([a-z-]+)\n(.*?)```")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(doc), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// duckdbRows runs sql in the DuckDB the tests use (npm, testenv/duckdb)
// and returns its rows, integers as decimal strings.
func duckdbRows(t *testing.T, sql string) []map[string]any {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the analytics examples run in DuckDB from npm, which needs Node.js ≥ 18: %v", err)
	}
	cmd := exec.Command(node, filepath.Join("..", "..", "testenv", "duckdb", "read.mjs"), "--sql", sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb: %v\n%s\nstderr:\n%s", err, sql, stderr.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("duckdb: bad JSON %q: %v", stdout.String(), err)
	}
	return rows
}

// TestAnalyticsDocDuckDB runs the DuckDB examples of docs/analytics.md, as
// written there (the cold root put in place of /var/lib/tierd/cold), over
// the cold files a real tierd wrote (format 2, typed columns px and sym)
// and a format 1.2 file beside them, and checks their answers against
// the records tierd serves: counts per stream and day, JSON fields and
// typed columns, every record's exact time and value bytes.
func TestAnalyticsDocDuckDB(t *testing.T) {
	qs := docQueries(t)
	for _, name := range []string{"per-day", "json", "exact"} {
		if qs[name] == "" {
			t.Fatalf("docs/analytics.md has no SQL block marked -- checked: %s", name)
		}
	}
	d, c, dir := tablesDaemon(t)
	for b := range 2 {
		appendSealOffload(t, c, "ticks", workload(b, 20))
	}
	want := served(t, c, "ticks")
	d.stop(t)
	coldDir := filepath.Join(dir, "cold")
	// A format 1.2 file of another stream, as older tierd versions wrote.
	legacy := filepath.Join(coldDir, "stream=legacy", "date=2026-11-22", "00000000000000001000-00000000000000001299.parquet")
	if err := os.MkdirAll(filepath.Dir(legacy), 0o755); err != nil {
		t.Fatal(err)
	}
	v1, err := os.ReadFile(filepath.Join("..", "..", "cold", "pqfile", "testdata", "v1.2.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacy, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string) []map[string]any {
		return duckdbRows(t, strings.ReplaceAll(qs[name], "/var/lib/tierd/cold", coldDir))
	}

	// per-day: every record of each stream, on its day.
	days := map[string]int{}
	for _, r := range run("per-day") {
		day, _, _ := strings.Cut(fmt.Sprint(r["date"]), "T") // read.mjs prints a DATE as a timestamp
		days[fmt.Sprint(r["stream"], " ", day)], _ = strconv.Atoi(fmt.Sprint(r["records"]))
	}
	if len(days) != 2 || days["ticks 2026-03-02"] != len(want) || days["legacy 2026-11-22"] != 300 {
		t.Fatalf("per-day: %v, want ticks 2026-03-02: %d and legacy 2026-11-22: 300", days, len(want))
	}

	// json: the JSON rows' fields, and the typed column equal to them.
	rows := run("json")
	var jsonRecs []client.Record
	for _, r := range want {
		if json.Valid(r.Value) {
			jsonRecs = append(jsonRecs, client.Record{Offset: r.Offset, Key: r.Key, Value: r.Value})
		}
	}
	if len(rows) != len(jsonRecs) || len(rows) == 0 {
		t.Fatalf("json: %d rows, want the %d JSON records", len(rows), len(jsonRecs))
	}
	for i, r := range rows {
		var v struct {
			PX  float64 `json:"px"`
			Sym string  `json:"sym"`
		}
		if err := json.Unmarshal(jsonRecs[i].Value, &v); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(r["offset"]) != strconv.FormatUint(jsonRecs[i].Offset, 10) || r["key"] != jsonRecs[i].Key || r["sym"] != v.Sym ||
			fmt.Sprint(r["px_from_json"]) != fmt.Sprint(v.PX) || fmt.Sprint(r["px"]) != fmt.Sprint(v.PX) {
			t.Fatalf("json row %d: %v, want offset %d key %s sym %s px %v", i, r, jsonRecs[i].Offset, jsonRecs[i].Key, v.Sym, v.PX)
		}
	}

	// exact: each ticks record's time and bytes as tierd serves them; the
	// legacy file's as DuckDB reads it alone (its value a BLOB).
	// (Wrapped for hex: read.mjs prints a BLOB as a Node Buffer.)
	exact := strings.TrimSuffix(strings.TrimSpace(strings.ReplaceAll(qs["exact"], "/var/lib/tierd/cold", coldDir)), ";")
	rows = duckdbRows(t, `SELECT stream, "offset", ts_ns, hex(value_bytes) AS value_bytes FROM (`+exact+`) ORDER BY stream, "offset"`)
	var ticks, old []map[string]any
	for _, r := range rows {
		if r["stream"] == "ticks" {
			ticks = append(ticks, r)
		} else {
			old = append(old, r)
		}
	}
	if len(ticks) != len(want) || len(old) != 300 {
		t.Fatalf("exact: %d ticks rows and %d legacy rows, want %d and 300", len(ticks), len(old), len(want))
	}
	for i, r := range ticks {
		w := want[i]
		if fmt.Sprint(r["offset"]) != strconv.FormatUint(w.Offset, 10) || fmt.Sprint(r["ts_ns"]) != strconv.FormatInt(w.TS, 10) ||
			!strings.EqualFold(fmt.Sprint(r["value_bytes"]), hex.EncodeToString(w.Value)) {
			t.Fatalf("exact row %d: %v, want offset %d ts_ns %d value %x", i, r, w.Offset, w.TS, w.Value)
		}
	}
	alone := duckdbRows(t, fmt.Sprintf(`SELECT "offset", epoch_ns(ts) AS ts_ns, hex(value) AS value FROM read_parquet('%s') ORDER BY "offset"`, legacy))
	for i, r := range old {
		a := alone[i]
		if fmt.Sprint(r["offset"]) != fmt.Sprint(a["offset"]) || fmt.Sprint(r["ts_ns"]) != fmt.Sprint(a["ts_ns"]) || fmt.Sprint(r["value_bytes"]) != fmt.Sprint(a["value"]) {
			t.Fatalf("exact legacy row %d: %v, but read alone the file has %v", i, r, a)
		}
	}
}

// TestAnalyticsDocPolars runs the nodejs-polars example of
// docs/analytics.md, as written there, over the cold files of a real
// tierd: the JSON field px it extracts equals the typed column px and the
// record's JSON, row for row, and binary values are NULL in both.
func TestAnalyticsDocPolars(t *testing.T) {
	js := docQueries(t)["polars"]
	if js == "" {
		t.Fatal("docs/analytics.md has no block marked // checked: polars")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the Polars example runs in nodejs-polars, which needs Node.js: %v", err)
	}
	// testenv/polars installs nodejs-polars into .cache/polars (once).
	install := exec.Command(node, filepath.Join("..", "..", "testenv", "polars", "read.mjs"), "--install")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("installing nodejs-polars: %v\n%s", err, out)
	}
	polars, err := filepath.Abs(filepath.Join("..", "..", ".cache", "polars", "node_modules", "nodejs-polars"))
	if err != nil {
		t.Fatal(err)
	}
	d, c, dir := tablesDaemon(t)
	appendSealOffload(t, c, "ticks", workload(0, 24))
	want := served(t, c, "ticks")
	d.stop(t)
	script := "import { createRequire } from \"node:module\";\nconst require = createRequire(" + strconv.Quote(polars+"/") + ");\n" +
		strings.ReplaceAll(js, "/var/lib/tierd/cold", filepath.Join(dir, "cold")) +
		`console.log(JSON.stringify(ticks.select("offset", "stream", "px_from_json", "px").toRecords(), (k, v) => typeof v === "bigint" ? v.toString() : v));` + "\n"
	path := filepath.Join(dir, "polars.mjs")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(node, path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("polars: %v\n%s\nstderr:\n%s", err, script, stderr.String())
	}
	var rows []struct {
		Offset     json.Number `json:"offset"`
		Stream     string      `json:"stream"`
		PXFromJSON *float64    `json:"px_from_json"`
		PX         *float64    `json:"px"`
	}
	dec := json.NewDecoder(&stdout)
	dec.UseNumber()
	if err := dec.Decode(&rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Fatalf("polars: %d rows, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		w := want[i]
		var v struct{ PX *float64 }
		json.Unmarshal(w.Value, &v) // a binary value leaves PX nil
		same := func(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
		if r.Offset.String() != strconv.FormatUint(w.Offset, 10) || r.Stream != "ticks" || !same(r.PXFromJSON, v.PX) || !same(r.PX, v.PX) {
			t.Fatalf("polars row %d: %+v, want offset %d px %v (value %q)", i, r, w.Offset, v.PX, w.Value)
		}
	}
}
