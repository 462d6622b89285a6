package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// scraped GETs /metrics from the test server and returns every counter and
// gauge as `name{label="value",…}` (labels sorted) → value, and each
// histogram's sample count as name_count.
func (e *testEnv) scraped() map[string]float64 {
	e.t.Helper()
	r := e.do(http.MethodGet, "/metrics", nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET /metrics: %d %s", r.status, r.body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		e.t.Fatalf("parse /metrics: %v\n%s", err, r.body)
	}
	out := map[string]float64{}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			var pairs []string
			for _, l := range m.GetLabel() {
				pairs = append(pairs, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(pairs)
			key := name
			if len(pairs) > 0 {
				key += "{" + strings.Join(pairs, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[strings.Replace(key, name, name+"_count", 1)] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestMetricsCountIngestRequests: appends that succeed, are malformed, too
// large, or refused by backpressure are counted by result, the engine's
// ingest series count only what was acknowledged, and all of it is served
// at GET /metrics.
func TestMetricsCountIngestRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	// A memory budget of 5000 bytes: the first append's active segment
	// (never sealed: no size or age reached) leaves too little room for a
	// second batch of ~4.5 KiB, which alone would fit.
	e := newEnv(t, engine.Options{HotMaxBytes: 5000, Registerer: reg}, Options{Registerer: reg, Gatherer: reg, MaxRecordBytes: 100})
	e.mustAppend("m", `{"key":"a","value":"x"}`+"\n"+`{"key":"b","value":"y"}`+"\n")
	if r := e.appendBody("m", "nope\n"); r.status != http.StatusBadRequest {
		t.Fatalf("malformed append: %d %s", r.status, r.body)
	}
	if r := e.appendBody("m", fmt.Sprintf(`{"value":"%0200d"}`+"\n", 0)); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized append: %d %s", r.status, r.body)
	}
	big := strings.Repeat(fmt.Sprintf(`{"value":"%080d"}`+"\n", 0), 45)
	if r := e.appendBody("m", big); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("append over the memory budget: %d %s", r.status, r.body)
	}
	var ackedBytes int
	for _, it := range e.read("m", "from=0") {
		rec := tiers.Record{Offset: it.Offset, TS: fixedNow.UnixNano(), Key: *it.Key, Value: it.Value}
		ackedBytes += tiers.EncodedLen(&rec)
	}

	got := e.scraped()
	want := map[string]float64{
		`tierd_ingest_requests_total{result="ok"}`:          1,
		`tierd_ingest_requests_total{result="bad_request"}`: 1,
		`tierd_ingest_requests_total{result="too_large"}`:   1,
		`tierd_ingest_requests_total{result="unavailable"}`: 1,
		`tierd_ingest_requests_total{result="error"}`:       0,
		`tierd_ingest_records_total`:                        2,
		`tierd_ingest_bytes_total`:                          float64(ackedBytes),
		`tierd_ingest_ack_duration_seconds_count`:           1,
		`tierd_ingest_backpressure_rejections_total`:        1,
		`tierd_streams`:                          1,
		`tierd_records_retained`:                 2,
		`tierd_tier_segments{tier="hot"}`:        1,
		`tierd_memory_budget_bytes`:              5000,
		`tierd_wal_fsync_duration_seconds_count`: -1, // present, > 0
	}
	want[`tierd_http_requests_total{code="503",route="`+appendRoute+`"}`] = 1
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("/metrics lacks %s", k)
		case v < 0 && g <= 0:
			t.Errorf("%s = %v, want > 0", k, g)
		case v >= 0 && g != v:
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

// TestMetricsResultOfStatus pins the status → result mapping of
// tierd_ingest_requests_total.
func TestMetricsResultOfStatus(t *testing.T) {
	for status, want := range map[int]string{
		0: "ok", 200: "ok", 400: "bad_request", 404: "bad_request", 401: "unauthorized", 403: "forbidden",
		413: "too_large", 429: "unavailable", 503: "unavailable", 500: "error",
	} {
		if got := ingestResult(status); got != want {
			t.Errorf("ingestResult(%d) = %q, want %q", status, got, want)
		}
		if !slices.Contains(ingestResults, want) {
			t.Errorf("result %q is not among the pre-declared %v", want, ingestResults)
		}
	}
}

// TestMetricsEndpointWithoutGatherer: /metrics is a JSON 404 unless a
// Gatherer is configured.
func TestMetricsEndpointWithoutGatherer(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{Registerer: prometheus.NewRegistry()})
	wantError(t, e.do(http.MethodGet, "/metrics", nil), http.StatusNotFound, "not_found")
}

// TestMetricsTwoServersOneRegistry: servers and engines sharing a registry
// count into one set of series, and the usage series describe the engine
// opened last.
func TestMetricsTwoServersOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newEnv(t, engine.Options{Registerer: reg}, Options{Registerer: reg, Gatherer: reg})
	b := newEnv(t, engine.Options{Registerer: reg}, Options{Registerer: reg, Gatherer: reg})
	a.mustAppend("one", "{}\n")
	b.mustAppend("two", "{}\n{}\n")
	b.mustAppend("three", "{}\n")
	got := a.scraped()
	if v := got[`tierd_ingest_requests_total{result="ok"}`]; v != 3 {
		t.Errorf("ingest requests ok = %v, want 3", v)
	}
	if v := got[`tierd_ingest_records_total`]; v != 4 {
		t.Errorf("ingest records = %v, want 4", v)
	}
	if v := got[`tierd_streams`]; v != 2 {
		t.Errorf("streams = %v, want 2 (those of the engine opened last)", v)
	}
	b.eng.Close(context.Background())
	if _, ok := a.scraped()[`tierd_streams`]; ok {
		t.Error("a closed engine still reports tierd_streams")
	}
}
