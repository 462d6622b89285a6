package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
)

// TestColdBench runs tierbench cold briefly against a real MinIO and checks
// the format 2.0 vs 1.2 figures: both conversions measured (wall and CPU),
// sizes of the two files, and the JSON check over every value (all of
// the generator's values are JSON).
func TestColdBench(t *testing.T) {
	m := testenv.StartMinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := coldFlags{endpoint: m.Endpoint, bucket: "tierbench", records: 20_000, level: 3, runs: 2, output: "json"}
	var out bytes.Buffer
	if err := runCold(ctx, &out, f); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results map[string]float64 `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	r := res.Results
	for _, k := range []string{"parquet_mb_per_s", "v1_parquet_mb_per_s", "v2_cpu_ms", "v1_cpu_ms", "parquet_bytes", "v1_parquet_bytes", "isjson_cpu_ms", "stdlib_json_cpu_ms"} {
		if r[k] <= 0 {
			t.Errorf("%s = %v: not measured", k, r[k])
		}
	}
	if r["json_values"] != float64(f.records) {
		t.Errorf("%v of %d values counted as JSON", r["json_values"], f.records)
	}
	if s := r["v2_v1_size_ratio"]; s < 0.9 || s > 1.1 {
		t.Errorf("format 2.0 is %.3f× the size of 1.2", s)
	}
	f.output, f.runs = "table", 1
	out.Reset()
	if err := runCold(ctx, &out, f); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"format 2 speed", "format 2 size", "JSON check"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
}
