package cold

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/tierd/tierd/cold/colproj"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// segmentOf catalogs recs as stream's segment.
func segmentOf(stream string, recs []tiers.Record) tiers.SegmentMeta {
	d := tiers.NewDigester()
	m := tiers.SegmentMeta{Stream: stream, Base: recs[0].Offset, Last: recs[len(recs)-1].Offset, Count: uint64(len(recs)),
		MinTS: math.MaxInt64, MaxTS: math.MinInt64, SealedAt: time.Unix(1e9, 0)}
	for i := range recs {
		d.Add(&recs[i])
		m.MinTS, m.MaxTS = min(m.MinTS, recs[i].TS), max(m.MaxTS, recs[i].TS)
	}
	m.Digest = d.Sum()
	return m
}

func seqOf(recs []tiers.Record) func(yield func(tiers.Record, error) bool) {
	return func(yield func(tiers.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// TestUploadTypedColumns uploads a stream with typed columns through the
// tier: the records read back byte for byte, DuckDB sees each column as
// projected from its JSON, and the metric counts the misses (not a JSON
// null) once the upload succeeded.
func TestUploadTypedColumns(t *testing.T) {
	dir := t.TempDir()
	b, err := objstore.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	cols := []colproj.Column{
		{Name: "px", Path: "$.px", Type: colproj.Double},
		{Name: "amt", Path: "$.amount", Type: colproj.Decimal, Precision: 18, Scale: 4},
		{Name: "filled_at", Path: "$.at", Type: colproj.Timestamp},
	}
	asked := map[string]int{}
	reg := prometheus.NewRegistry()
	tier, err := New(Options{Bucket: b, SpoolDir: t.TempDir(), Registerer: reg, Columns: func(stream string) []colproj.Column {
		asked[stream]++
		if stream == "trades" {
			return cols
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	values := []string{
		`{"px":101.25,"amount":"12.5","at":"2026-12-02T08:15:00.123456789Z"}`,
		`{"px":"101.25","amount":12.50001,"at":"2026-12-02T09:15:00+01:00"}`, // px a string, amount too precise
		`{"amount":-3}`,         // no px, no at
		`{"px":null,"at":null}`, // nulls: not misses; amount missing
		"\x00\x01binary\xff",    // not JSON: every column a miss
		`[1,2]`,                 // JSON, not an object
	}
	recs := make([]tiers.Record, len(values))
	for i, v := range values {
		recs[i] = tiers.Record{Offset: uint64(10 + i), TS: 1_796_199_300_000_000_000 + int64(i), Key: "k", Value: []byte(v)}
	}
	m := segmentOf("trades", recs)
	if _, err := tier.Upload(context.Background(), m, seqOf(recs)); err != nil {
		t.Fatal(err)
	}
	if err := tier.Verify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	i := 0
	for r, err := range tier.Scan(context.Background(), m, tiers.AllRecords()) {
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Value, recs[i].Value) || r.Offset != recs[i].Offset || r.TS != recs[i].TS {
			t.Fatalf("record %d read back as %+v, wrote %+v", i, r, recs[i])
		}
		i++
	}
	if i != len(recs) {
		t.Fatalf("read %d records, wrote %d", i, len(recs))
	}
	for col, want := range map[string]float64{"px": 4, "amt": 4, "filled_at": 3} {
		if got := counterValue(t, tier, col); got != want {
			t.Errorf("tierd_cold_column_misses_total{column=%q} = %v, want %v", col, got, want)
		}
	}

	// A stream without columns gets none, and counts nothing.
	other := segmentOf("logs", []tiers.Record{{Offset: 0, TS: 1, Key: "k", Value: []byte(`{"px":1}`)}})
	if _, err := tier.Upload(context.Background(), other, seqOf([]tiers.Record{{Offset: 0, TS: 1, Key: "k", Value: []byte(`{"px":1}`)}})); err != nil {
		t.Fatal(err)
	}
	if asked["trades"] != 1 || asked["logs"] != 1 {
		t.Errorf("Columns asked %v, want once per upload", asked)
	}
	// Uploading again finds the object and counts nothing twice.
	if _, err := tier.Upload(context.Background(), m, seqOf(recs)); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, tier, "px"); got != 4 {
		t.Errorf("after a repeated upload px misses = %v, want still 4", got)
	}

	rows := duckdbRows(t, fmt.Sprintf(`select "offset"::VARCHAR as o, px, amt::VARCHAR as amt, filled_at::VARCHAR as at
		from read_parquet(%s) order by "offset"`, sqlString(filepath.Join(dir, ObjectKey(m)))))
	want := []map[string]any{
		{"o": "10", "px": 101.25, "amt": "12.5000", "at": "2026-12-02 08:15:00.123456"},
		{"o": "11", "px": nil, "amt": nil, "at": "2026-12-02 08:15:00"},
		{"o": "12", "px": nil, "amt": "-3.0000", "at": nil},
		{"o": "13", "px": nil, "amt": nil, "at": nil},
		{"o": "14", "px": nil, "amt": nil, "at": nil},
		{"o": "15", "px": nil, "amt": nil, "at": nil},
	}
	if len(rows) != len(want) {
		t.Fatalf("DuckDB rows %v, want %v", rows, want)
	}
	for i := range want {
		if fmt.Sprint(rows[i]) != fmt.Sprint(want[i]) {
			t.Errorf("DuckDB row %d = %v, want %v", i, rows[i], want[i])
		}
	}
	// The typed columns equal what DuckDB itself extracts from the JSON.
	same := duckdbRows(t, fmt.Sprintf(`select count(*)::VARCHAR as n from read_parquet(%s)
		where px is not null and px = (value->>'px')::DOUBLE`, sqlString(filepath.Join(dir, ObjectKey(m)))))
	if len(same) != 1 || same[0]["n"] != "1" {
		t.Errorf("rows whose px equals DuckDB's value->>'px': %v, want 1", same)
	}
}

// TestUploadBadColumns: columns that do not validate (built in code, not
// through policy) fail the upload with the reason, and write nothing.
func TestUploadBadColumns(t *testing.T) {
	b, err := objstore.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tier, err := New(Options{Bucket: b, SpoolDir: t.TempDir(), Columns: func(string) []colproj.Column {
		return []colproj.Column{{Name: "ts", Path: "$.ts", Type: colproj.Timestamp}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	recs := []tiers.Record{{Offset: 0, TS: 1, Key: "k", Value: []byte(`{}`)}}
	m := segmentOf("s", recs)
	if _, err := tier.Upload(context.Background(), m, seqOf(recs)); err == nil || !strings.Contains(err.Error(), "base column") {
		t.Fatalf("Upload = %v, want the column's error", err)
	}
	if _, err := tier.Check(context.Background(), m); err == nil {
		t.Fatal("an object was stored")
	}
}

// duckdbRows runs SQL with testenv/duckdb/read.mjs (as cold/pqfile's
// tests do; DuckDB is installed from npm into .cache/duckdb on first use).
func duckdbRows(t *testing.T, sql string) []map[string]any {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the DuckDB interop test (install Node.js ≥ 18): %v", err)
	}
	cmd := exec.Command(node, filepath.Join(root, "testenv", "duckdb", "read.mjs"), "--sql", sql)
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

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// counterValue is tierd_cold_column_misses_total{column}.
func counterValue(t *testing.T, tier *Tier, column string) float64 {
	t.Helper()
	var m dto.Metric
	if err := tier.misses.WithLabelValues(column).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
