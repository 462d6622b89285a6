package server

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/internal/promreg"
)

// appendRoute is the pattern of the append endpoint, whose answers are also
// counted as tierd_ingest_requests_total. It must match the pattern New
// registers (TestMetricsCountIngestRequests fails otherwise).
const appendRoute = "POST /v1/streams/{stream}/records"

// Result label values of tierd_ingest_requests_total, a bounded set.
var ingestResults = []string{"ok", "bad_request", "too_large", "unauthorized", "forbidden", "unavailable", "error"}

// ingestResult maps an append's HTTP status to its result label: 400 and
// the other client errors are bad_request, 413 too_large, 429 and 503
// (backpressure, storage down, shutting down) unavailable.
func ingestResult(status int) string {
	switch {
	case status < 300:
		return "ok"
	case status == http.StatusUnauthorized:
		return "unauthorized"
	case status == http.StatusForbidden:
		return "forbidden"
	case status == http.StatusRequestEntityTooLarge:
		return "too_large"
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return "unavailable"
	case status < 500:
		return "bad_request"
	}
	return "error"
}

// metrics counts requests by route pattern (a bounded set: the routes of
// New plus "unmatched") and status code, and appends by result.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ingest   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierd_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route; a streamed read counts until its last byte.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
		ingest: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_ingest_requests_total",
			Help: "Append requests (batches) answered, by result: ok, bad_request, too_large, unauthorized, forbidden, unavailable (503: backpressure, storage down, shutting down), error.",
		}, []string{"result"}),
	}
	m.requests = promreg.Register(reg, m.requests)
	m.duration = promreg.Register(reg, m.duration)
	m.ingest = promreg.Register(reg, m.ingest)
	for _, r := range ingestResults {
		m.ingest.WithLabelValues(r) // every result exported from the start, at 0
	}
	return m
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	if status == 0 {
		status = 200 // a handler that wrote nothing answered 200
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
	if route == appendRoute {
		m.ingest.WithLabelValues(ingestResult(status)).Inc()
	}
}

// metricsHandler serves GET /metrics: every series of Options.Gatherer in
// the Prometheus exposition format, or a JSON 404 without a Gatherer. A
// collector that fails is logged and left out; the rest are served.
func (s *Server) metricsHandler() http.Handler {
	if s.opts.Gatherer == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, api.CodeNotFound, "metrics are not enabled on this server")
		})
	}
	return promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      s.opts.Registerer,
	})
}
