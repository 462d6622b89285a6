package sequencer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/internal/promreg"
)

// The result label of tierd_sequencer_flushes_total, bounded to these.
const (
	resultOK           = "ok"
	resultPutFailed    = "put_failed"
	resultCommitFailed = "commit_failed"
	resultUnknown      = "outcome_unknown"
	resultFenced       = "fenced"
)

type metrics struct {
	flushes     *prometheus.CounterVec
	objectBytes prometheus.Histogram
	batches     prometheus.Histogram
	put         prometheus.Histogram
	commit      prometheus.Histogram
	ack         prometheus.Histogram
	pending     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	latency := prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms … 16 s
	m := &metrics{
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_sequencer_flushes_total",
			Help: "Journal object flushes by result (ok, put_failed, commit_failed, outcome_unknown, fenced). Each is one PUT: the cost figure of cluster mode.",
		}, []string{"result"}),
		objectBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tierd_sequencer_object_bytes",
			Help:    "Size of each journal object written.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 10), // 1 KiB … 256 MiB
		}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tierd_sequencer_batches_per_flush",
			Help:    "Appended batches carried by each journal object.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		put: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tierd_sequencer_put_duration_seconds",
			Help:    "Latency of each journal object PUT.",
			Buckets: latency,
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tierd_sequencer_commit_duration_seconds",
			Help:    "Latency of each flush's PostgreSQL transaction, retries included.",
			Buckets: latency,
		}),
		ack: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tierd_sequencer_append_duration_seconds",
			Help:    "Time from an append's arrival to its answer (flush wait, PUT and commit).",
			Buckets: latency,
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierd_sequencer_pending_bytes",
			Help: "Encoded bytes collected or in flight, not yet answered; appends past the cap get backpressure.",
		}),
	}
	m.flushes = promreg.Register(reg, m.flushes)
	m.objectBytes = promreg.Register(reg, m.objectBytes)
	m.batches = promreg.Register(reg, m.batches)
	m.put = promreg.Register(reg, m.put)
	m.commit = promreg.Register(reg, m.commit)
	m.ack = promreg.Register(reg, m.ack)
	m.pending = promreg.Register(reg, m.pending)
	return m
}
