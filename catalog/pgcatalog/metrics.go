package pgcatalog

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/internal/promreg"
	"github.com/tierd/tierd/tiers"
)

// metrics are the catalog's instruments; a nil *metrics records nothing.
// The operation series are named as the bbolt catalog's, so that one
// dashboard reads both modes.
type metrics struct {
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_catalog_ops_total",
			Help: "Catalog operations by operation and result (ok, not_found, error).",
		}, []string{"op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierd_catalog_op_duration_seconds",
			Help:    "Catalog transaction latency; bbolt writes include its fsync, PostgreSQL ones the commit's round trip.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 9),
		}, []string{"op"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_catalog_retries_total",
			Help: "PostgreSQL catalog calls retried inside the call, by reason: conflict (serialization failure, deadlock, insert race), connection (lost before COMMIT), commit_lost (a COMMIT without answer the server rolled back).",
		}, []string{"op", "reason"}),
	}
	m.ops = promreg.Register(reg, m.ops)
	m.duration = promreg.Register(reg, m.duration)
	m.retries = promreg.Register(reg, m.retries)
	return m
}

func (m *metrics) observe(op string, start time.Time, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, tiers.ErrStreamNotFound), errors.Is(err, tiers.ErrSegmentNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	m.ops.WithLabelValues(op, result).Inc()
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (m *metrics) retried(op, reason string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(op, reason).Inc()
}
