package engine

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/tiers"
)

// gather returns every gauge and counter of reg, keyed by name and, for
// the per-tier series, name/tier; histograms by name_count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "tier" {
					key += "/" + l.GetValue()
				}
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestMetricsUsageMatchesStreams: the usage collector reports, per tier,
// exactly what Streams lists (hot, warm and cold), the memory figures
// Status reports, and the ingest counters what Append acknowledged; after
// Close it reports nothing, and an engine reopened on the same registry
// takes the collector over.
func TestMetricsUsageMatchesStreams(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	storeURL := (&url.URL{Scheme: "file", Path: filepath.Join(t.TempDir(), "cold")}).String()
	e := open(t, dir, func(o *Options) { o.Registerer = reg; o.Cold = openCold(t, storeURL) })
	recs := fill(t, e, "a", 400)
	fill(t, e, "b", 30)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Offload(ctx, "a", 0, false); err != nil {
		t.Fatal(err)
	}
	fill(t, e, "b", 20) // an active segment again

	check := func(e *Engine, wantRecords float64) {
		t.Helper()
		got := gather(t, reg)
		infos, err := e.Streams(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]float64{"tierd_streams": float64(len(infos)), "tierd_records_retained": wantRecords}
		for _, p := range []tiers.Placement{tiers.Hot, tiers.Warm, tiers.Cold} {
			for _, si := range infos {
				want["tierd_tier_bytes/"+p.String()] += float64(si.Tiers[p].Bytes)
				want["tierd_tier_segments/"+p.String()] += float64(si.Tiers[p].Segments)
			}
		}
		st := e.Status(ctx)
		want["tierd_memory_used_bytes"] = float64(st.HotBytes)
		want["tierd_memory_budget_bytes"] = float64(st.HotMaxBytes)
		want["tierd_memory_unpersisted_bytes"] = float64(st.HotUnpersisted)
		want["tierd_wal_size_bytes"] = float64(st.WALBytes)
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s = %v (present %t), want %v", k, g, ok, v)
			}
		}
		for _, p := range []string{"hot", "warm", "cold"} {
			if got["tierd_tier_segments/"+p] == 0 {
				t.Errorf("no %s segments: the test should fill every tier (%v)", p, got)
			}
		}
	}
	check(e, 450)

	got := gather(t, reg)
	var wantBytes int
	for i := range recs {
		wantBytes += tiers.EncodedLen(&recs[i])
	}
	if got["tierd_ingest_records_total"] != 450 || got["tierd_ingest_ack_duration_seconds_count"] != 45 {
		t.Errorf("ingest records %v in %v acks, want 450 in 45", got["tierd_ingest_records_total"], got["tierd_ingest_ack_duration_seconds_count"])
	}
	if got["tierd_ingest_bytes_total"] <= float64(wantBytes) { // stream a's, plus b's
		t.Errorf("ingest bytes %v, want more than stream a's %d", got["tierd_ingest_bytes_total"], wantBytes)
	}

	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := gather(t, reg)["tierd_streams"]; ok {
		t.Error("a closed engine still reports tierd_streams")
	}
	e = open(t, dir, func(o *Options) { o.Registerer = reg; o.Cold = openCold(t, storeURL) })
	defer e.Close(ctx)
	check(e, 450)
	if v := gather(t, reg)["tierd_ingest_records_total"]; v != 450 {
		t.Errorf("ingest records after reopening = %v, want the same counter at 450", v)
	}
}

// TestMetricsBackpressure: a batch refused for lack of memory is counted
// as a backpressure rejection, not as ingested.
func TestMetricsBackpressure(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := open(t, t.TempDir(), func(o *Options) { o.Registerer = reg; o.HotMaxBytes = 5000 })
	defer e.Close(context.Background())
	if _, err := e.Append(context.Background(), "s", batch(1, 0)); err != nil {
		t.Fatal(err)
	}
	// 35 records fit the budget alone, not beside the first one.
	if _, err := e.Append(context.Background(), "s", batch(35, 1)); !errors.Is(err, tiers.ErrBackpressure) {
		t.Fatalf("second append: %v, want backpressure", err)
	}
	got := gather(t, reg)
	if got["tierd_ingest_backpressure_rejections_total"] != 1 || got["tierd_ingest_records_total"] != 1 {
		t.Errorf("backpressure %v, records %v; want 1 and 1", got["tierd_ingest_backpressure_rejections_total"], got["tierd_ingest_records_total"])
	}
}
