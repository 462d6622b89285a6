package compactor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/promreg"
)

// metrics are the compactor's series; always built, registered only with a
// non-nil Registerer.
type metrics struct {
	// jobs counts jobs by what happened to them: planned, claimed,
	// committed, failed (left for a retry), lost (the lease went to
	// another node before the commit).
	jobs *prometheus.CounterVec
	// bytes and records count what committed segments hold.
	bytes   prometheus.Counter
	records prometheus.Counter
	// deleted counts objects garbage collection deleted, by kind: journal
	// (released), journal_orphan (no row), parquet_orphan (no segment).
	deleted *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_compactor_jobs_total",
			Help: "Compaction jobs by result: planned, claimed, committed, failed (retried after a delay), lost (the lease expired and another node may hold it).",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_compactor_bytes_total",
			Help: "Record bytes (tiers.Record.Size) of the segments this node committed from journal ranges.",
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_compactor_records_total",
			Help: "Records of the segments this node committed from journal ranges.",
		}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_compactor_gc_deleted_objects_total",
			Help: "Objects garbage collection deleted, by kind: journal (released by compaction), journal_orphan (no catalog row: a write that crashed before its commit), parquet_orphan (no segment or job names it).",
		}, []string{"kind"}),
	}
	m.jobs = promreg.Register(reg, m.jobs)
	m.bytes = promreg.Register(reg, m.bytes)
	m.records = promreg.Register(reg, m.records)
	m.deleted = promreg.Register(reg, m.deleted)
	return m
}

// The label values.
const (
	resPlanned   = "planned"
	resClaimed   = "claimed"
	resCommitted = "committed"
	resFailed    = "failed"
	resLost      = "lost"

	kindJournal       = "journal"
	kindJournalOrphan = "journal_orphan"
	kindParquetOrphan = "parquet_orphan"
)
