package warm

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/promreg"
)

// metrics are always live; with a nil Registerer they are simply not
// exported, which keeps nil checks off the I/O paths.
type metrics struct {
	fsync       *prometheus.HistogramVec // op: file, dir
	commits     prometheus.Counter
	commitBytes prometheus.Counter
	corruptions *prometheus.CounterVec // op: open, get, scan, verify
	acquires    *prometheus.CounterVec // result: hit, miss, error
	mappedGauge prometheus.Gauge
	cacheBytes  prometheus.Gauge
	// mapped mirrors mappedGauge for tests and Close's bookkeeping.
	mapped atomic.Int64
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		fsync: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierd_warm_fsync_duration_seconds",
			Help:    "Time spent in fsync of segment files (op=file) and their directories (op=dir).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"op"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_warm_segments_committed_total",
			Help: "Segment files committed (renamed into place and fsynced).",
		}),
		commitBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_warm_committed_bytes_total",
			Help: "Bytes of segment files committed.",
		}),
		corruptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_warm_corruption_errors_total",
			Help: "Corruption errors reported, by the operation that found them.",
		}, []string{"op"}),
		acquires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_warm_acquires_total",
			Help: "Reader acquisitions: served from the open-reader cache (hit), by mapping the file (miss), or failed (error).",
		}, []string{"result"}),
		mappedGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierd_warm_mapped_segments",
			Help: "Segment files currently mapped into memory.",
		}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierd_warm_map_cache_bytes",
			Help: "Memory the cached warm readers keep between reads (their footer copies), bounded by warm.map_cache_bytes.",
		}),
	}
	m.fsync = promreg.Register(reg, m.fsync)
	m.commits = promreg.Register(reg, m.commits)
	m.commitBytes = promreg.Register(reg, m.commitBytes)
	m.corruptions = promreg.Register(reg, m.corruptions)
	m.acquires = promreg.Register(reg, m.acquires)
	m.mappedGauge = promreg.Register(reg, m.mappedGauge)
	m.cacheBytes = promreg.Register(reg, m.cacheBytes)
	return m, nil
}

func (m *metrics) mappedDelta(d int64) {
	m.mapped.Add(d)
	m.mappedGauge.Add(float64(d))
}
