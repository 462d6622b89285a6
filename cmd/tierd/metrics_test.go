package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tierd/tierd/tiers"
)

// The metrics test drives the real binary through a known workload — good,
// bad and oversized appends, a dry and two real migration runs, reads from
// the cold tier — and then scrapes GET /metrics, asserting each counter's
// exact value against what the workload did and what the API reports.

// scrape is one parsed GET /metrics: every sample by its series,
// `name{label="value",…}` with labels sorted; a histogram contributes its
// _count and _sum.
type scrape map[string]float64

// series renders a series key: name and label pairs, "k", "v", ….
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// scrapeMetrics GETs /metrics and parses the text exposition format.
func scrapeMetrics(t *testing.T, addr string) scrape {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics Content-Type %q, want the text format", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := scrape{}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName(), l.GetValue())
			}
			switch {
			case m.Counter != nil:
				out[series(name, labels...)] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[series(name, labels...)] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[series(name, labels...)] = m.GetUntyped().GetValue()
			case m.Histogram != nil:
				out[series(name+"_count", labels...)] = float64(m.GetHistogram().GetSampleCount())
				out[series(name+"_sum", labels...)] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// get returns a series' value, failing the test when the scrape lacks it.
func (s scrape) get(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	k := series(name, labels...)
	v, ok := s[k]
	if !ok {
		var near []string
		for have := range s {
			if strings.HasPrefix(have, name) {
				near = append(near, have)
			}
		}
		slices.Sort(near)
		t.Fatalf("/metrics has no %s; series of that name: %v", k, near)
	}
	return v
}

// want fails the test unless the series has exactly the value.
func (s scrape) want(t *testing.T, value float64, name string, labels ...string) {
	t.Helper()
	if got := s.get(t, name, labels...); got != value {
		t.Errorf("%s = %v, want %v", series(name, labels...), got, value)
	}
}

// positive fails the test unless the series is above zero.
func (s scrape) positive(t *testing.T, name string, labels ...string) {
	t.Helper()
	if got := s.get(t, name, labels...); got <= 0 {
		t.Errorf("%s = %v, want > 0", series(name, labels...), got)
	}
}

// migrateRun is the answer of POST /v1/migrate.
type migrateRun struct {
	DryRun  bool `json:"dry_run"`
	Actions []struct {
		Action string `json:"action"`
		Base   uint64 `json:"base"`
		Bytes  int64  `json:"bytes"`
		Error  string `json:"error"`
	} `json:"actions"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

func migrate(t *testing.T, addr string, dryRun bool) migrateRun {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/v1/migrate?dry_run=%t", addr, dryRun), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var run migrateRun
	if resp.StatusCode != 200 || json.Unmarshal(body, &run) != nil {
		t.Fatalf("migrate dry_run=%t: %d %s", dryRun, resp.StatusCode, body)
	}
	if run.Failed != 0 || run.Skipped != 0 {
		t.Fatalf("migrate dry_run=%t: %s", dryRun, body)
	}
	return run
}

// tally counts a run's actions and bytes by action.
func (r migrateRun) tally() (count map[string]int, bytes map[string]int64) {
	count, bytes = map[string]int{}, map[string]int64{}
	for _, a := range r.Actions {
		count[a.Action]++
		bytes[a.Action] += a.Bytes
	}
	return count, bytes
}

// postStatus POSTs body to the append endpoint and returns the status.
func postStatus(t *testing.T, addr, stream, body string) int {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/streams/"+stream+"/records", "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetricsAfterKnownWorkload: 7 batches of 10 records, one malformed and
// one oversized append; every sealed segment persisted and out of memory;
// a dry run, a run that uploads every sealed segment and one that drops
// their warm copies; two reads served from cold. Then /metrics must say
// exactly that.
func TestMetricsAfterKnownWorkload(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	// The cron never fires during the test: runs happen on demand only.
	// Segments seal by size (2 KiB), so the workload makes several; they
	// leave memory as soon as they are persisted (hot.max_age 1ms), and
	// any warm age makes them due for upload.
	config := writeConfig(t, dir, `
max_record_bytes: 1KiB
segment: {max_bytes: 2KiB, max_age: 1h}
hot: {max_age: 1ms}
migrator: {schedule: "@every 1000h"}
policies:
  - name: all
    streams: ["*"]
    warm: {max_age: 1ms}
`)
	d := startDaemon(t, config, dataDir)
	const stream = "IF2406"

	// The workload.
	var batches []*batch
	var wantBytes int
	for i := range 7 {
		b := &batch{id: fmt.Sprintf("m%d", i), stream: stream}
		for j := range 10 {
			b.values = append(b.values, fmt.Sprintf(`{"i":%d,"j":%d,"pad":"%0150d"}`, i, j, j))
		}
		if err := appendBatch(http.DefaultClient, d.addr, b); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
		for j, v := range b.values { // the record as appendBatch sent it, with its offset
			r := tiers.Record{Offset: b.first + uint64(j), TS: 1_700_000_000_000_000_000 + int64(j), Key: b.id, Tags: []string{"crash", fmt.Sprintf("i%d", j)}, Value: []byte(v)}
			wantBytes += tiers.EncodedLen(&r)
		}
	}
	if st := postStatus(t, d.addr, stream, "not json\n"); st != 400 {
		t.Fatalf("malformed append answered %d, want 400", st)
	}
	if st := postStatus(t, d.addr, stream, fmt.Sprintf(`{"value":"%02000d"}`+"\n", 0)); st != 413 {
		t.Fatalf("oversized append answered %d, want 413", st)
	}

	// Every sealed segment persisted warm and evicted from memory.
	var segs []segInfo
	waitFor(t, 30*time.Second, "sealed segments warm only", func() (bool, string) {
		segs = segments(t, d.addr, stream)
		for _, s := range segs {
			if !s.Active && !slices.Equal(s.Tiers, []string{"warm"}) {
				return false, fmt.Sprint(segs)
			}
		}
		return true, ""
	})
	sealed := 0
	for _, s := range segs {
		if !s.Active {
			sealed++
		}
	}
	if sealed < 3 {
		t.Fatalf("only %d sealed segments; the workload should make several: %v", sealed, segs)
	}

	migrate(t, d.addr, true) // a dry run moves and counts nothing
	upload := migrate(t, d.addr, false)
	drop := migrate(t, d.addr, false)
	uploads, uploadBytes := upload.tally()
	drops, dropBytes := drop.tally()
	if uploads["upload"] != sealed || len(upload.Actions) != sealed {
		t.Fatalf("first run: %v for %d sealed segments, want one upload each", uploads, sealed)
	}
	if drops["drop-warm"] != sealed || len(drop.Actions) != sealed {
		t.Fatalf("second run: %v for %d sealed segments, want one drop-warm each", drops, sealed)
	}
	for range 2 { // the second read finds the blocks in the cache
		got := readAll(t, d.addr, stream)
		check(t, stream, got, batches)
		if len(got) != 70 {
			t.Fatalf("read %d records, want 70", len(got))
		}
	}
	tierCount := map[string]int{}
	for _, tier := range readTiers(t, d.addr, stream) {
		tierCount[tier]++
	}
	if tierCount["cold"] == 0 {
		t.Fatalf("no record served from cold: %v", tierCount)
	}

	// What the API says the tiers hold, and the cold objects on disk.
	var listing struct {
		Streams []struct {
			Records uint64 `json:"records"`
			Tiers   map[string]struct {
				Segments int   `json:"segments"`
				Bytes    int64 `json:"bytes"`
			} `json:"tiers"`
		} `json:"streams"`
	}
	status, body := readStatus(t, "http://"+d.addr+"/v1/streams")
	if status != 200 || json.Unmarshal(body, &listing) != nil || len(listing.Streams) != 1 {
		t.Fatalf("GET /v1/streams: %d %s", status, body)
	}
	var objects, objectBytes int64
	filepath.WalkDir(filepath.Join(dataDir, "cold"), func(path string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() && strings.HasSuffix(path, ".parquet") {
			info, _ := de.Info()
			objects++
			objectBytes += info.Size()
		}
		return nil
	})
	if objects != int64(sealed) {
		t.Fatalf("%d parquet objects in the file store, want %d", objects, sealed)
	}

	m := scrapeMetrics(t, d.addr)

	// Ingest.
	m.want(t, 70, "tierd_ingest_records_total")
	m.want(t, float64(wantBytes), "tierd_ingest_bytes_total")
	m.want(t, 7, "tierd_ingest_requests_total", "result", "ok")
	m.want(t, 1, "tierd_ingest_requests_total", "result", "bad_request")
	m.want(t, 1, "tierd_ingest_requests_total", "result", "too_large")
	m.want(t, 0, "tierd_ingest_requests_total", "result", "unavailable")
	m.want(t, 0, "tierd_ingest_requests_total", "result", "error")
	m.want(t, 7, "tierd_http_requests_total", "route", "POST /v1/streams/{stream}/records", "code", "200")
	m.want(t, 7, "tierd_ingest_ack_duration_seconds_count")
	m.want(t, 0, "tierd_ingest_backpressure_rejections_total")
	m.positive(t, "tierd_wal_fsync_duration_seconds_count")

	// Tiers, as GET /v1/streams and the file store say.
	st := listing.Streams[0]
	for _, tier := range []string{"hot", "warm", "cold"} {
		m.want(t, float64(st.Tiers[tier].Bytes), "tierd_tier_bytes", "tier", tier)
		m.want(t, float64(st.Tiers[tier].Segments), "tierd_tier_segments", "tier", tier)
	}
	m.want(t, float64(objectBytes), "tierd_tier_bytes", "tier", "cold")
	m.want(t, float64(sealed), "tierd_tier_segments", "tier", "cold")
	m.want(t, 0, "tierd_tier_segments", "tier", "warm")
	m.want(t, 1, "tierd_streams")
	m.want(t, 70, "tierd_records_retained")
	m.want(t, float64(st.Records), "tierd_records_retained")
	m.want(t, 1<<30, "tierd_memory_budget_bytes") // hot.max_bytes' default
	m.positive(t, "tierd_memory_used_bytes")      // the active segment

	// Migrator: two executed runs (the dry run is not counted).
	m.want(t, 2, "tierd_migrator_runs_total")
	m.positive(t, "tierd_migrator_last_run_timestamp_seconds")
	m.want(t, 0, "tierd_migrator_failing_segments")
	m.want(t, float64(sealed), "tierd_migrator_moves_total", "action", "upload", "result", "ok")
	m.want(t, float64(sealed), "tierd_migrator_moves_total", "action", "drop-warm", "result", "ok")
	for _, a := range []string{"upload", "drop-warm"} {
		for _, r := range []string{"error", "canceled", "skipped"} {
			if v, ok := m[series("tierd_migrator_moves_total", "action", a, "result", r)]; ok && v != 0 {
				t.Errorf("moves{%s,%s} = %v, want 0", a, r, v)
			}
		}
	}
	m.want(t, float64(sealed), "tierd_migrator_move_duration_seconds_count", "action", "upload")
	m.want(t, float64(sealed), "tierd_migrator_move_duration_seconds_count", "action", "drop-warm")
	m.want(t, float64(uploadBytes["upload"]), "tierd_migrator_moved_bytes_total", "action", "upload")
	m.want(t, float64(dropBytes["drop-warm"]), "tierd_migrator_moved_bytes_total", "action", "drop-warm")

	// Cold store and read cache.
	m.want(t, float64(sealed), "tierd_cold_store_requests_total", "op", "put", "result", "ok")
	if v, ok := m[series("tierd_cold_store_requests_total", "op", "put", "result", "error")]; ok && v != 0 {
		t.Errorf("cold store put errors = %v, want 0", v)
	}
	m.want(t, float64(sealed), "tierd_cold_store_request_duration_seconds_count", "op", "put")
	m.want(t, float64(objectBytes), "tierd_cold_store_bytes_total", "op", "put")
	m.positive(t, "tierd_cold_store_requests_total", "op", "get_range", "result", "ok")
	m.positive(t, "tierd_cold_cache_misses_total")
	m.positive(t, "tierd_cold_cache_hits_total")

	// The Go and process collectors.
	m.positive(t, "go_goroutines")
	m.positive(t, "process_start_time_seconds")

	checkMetricNames(t, m)
	if t.Failed() {
		keys := slices.Sorted(maps.Keys(m))
		t.Logf("scrape (%d series, tierd_* shown):", len(keys))
		for _, k := range keys {
			if strings.HasPrefix(k, "tierd_") && !strings.Contains(k, "_bucket") {
				t.Logf("  %s %v", k, m[k])
			}
		}
	}
}

// checkMetricNames: docs/metrics.md documents every tierd_* series the
// scrape has, and the Grafana dashboard queries only series that exist.
func checkMetricNames(t *testing.T, m scrape) {
	t.Helper()
	families := map[string]bool{}
	for k := range m {
		name, _, _ := strings.Cut(k, "{")
		if strings.HasPrefix(name, "tierd_") {
			families[name] = true
		}
	}
	docs, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range families {
		base := strings.TrimSuffix(strings.TrimSuffix(name, "_count"), "_sum")
		if !strings.Contains(string(docs), "`"+base+"`") {
			t.Errorf("docs/metrics.md does not document %s", base)
		}
	}
	dash, err := os.ReadFile("../../examples/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(dash) {
		t.Fatal("examples/grafana-dashboard.json is not valid JSON")
	}
	for _, name := range regexp.MustCompile(`tierd_[a-z_]+`).FindAllString(string(dash), -1) {
		base := strings.TrimSuffix(name, "_bucket")
		if !families[base] && !families[base+"_count"] {
			t.Errorf("the dashboard queries %s, which /metrics does not have", name)
		}
	}
}
