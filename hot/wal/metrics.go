package wal

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/promreg"
	"github.com/tierd/tierd/tiers"
)

// metrics are always built, so the write path never checks for nil; they
// are registered only when a Registerer is given.
type metrics struct {
	fsyncDuration prometheus.Histogram
	bytesWritten  prometheus.Counter
	batches       prometheus.Counter
	groupCommits  prometheus.Counter
	tornRepairs   prometheus.Counter
	removed       prometheus.Counter
	files         prometheus.Gauge
	failed        prometheus.Gauge
	refused       *prometheus.CounterVec
	refusing      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		fsyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tierd_wal_fsync_duration_seconds",
			Help:    "Latency of fsyncs of WAL files.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50µs .. ~1.6s
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_wal_bytes_written_total",
			Help: "Bytes of frames written to WAL files.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_wal_batches_written_total",
			Help: "Batch frames written to WAL files.",
		}),
		groupCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_wal_group_commits_total",
			Help: "Group commits: one write (per file) and at most one fsync covering every batch queued in the window.",
		}),
		tornRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_wal_torn_tail_repairs_total",
			Help: "Torn tails of the newest WAL file truncated at open.",
		}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_wal_files_removed_total",
			Help: "WAL files deleted by checkpoints.",
		}),
		files: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierd_wal_files",
			Help: "WAL files on disk.",
		}),
		failed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierd_wal_failed",
			Help: "1 once a write or fsync failed and the WAL stopped writing until restart.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_wal_refused_groups_total",
			Help: "Groups refused with nothing written (the next file could not be created, the disk was full), by cause; the log goes on.",
		}, []string{"cause"}),
		refusing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierd_wal_refusing",
			Help: "1 while the WAL refuses groups for a storage condition (disk full, out of descriptors) it retries by itself.",
		}),
	}
	if reg == nil {
		return m
	}
	m.fsyncDuration = promreg.Register(reg, m.fsyncDuration)
	m.bytesWritten = promreg.Register(reg, m.bytesWritten)
	m.batches = promreg.Register(reg, m.batches)
	m.groupCommits = promreg.Register(reg, m.groupCommits)
	m.tornRepairs = promreg.Register(reg, m.tornRepairs)
	m.removed = promreg.Register(reg, m.removed)
	m.files = promreg.Register(reg, m.files)
	m.failed = promreg.Register(reg, m.failed)
	m.failed.Set(0)
	m.refused = promreg.Register(reg, m.refused)
	for _, c := range []string{tiers.CauseDiskFull, tiers.CauseDescriptors, tiers.CauseStorage} {
		m.refused.WithLabelValues(c)
	}
	m.refusing = promreg.Register(reg, m.refusing)
	m.refusing.Set(0)
	return m
}
