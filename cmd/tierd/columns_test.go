package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTypedColumnsEndToEnd drives the real binary with a policy that
// declares typed columns: records appended over HTTP and offloaded to a
// file cold store carry the columns DuckDB reads, the metric counts the
// values that missed (a JSON null is no miss), and reads answer the
// records exactly as appended.
func TestTypedColumnsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	coldDir := filepath.Join(dir, "cold")
	config := writeConfig(t, dir, fmt.Sprintf(`
segment: {max_bytes: 1MiB, max_age: 200ms}
hot: {max_age: 300ms}
cold: {store: "file://%s"}
policies:
  - name: trading
    streams: ["IF*"]
    columns:
      - {name: px, path: $.px, type: double}
      - {name: amount, path: $.amount, type: decimal, precision: 18, scale: 4}
      - {name: filled_at, path: $.at, type: timestamp}
`, coldDir))
	d := startDaemon(t, config, filepath.Join(dir, "data"))
	const ts = 1_796_199_300_000_000_000 // 2026-12-02T08:15:00Z
	lines := []string{
		`{"key":"a","ts":%d,"value":{"px":101.25,"amount":"12.5","at":"2026-12-02T09:15:00.5+01:00"}}`,
		`{"key":"b","ts":%d,"value":{"px":"101.25","amount":1.23456}}`,
		`{"key":"c","ts":%d,"value_b64":"AP8KAQ=="}`,
		`{"key":"d","ts":%d,"value":{"px":null,"amount":-7,"at":null}}`,
	}
	var body bytes.Buffer
	for i, l := range lines {
		fmt.Fprintf(&body, l+"\n", ts+int64(i))
	}
	resp, err := http.Post("http://"+d.addr+"/v1/streams/IF2612/records", "application/x-ndjson", &body)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("append: %d %s", resp.StatusCode, msg)
	}
	// Wait for the segment to be sealed and persisted, then offload it.
	deadline := time.Now().Add(30 * time.Second)
	var base uint64
	for {
		var segs []struct {
			Base   uint64   `json:"base"`
			Tiers  []string `json:"tiers"`
			Active bool     `json:"active"`
		}
		resp, err := http.Get("http://" + d.addr + "/v1/streams/IF2612/segments")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&segs)
		resp.Body.Close()
		if len(segs) == 1 && !segs[0].Active && contains(segs[0].Tiers, "warm") {
			base = segs[0].Base
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment never persisted: %+v", segs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err = http.Post(fmt.Sprintf("http://%s/v1/streams/IF2612/segments/%d/offload", d.addr, base), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("offload: %d %s", resp.StatusCode, msg)
	}

	m := scrapeMetrics(t, d.addr)
	for col, want := range map[string]float64{"px": 2, "amount": 2, "filled_at": 2} {
		if got := m[series("tierd_cold_column_misses_total", "column", col)]; got != want {
			t.Errorf("tierd_cold_column_misses_total{column=%q} = %v, want %v", col, got, want)
		}
	}

	var files []string
	filepath.WalkDir(coldDir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 1 {
		t.Fatalf("cold files %v, want one", files)
	}
	rows := columnsDuckDB(t, fmt.Sprintf(`select key, px, amount::VARCHAR as amount, filled_at::VARCHAR as filled_at, value->>'px' as raw_px,
		hex(value_bin) as bin from read_parquet('%s') order by "offset"`, files[0]))
	want := []string{
		"map[amount:12.5000 bin:<nil> filled_at:2026-12-02 08:15:00.5 key:a px:101.25 raw_px:101.25]",
		"map[amount:<nil> bin:<nil> filled_at:<nil> key:b px:<nil> raw_px:101.25]",
		"map[amount:<nil> bin:00FF0A01 filled_at:<nil> key:c px:<nil> raw_px:<nil>]",
		"map[amount:-7.0000 bin:<nil> filled_at:<nil> key:d px:<nil> raw_px:<nil>]",
	}
	if len(rows) != len(want) {
		t.Fatalf("DuckDB rows %v", rows)
	}
	for i := range want {
		if got := fmt.Sprint(rows[i]); got != want[i] {
			t.Errorf("DuckDB row %d = %s, want %s", i, got, want[i])
		}
	}
	// The API answers the records as they were appended, from cold.
	got := readAll(t, d.addr, "IF2612")
	if len(got) != 4 || string(got[0].Value) != `{"px":101.25,"amount":"12.5","at":"2026-12-02T09:15:00.5+01:00"}` {
		t.Fatalf("records read back: %+v", got)
	}
	// The segment leaves memory once hot.max_age (300ms) has passed since
	// its seal, which the steps above may not have taken.
	waitFor(t, 10*time.Second, "the records served from cold", func() (bool, string) {
		tiers := readTiers(t, d.addr, "IF2612")
		for _, tier := range tiers {
			if tier != "cold" {
				return false, strings.Join(tiers, " ")
			}
		}
		return len(tiers) == 4, strings.Join(tiers, " ")
	})
}

// columnsDuckDB runs SQL with testenv/duckdb/read.mjs (DuckDB from npm,
// installed into .cache/duckdb on first use) and returns its rows.
func columnsDuckDB(t *testing.T, sql string) []map[string]any {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the DuckDB interop test (install Node.js ≥ 18): %v", err)
	}
	cmd := exec.Command(node, filepath.Join("..", "..", "testenv", "duckdb", "read.mjs"), "--sql", sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb %q: %v\nstderr:\n%s", sql, err, stderr.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("duckdb %q: bad JSON %q: %v", sql, stdout.String(), err)
	}
	return rows
}
