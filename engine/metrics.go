package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/promreg"
	"github.com/tierd/tierd/tiers"
)

// scrapeTimeout bounds the catalog reads one scrape of the usage collector
// makes, so a slow catalog cannot hold a scrape forever.
const scrapeTimeout = 10 * time.Second

// metrics are the engine's series: the ingest counters, observed by Append,
// and the usage collector, which reads what the tiers hold at scrape time
// instead of keeping gauges up to date on every change. They are always
// built, so Append never checks for nil; with a nil Registerer they are
// simply not registered.
type metrics struct {
	records      prometheus.Counter
	bytes        prometheus.Counter
	ack          prometheus.Histogram
	backpressure prometheus.Counter
	duplicates   prometheus.Counter
	usage        *usageCollector
	health       *healthCollector
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_ingest_records_total",
			Help: "Records acknowledged (durable per wal.sync), all streams.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_ingest_bytes_total",
			Help: "Bytes of records acknowledged, in tierd's record encoding (offset, ts, key, tags, value; docs/format/record.md).",
		}),
		ack: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tierd_ingest_ack_duration_seconds",
			Help:    "Time from handing a validated batch to the write path until it is acknowledged: offsets, WAL group commit and, with wal.sync always, its fsync.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50µs .. ~1.6s
		}),
		backpressure: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_ingest_backpressure_rejections_total",
			Help: "Batches refused because unpersisted data filled the memory budget (hot.max_bytes); the API answers them 503 with Retry-After.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_ingest_duplicate_batches_total",
			Help: "Idempotent producers' retries of a batch already appended, answered with its offsets and not appended again.",
		}),
		usage:  &usageCollector{},
		health: &healthCollector{},
	}
	m.records = promreg.Register(reg, m.records)
	m.bytes = promreg.Register(reg, m.bytes)
	m.ack = promreg.Register(reg, m.ack)
	m.backpressure = promreg.Register(reg, m.backpressure)
	m.duplicates = promreg.Register(reg, m.duplicates)
	m.usage = promreg.Register(reg, m.usage)
	m.health = promreg.Register(reg, m.health)
	return m
}

// duplicate books a producer's retry that was not appended again.
func (m *metrics) duplicate() { m.duplicates.Inc() }

// appended books the outcome of one batch handed to the hot tier.
func (m *metrics) appended(recs []tiers.Record, err error, took time.Duration) {
	switch {
	case err == nil:
		var n int
		for i := range recs {
			n += tiers.EncodedLen(&recs[i])
		}
		m.records.Add(float64(len(recs)))
		m.bytes.Add(float64(n))
		m.ack.Observe(took.Seconds())
	case errors.Is(err, tiers.ErrBackpressure):
		m.backpressure.Inc()
	}
}

// The usage collector's series.
var (
	tierBytesDesc = prometheus.NewDesc("tierd_tier_bytes",
		"Bytes each tier holds, as GET /v1/streams sums them: hot the segments in memory, warm the segment files, cold the Parquet objects. A segment in two tiers counts in both.",
		[]string{"tier"}, nil)
	tierSegmentsDesc = prometheus.NewDesc("tierd_tier_segments",
		"Segments each tier holds (the active segment counts in hot). A segment in two tiers counts in both.",
		[]string{"tier"}, nil)
	streamsDesc = prometheus.NewDesc("tierd_streams",
		"Streams the node knows.", nil, nil)
	recordsDesc = prometheus.NewDesc("tierd_records_retained",
		"Records retained in any tier, all streams.", nil, nil)
	memUsedDesc = prometheus.NewDesc("tierd_memory_used_bytes",
		"Memory the hot tier uses for records, all streams (counted against hot.max_bytes).", nil, nil)
	memBudgetDesc = prometheus.NewDesc("tierd_memory_budget_bytes",
		"The hot tier's memory budget, hot.max_bytes.", nil, nil)
	memUnpersistedDesc = prometheus.NewDesc("tierd_memory_unpersisted_bytes",
		"Memory held by records not yet persisted warm; appends are refused (backpressure) once it would pass the budget.", nil, nil)
	walSizeDesc = prometheus.NewDesc("tierd_wal_size_bytes",
		"Bytes of WAL files on disk.", nil, nil)
	daySealsDesc = prometheus.NewDesc("tierd_hot_day_seals_total",
		"Segments sealed because the next record was on another UTC day (a segment never holds two): direction later (a stream crossing midnight) or earlier (a late record). A fast-growing earlier count is a producer whose ts goes back and forth across midnight, costing one segment per run.",
		[]string{"direction"}, nil)
)

// usageCollector reports what the engine's tiers hold, computed from the
// engine's own listings when scraped. One collector serves one registry:
// an engine opened on a registry that already has one binds it to itself,
// so the series always describe the engine opened last, and Close unbinds
// it (a closed engine reports nothing).
type usageCollector struct {
	eng atomic.Pointer[Engine]
}

func (c *usageCollector) bind(e *Engine)   { c.eng.Store(e) }
func (c *usageCollector) unbind(e *Engine) { c.eng.CompareAndSwap(e, nil) }

// Describe implements prometheus.Collector.
func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tierBytesDesc, tierSegmentsDesc, streamsDesc, recordsDesc, memUsedDesc, memBudgetDesc, memUnpersistedDesc, walSizeDesc, daySealsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. The memory and WAL figures are
// counters the hot tier keeps; the per-tier figures walk every stream's
// segment listing, like GET /v1/streams. A failing listing is reported as
// an invalid metric, so the scrape says so rather than show zeros.
func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.eng.Load()
	if e == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	hs := e.hot.Stats()
	gauge(memUsedDesc, float64(hs.Bytes))
	gauge(memBudgetDesc, float64(hs.MaxBytes))
	gauge(memUnpersistedDesc, float64(hs.Unpersisted))
	gauge(walSizeDesc, float64(hs.WAL.Bytes))
	ch <- prometheus.MustNewConstMetric(daySealsDesc, prometheus.CounterValue, float64(hs.DaySeals[0]), "later")
	ch <- prometheus.MustNewConstMetric(daySealsDesc, prometheus.CounterValue, float64(hs.DaySeals[1]), "earlier")

	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	infos, err := e.Streams(ctx)
	if err != nil {
		err = fmt.Errorf("engine: listing streams for metrics: %w", err)
		ch <- prometheus.NewInvalidMetric(tierBytesDesc, err)
		ch <- prometheus.NewInvalidMetric(tierSegmentsDesc, err)
		return
	}
	var records uint64
	usage := map[tiers.Placement]TierUsage{}
	for i := range infos {
		records += infos[i].Records
		for p, u := range infos[i].Tiers {
			t := usage[p]
			t.merge(u)
			usage[p] = t
		}
	}
	for _, p := range []tiers.Placement{tiers.Hot, tiers.Warm, tiers.Cold} {
		gauge(tierBytesDesc, float64(usage[p].Bytes), p.String())
		gauge(tierSegmentsDesc, float64(usage[p].Segments), p.String())
	}
	gauge(streamsDesc, float64(len(infos)))
	gauge(recordsDesc, float64(records))
}
