package engine

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/tiers"
)

// WriteHealth says whether the node can make appends durable now. Cause is
// "" while it can; otherwise one of tiers.CauseWALFailed (sticky: the WAL
// stopped after a failed fsync, only a restart clears it),
// tiers.CauseDiskFull, tiers.CauseDescriptors or tiers.CauseStorage (the
// WAL refuses groups, or persisting sealed segments warm fails; both are
// retried and clear by themselves once storage takes writes again).
type WriteHealth struct {
	Cause string
	Err   error     // the latest error of the condition
	Since time.Time // when the condition began
}

// Sticky reports whether only a restart clears the condition.
func (h WriteHealth) Sticky() bool { return h.Cause == tiers.CauseWALFailed }

// WriteHealth reports whether appends can be made durable now, and if not,
// why and since when. A WAL that refuses groups comes first (appends are
// refused now), then a failing persist (appends are taken only until the
// memory budget fills with what cannot be persisted).
func (e *Engine) WriteHealth() WriteHealth {
	hs := e.hot.WriteState()
	switch {
	case hs.WAL.Failed != nil:
		return WriteHealth{Cause: tiers.CauseWALFailed, Err: hs.WAL.Failed, Since: e.walFailedAt(hs.WAL.Failed)}
	case hs.WAL.Refused != nil:
		return WriteHealth{Cause: tiers.StorageCause(hs.WAL.Refused), Err: hs.WAL.Refused, Since: hs.WAL.RefusedSince}
	case hs.PersistFailed != nil:
		return WriteHealth{Cause: tiers.StorageCause(hs.PersistFailed), Err: hs.PersistFailed, Since: hs.PersistFailedSince}
	}
	return WriteHealth{}
}

// walFailedAt is when the engine first saw the WAL's sticky failure (the
// WAL does not date it).
func (e *Engine) walFailedAt(err error) time.Time {
	if p := e.walFailed.Load(); p != nil {
		return *p
	}
	now := e.opts.Now()
	e.walFailed.CompareAndSwap(nil, &now)
	return *e.walFailed.Load()
}

// The write health series.
var (
	writesRefusedDesc = prometheus.NewDesc("tierd_writes_refused",
		"1 for the condition that keeps the node from making appends durable (wal_failed: sticky until restart; disk_full, out_of_descriptors, storage_unavailable: retried, clear by themselves), 0 for the others; all 0 while writes work. /healthz answers 503 meanwhile.",
		[]string{"cause"}, nil)
	writesRefusedSinceDesc = prometheus.NewDesc("tierd_writes_refused_since_timestamp_seconds",
		"Unix time the current write condition began; 0 while writes work.", nil, nil)
)

// writeCauses are the causes the series export, all from the start.
var writeCauses = []string{tiers.CauseWALFailed, tiers.CauseDiskFull, tiers.CauseDescriptors, tiers.CauseStorage}

// healthCollector reports the bound engine's WriteHealth when scraped.
type healthCollector struct {
	eng atomic.Pointer[Engine]
}

func (c *healthCollector) bind(e *Engine)   { c.eng.Store(e) }
func (c *healthCollector) unbind(e *Engine) { c.eng.CompareAndSwap(e, nil) }

// Describe implements prometheus.Collector.
func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- writesRefusedDesc
	ch <- writesRefusedSinceDesc
}

// Collect implements prometheus.Collector.
func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.eng.Load()
	if e == nil {
		return
	}
	h := e.WriteHealth()
	for _, cause := range writeCauses {
		v := 0.0
		if cause == h.Cause {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(writesRefusedDesc, prometheus.GaugeValue, v, cause)
	}
	since := 0.0
	if h.Cause != "" {
		since = float64(h.Since.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(writesRefusedSinceDesc, prometheus.GaugeValue, since)
}
