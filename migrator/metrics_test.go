package migrator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gather returns reg's tierd_migrator_* series: counters and gauges as
// name{label values…} → value, histograms as name_count{…} → sample count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var lv []string
			for _, l := range m.GetLabel() {
				lv = append(lv, l.GetValue())
			}
			key := func(name string) string {
				if len(lv) == 0 {
					return name
				}
				return fmt.Sprintf("%s%v", name, lv)
			}
			switch {
			case m.Counter != nil:
				out[key(mf.GetName())] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key(mf.GetName())] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key(mf.GetName()+"_count")] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func wantMetrics(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %t), want %v", k, g, ok, v)
		}
	}
}

// TestMetricsCountMovesByActionAndResult: executed actions are counted by
// action and result (ok, error, canceled, skipped while backing off), with
// their durations and the bytes of those that succeeded; dry runs count
// nothing.
func TestMetricsCountMovesByActionAndResult(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := newStore(4, now.Add(-2*time.Hour)) // 4 warm segments of 1000 bytes, due for upload
	st.fail[key("s", 200)] = errors.New("store down")
	st.fail[key("s", 300)] = fmt.Errorf("put: %w", context.Canceled)
	reg := prometheus.NewRegistry()
	m, err := New(st, Options{Config: config(t), MinBackoff: time.Minute, Now: func() time.Time { return now }, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(context.Background(), "", true); err != nil {
		t.Fatal(err)
	}
	wantMetrics(t, gather(t, reg), map[string]float64{"tierd_migrator_runs_total": 0, "tierd_migrator_failing_segments": 0})

	m.Run(context.Background(), "", false) // 2 uploads succeed, 2 fail
	wantMetrics(t, gather(t, reg), map[string]float64{
		"tierd_migrator_runs_total":                          1,
		"tierd_migrator_moves_total[upload ok]":              2,
		"tierd_migrator_moves_total[upload error]":           1,
		"tierd_migrator_moves_total[upload canceled]":        1,
		"tierd_migrator_move_duration_seconds_count[upload]": 4,
		"tierd_migrator_moved_bytes_total[upload]":           2000,
		"tierd_migrator_failing_segments":                    2,
	})

	m.Run(context.Background(), "", false) // the 2 uploaded drop warm; the 2 failed back off
	got := gather(t, reg)
	wantMetrics(t, got, map[string]float64{
		"tierd_migrator_runs_total":                             2,
		"tierd_migrator_moves_total[upload ok]":                 2,
		"tierd_migrator_moves_total[upload skipped]":            2,
		"tierd_migrator_moves_total[drop-warm ok]":              2,
		"tierd_migrator_move_duration_seconds_count[upload]":    4,
		"tierd_migrator_move_duration_seconds_count[drop-warm]": 2,
		"tierd_migrator_moved_bytes_total[drop-warm]":           2000,
		"tierd_migrator_failing_segments":                       2,
	})
	if got["tierd_migrator_last_run_timestamp_seconds"] <= 0 {
		t.Error("tierd_migrator_last_run_timestamp_seconds not set")
	}
}

// TestMetricsCountRateLimitedMoveCanceled: an upload stopped while it
// waits for the byte-rate limit counts as canceled, without a duration.
func TestMetricsCountRateLimitedMoveCanceled(t *testing.T) {
	st := newStore(1, time.Now().Add(-2*time.Hour))
	reg := prometheus.NewRegistry()
	m, err := New(st, Options{Config: config(t), BytesPerSecond: 10, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.Run(ctx, "", false)
	got := gather(t, reg)
	wantMetrics(t, got, map[string]float64{"tierd_migrator_moves_total[upload canceled]": 1, "tierd_migrator_runs_total": 1})
	if _, ok := got["tierd_migrator_move_duration_seconds_count[upload]"]; ok {
		t.Error("a move that never executed has a duration")
	}
	if len(st.executed) != 0 {
		t.Fatalf("executed %v", st.executed)
	}
}
