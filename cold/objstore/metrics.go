package objstore

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/promreg"
)

// Metric label values. result is bounded to these six so a failing store
// cannot blow up the series count.
const (
	resultOK          = "ok"
	resultNotFound    = "not_found"
	resultCanceled    = "canceled"
	resultTimeout     = "timeout"     // ErrTimeout: the store did not answer in time
	resultUnavailable = "unavailable" // ErrUnavailable: failed fast, the store is not answering
	resultError       = "error"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_cold_store_requests_total",
			Help: "Object store requests by operation and result (ok, not_found, canceled, timeout, unavailable, error).",
		}, []string{"op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierd_cold_store_request_duration_seconds",
			Help:    "Object store request latency; for get, until the body starts.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_cold_store_bytes_total",
			Help: "Bytes sent (put) and received (get, get_range) by the object store.",
		}, []string{"op"}),
	}
	m.requests = promreg.Register(reg, m.requests)
	m.duration = promreg.Register(reg, m.duration)
	m.bytes = promreg.Register(reg, m.bytes)
	return m
}

func (m *metrics) observe(op string, start time.Time, err error) {
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	res := resultOK
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		res = resultNotFound
	case errors.Is(err, ErrTimeout):
		res = resultTimeout
	case errors.Is(err, ErrUnavailable):
		res = resultUnavailable
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		res = resultCanceled
	default:
		res = resultError
	}
	m.requests.WithLabelValues(op, res).Inc()
}

type metered struct {
	b Bucket
	m *metrics
}

// WithMetrics returns a Bucket that records every call of b in reg:
// tierd_cold_store_requests_total{op,result},
// tierd_cold_store_request_duration_seconds{op} and
// tierd_cold_store_bytes_total{op}. op is one of put, get, get_range, stat,
// list, delete. A nil reg returns b unchanged.
func WithMetrics(b Bucket, reg prometheus.Registerer) Bucket {
	if reg == nil {
		return b
	}
	return &metered{b: b, m: newMetrics(reg)}
}

// Unwrap returns the wrapped Bucket (see HealthOf).
func (w *metered) Unwrap() Bucket { return w.b }

func (w *metered) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	start := time.Now()
	err := w.b.Put(ctx, key, r, size)
	w.m.observe("put", start, err)
	if err == nil {
		w.m.bytes.WithLabelValues("put").Add(float64(size))
	}
	return err
}

func (w *metered) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := w.b.Get(ctx, key)
	w.m.observe("get", start, err)
	if err != nil {
		return nil, err
	}
	return &countingBody{ReadCloser: rc, c: w.m.bytes.WithLabelValues("get")}, nil
}

func (w *metered) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := w.b.GetRange(ctx, key, off, length)
	w.m.observe("get_range", start, err)
	if err != nil {
		return nil, err
	}
	return &countingBody{ReadCloser: rc, c: w.m.bytes.WithLabelValues("get_range")}, nil
}

func (w *metered) Stat(ctx context.Context, key string) (Attrs, error) {
	start := time.Now()
	a, err := w.b.Stat(ctx, key)
	w.m.observe("stat", start, err)
	return a, err
}

// List counts one request per listing (not per page) and times it until
// the iteration ends.
func (w *metered) List(ctx context.Context, prefix string) iter.Seq2[Attrs, error] {
	return func(yield func(Attrs, error) bool) {
		start := time.Now()
		var lastErr error
		for a, err := range w.b.List(ctx, prefix) {
			lastErr = err
			if !yield(a, err) {
				break
			}
		}
		w.m.observe("list", start, lastErr)
	}
}

func (w *metered) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := w.b.Delete(ctx, key)
	w.m.observe("delete", start, err)
	return err
}

func (w *metered) Close() error { return w.b.Close() }

// countingBody counts bytes as the caller reads them, so a caller that
// reads only part of a body is charged only for that part.
type countingBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.Add(float64(n))
	}
	return n, err
}
