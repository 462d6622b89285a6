package cluster

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/internal/promreg"
	"github.com/tierd/tierd/tiers"
)

// The write health series, as the engine names them (docs/metrics.md), so
// that one alert covers both modes; a cluster node adds the cause fenced.
var (
	writesRefusedDesc = prometheus.NewDesc("tierd_writes_refused",
		"1 for the condition that keeps the node from making appends durable, 0 for the others; all 0 while writes work. In cluster mode: storage_unavailable (PostgreSQL or the shared store does not answer; clears by itself) or fenced (a newer process of this node_id started; only a restart clears it). /healthz answers 503 meanwhile.",
		[]string{"cause"}, nil)
	writesRefusedSinceDesc = prometheus.NewDesc("tierd_writes_refused_since_timestamp_seconds",
		"Unix time the current write condition began; 0 while writes work.", nil, nil)
)

// clusterCauses are the causes a cluster node exports, all from the start.
var clusterCauses = []string{tiers.CauseStorage, CauseFenced}

// healthCollector reports the bound node's WriteHealth when scraped.
type healthCollector struct{ node atomic.Pointer[Node] }

// Describe implements prometheus.Collector.
func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- writesRefusedDesc
	ch <- writesRefusedSinceDesc
}

// Collect implements prometheus.Collector.
func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.node.Load()
	if n == nil {
		return
	}
	h := n.WriteHealth()
	for _, cause := range clusterCauses {
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

// bindMetrics registers the node's health series with reg (nil: none); a
// collector already registered there is rebound to n.
func (n *Node) bindMetrics(reg prometheus.Registerer) {
	c := promreg.Register(reg, &healthCollector{})
	c.node.Store(n)
	n.metrics = c
}

// unbindMetrics stops reporting n's health (it is closed).
func (n *Node) unbindMetrics() {
	if n.metrics != nil {
		n.metrics.node.CompareAndSwap(n, nil)
	}
}
