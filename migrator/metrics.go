package migrator

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/promreg"
	"github.com/tierd/tierd/policy"
)

// Result label values of tierd_migrator_moves_total, a bounded set.
const (
	resultOK       = "ok"
	resultError    = "error"
	resultCanceled = "canceled" // the run's context ended (shutdown)
	resultSkipped  = "skipped"  // not tried: the segment is backing off
)

// metrics are always built, so the migrator never checks for nil; with a
// nil Registerer they are not registered. Dry runs record nothing.
type metrics struct {
	moves    *prometheus.CounterVec   // action, result
	duration *prometheus.HistogramVec // action
	bytes    *prometheus.CounterVec   // action
	runs     prometheus.Counter
	lastRun  prometheus.Gauge
	failing  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_migrator_moves_total",
			Help: "Migrator actions by action (upload, drop-warm, delete-warm, tombstone, delete-cold) and result (ok, error, canceled, skipped while backing off).",
		}, []string{"action", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierd_migrator_move_duration_seconds",
			Help:    "Time one action took to execute, by action, whatever its result; the byte-rate limit's wait is not included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 12), // 1ms .. ~3m
		}, []string{"action"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_migrator_moved_bytes_total",
			Help: "Segment bytes (as catalogued) of actions that succeeded, by action: copied to cold by upload, freed by the others.",
		}, []string{"action"}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_migrator_runs_total",
			Help: "Migrator runs that executed a plan (scheduled or on demand; dry runs excluded), including runs whose planning failed.",
		}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierd_migrator_last_run_timestamp_seconds",
			Help: "Unix time at which the latest executed run ended.",
		}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierd_migrator_failing_segments",
			Help: "Segments whose latest action failed and that are backing off before a retry.",
		}),
	}
	m.moves = promreg.Register(reg, m.moves)
	m.duration = promreg.Register(reg, m.duration)
	m.bytes = promreg.Register(reg, m.bytes)
	m.runs = promreg.Register(reg, m.runs)
	m.lastRun = promreg.Register(reg, m.lastRun)
	m.failing = promreg.Register(reg, m.failing)
	return m
}

// moved books one executed action and its duration.
func (m *metrics) moved(a policy.Action, err error, took time.Duration) {
	m.duration.WithLabelValues(a.Kind.String()).Observe(took.Seconds())
	m.count(a, err)
}

// count books the result of one action: executed, or stopped while
// waiting for the byte-rate limit.
func (m *metrics) count(a policy.Action, err error) {
	kind := a.Kind.String()
	res := resultOK
	switch {
	case err == nil:
		m.bytes.WithLabelValues(kind).Add(float64(a.Bytes))
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		res = resultCanceled
	default:
		res = resultError
	}
	m.moves.WithLabelValues(kind, res).Inc()
}

// skipped books actions not tried because their segment is backing off.
func (m *metrics) skipped(actions []policy.Action) {
	for _, a := range actions {
		m.moves.WithLabelValues(a.Kind.String(), resultSkipped).Inc()
	}
}

// ran books the end of an executed run.
func (m *metrics) ran(end time.Time) {
	m.runs.Inc()
	m.lastRun.Set(float64(end.UnixNano()) / 1e9)
}
