package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/cold/objstore"
)

// stallServer is an S3 endpoint that misbehaves on purpose, the way a hung
// store does: in mode "hang" it accepts every request and never answers;
// in "stall-body" it answers a GET's headers and its first bytes, then
// stops; in "trickle" it sends a GET's body one byte at a time; in
// "answer" it answers every request at once with 404 NoSuchKey (a store
// that works, holding nothing).
type stallServer struct {
	*httptest.Server
	mode     atomic.Value // string
	released chan struct{}
	requests atomic.Int64
}

func newStallServer(t *testing.T, mode string) *stallServer {
	t.Helper()
	s := &stallServer{released: make(chan struct{})}
	s.mode.Store(mode)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.released) // end the hanging handlers, then the server
		s.Close()
	})
	return s
}

func (s *stallServer) setMode(mode string) { s.mode.Store(mode) }

func (s *stallServer) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.released:
	}
}

func (s *stallServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	const size = 1000
	switch s.mode.Load().(string) {
	case "answer":
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		if r.Method != http.MethodHead {
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`)
		}
	case "stall-body", "trickle":
		if r.Method != http.MethodGet || strings.Contains(r.URL.RawQuery, "list-type") {
			s.hang(r)
			return
		}
		h := w.Header()
		h.Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		h.Set("ETag", `"0123456789abcdef0123456789abcdef"`)
		h.Set("Content-Type", "application/octet-stream")
		status, n := http.StatusOK, size
		if rg := r.Header.Get("Range"); rg != "" {
			var from, to int
			fmt.Sscanf(rg, "bytes=%d-%d", &from, &to)
			n = to - from + 1
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to, size))
			status = http.StatusPartialContent
		}
		h.Set("Content-Length", fmt.Sprint(n))
		w.WriteHeader(status)
		if s.mode.Load() == "stall-body" {
			w.Write(bytes.Repeat([]byte("x"), min(n, 10)))
			w.(http.Flusher).Flush()
			s.hang(r)
			return
		}
		for range n {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(150 * time.Millisecond):
			case <-r.Context().Done():
				return
			case <-s.released:
				return
			}
		}
	default: // hang
		s.hang(r)
	}
}

// openStalled opens a store of driver on srv with the given deadlines and
// probe interval, for one test.
func openStalled(t *testing.T, srv *stallServer, driver string, d objstore.Deadlines, probe time.Duration, reg prometheus.Registerer) objstore.Bucket {
	t.Helper()
	u := "s3://stalled/tierd?region=us-east-1&driver=" + driver + "&endpoint=" + srv.URL
	return openURL(t, u, objstore.Options{AccessKey: "ak", SecretKey: "sk-secret", MaxRetries: 1, Deadlines: d, ProbeInterval: probe, Registerer: reg})
}

// checkTimeout asserts that err is the store failing in time: ErrTimeout,
// never a cancellation, and that it took about limit (not less than
// limit/2, not more than limit+slack).
func checkTimeout(t *testing.T, what string, err error, took, limit time.Duration) {
	t.Helper()
	const slack = 3 * time.Second // a loaded 2-core machine; a hang is minutes
	switch {
	case err == nil:
		t.Errorf("%s against a hung store succeeded", what)
	case !errors.Is(err, objstore.ErrTimeout):
		t.Errorf("%s: %v (%T), want ErrTimeout", what, err, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		t.Errorf("%s: a timeout must not read as a cancellation: %v", what, err)
	case took > limit+slack:
		t.Errorf("%s failed after %v, want within %v", what, took, limit)
	case took < limit/2:
		t.Errorf("%s failed after %v, before its deadline %v: %v", what, took, limit, err)
	}
}

// TestDeadlinesEveryCall: against an endpoint that never answers, every
// kind of call fails with ErrTimeout within its deadline, for both S3
// drivers; the deadline of an upload grows with its size.
func TestDeadlinesEveryCall(t *testing.T) {
	d := objstore.Deadlines{ReadTimeout: 400 * time.Millisecond, MinBytesPerSecond: 64 << 10}
	const putSize = 128 << 10 // Transfer: 0.4 s + 2 s
	calls := []struct {
		name  string
		limit time.Duration
		call  func(ctx context.Context, b objstore.Bucket) error
	}{
		{"stat", d.ReadTimeout, func(ctx context.Context, b objstore.Bucket) error {
			_, err := b.Stat(ctx, "k")
			return err
		}},
		{"get", d.ReadTimeout, func(ctx context.Context, b objstore.Bucket) error {
			_, err := b.Get(ctx, "k")
			return err
		}},
		{"get range", d.ReadTimeout, func(ctx context.Context, b objstore.Bucket) error {
			_, err := b.GetRange(ctx, "k", 10, 100)
			return err
		}},
		{"put", d.Transfer(putSize), func(ctx context.Context, b objstore.Bucket) error {
			return b.Put(ctx, "k", bytes.NewReader(pattern(putSize, 1)), putSize)
		}},
		{"delete", d.ReadTimeout, func(ctx context.Context, b objstore.Bucket) error {
			return b.Delete(ctx, "k")
		}},
		{"list", d.ReadTimeout, func(ctx context.Context, b objstore.Bucket) error {
			var last error
			for _, err := range b.List(ctx, "") {
				last = err
			}
			return last
		}},
	}
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			srv := newStallServer(t, "hang")
			for _, c := range calls {
				// A bucket per call: the first timeout opens the breaker,
				// and this test is about each call's own deadline.
				b := openStalled(t, srv, driver, d, time.Hour, nil)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard only
				start := time.Now()
				err := c.call(ctx, b)
				cancel()
				checkTimeout(t, c.name, err, time.Since(start), c.limit)
			}
			if srv.requests.Load() == 0 {
				t.Fatal("no request reached the stalled server")
			}
		})
	}
}

// TestDeadlinesBody: a GET whose body stops flowing fails within the read
// timeout of its last byte, and a body that trickles fails once the whole
// read exceeds Transfer(length): the deadline covers the body, not only
// the answer's headers.
func TestDeadlinesBody(t *testing.T) {
	d := objstore.Deadlines{ReadTimeout: 400 * time.Millisecond, MinBytesPerSecond: 100}
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				mode, call string
				limit      time.Duration
			}{
				{"stall-body", "get", d.ReadTimeout},
				{"stall-body", "get range", d.ReadTimeout},
				// 50 bytes at 1 byte / 150 ms take 7.5 s; Transfer(50) is
				// 0.4 s + 0.5 s, and no single read waits 400 ms.
				{"trickle", "get range", d.Transfer(50)},
			} {
				srv := newStallServer(t, tc.mode)
				b := openStalled(t, srv, driver, d, time.Hour, nil)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				start := time.Now()
				var rc io.ReadCloser
				var err error
				if tc.call == "get" {
					rc, err = b.Get(ctx, "k")
				} else {
					rc, err = b.GetRange(ctx, "k", 0, 50)
				}
				if err != nil {
					cancel()
					t.Fatalf("%s %s: the answer started, yet: %v", tc.mode, tc.call, err)
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				cancel()
				if n == 0 {
					t.Errorf("%s %s: no byte of the body arrived", tc.mode, tc.call)
				}
				checkTimeout(t, tc.mode+" "+tc.call+" body", err, time.Since(start), tc.limit)
			}
		})
	}
}

// TestDeadlinesCallerCancel: a caller that gives up while the store hangs
// gets its own cancellation back, not a timeout: the store did not fail.
func TestDeadlinesCallerCancel(t *testing.T) {
	srv := newStallServer(t, "hang")
	b := openStalled(t, srv, objstore.DriverMinio, objstore.Deadlines{ReadTimeout: time.Minute}, time.Hour, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := b.Stat(ctx, "k")
	if !errors.Is(err, context.Canceled) || errors.Is(err, objstore.ErrTimeout) || errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("Stat cancelled by its caller: %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Stat took %v to notice its caller's cancellation", took)
	}
	if h, _ := objstore.HealthOf(b); !h.Available {
		t.Fatalf("a caller's cancellation made the store unavailable: %+v", h)
	}
}

// TestTransferRule: a transfer's deadline is the read timeout plus its
// size at the floor rate, the defaults filling zero fields, saturating
// instead of overflowing.
func TestTransferRule(t *testing.T) {
	for _, tc := range []struct {
		d    objstore.Deadlines
		n    int64
		want time.Duration
	}{
		{objstore.Deadlines{}, 0, 10 * time.Second},
		{objstore.Deadlines{}, 64 << 20, 74 * time.Second},
		{objstore.Deadlines{ReadTimeout: 2 * time.Second, MinBytesPerSecond: 1 << 10}, 512, 2500 * time.Millisecond},
		{objstore.Deadlines{ReadTimeout: time.Second, MinBytesPerSecond: 1}, math.MaxInt64, time.Duration(math.MaxInt64)},
		{objstore.Deadlines{ReadTimeout: time.Second}, -5, time.Second},
	} {
		if got := tc.d.Transfer(tc.n); got != tc.want {
			t.Errorf("%+v.Transfer(%d) = %v, want %v", tc.d, tc.n, got, tc.want)
		}
	}
}

// TestBreaker: after a timeout the store is unavailable: the calls in
// flight are abandoned at once, later calls fail fast (without a request),
// status shows it (HealthOf, the available gauge, the request results);
// once a probe is answered, calls go through again.
func TestBreaker(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			srv := newStallServer(t, "hang")
			reg := prometheus.NewRegistry()
			d := objstore.Deadlines{ReadTimeout: 500 * time.Millisecond}
			b := openStalled(t, srv, driver, d, 200*time.Millisecond, reg)
			ctx := context.Background()
			if h, ok := objstore.HealthOf(b); !ok || !h.Available {
				t.Fatalf("a new store: HealthOf = %+v, %v", h, ok)
			}
			// A slow upload in flight (its own deadline is long) ...
			putErr := make(chan error, 1)
			putStart := time.Now()
			go func() {
				const size = 1 << 20
				putErr <- b.Put(ctx, "big", bytes.NewReader(pattern(size, 2)), size)
			}()
			time.Sleep(100 * time.Millisecond)
			// ... is abandoned when a stat times out.
			start := time.Now()
			_, err := b.Stat(ctx, "k")
			checkTimeout(t, "stat", err, time.Since(start), d.ReadTimeout)
			select {
			case err := <-putErr:
				if !errors.Is(err, objstore.ErrUnavailable) || errors.Is(err, context.Canceled) {
					t.Errorf("the upload in flight when the store timed out: %v, want ErrUnavailable", err)
				}
				if took := time.Since(putStart); took > d.ReadTimeout+3*time.Second {
					t.Errorf("the upload in flight took %v to be abandoned", took)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the upload in flight was not abandoned when the store timed out")
			}
			h, _ := objstore.HealthOf(b)
			if h.Available || h.Since.IsZero() || !strings.Contains(h.Err, "stat") {
				t.Errorf("after a timeout: HealthOf = %+v, want unavailable since the stat's timeout", h)
			}
			if v := metricValue(t, reg, "tierd_cold_store_available"); v != 0 {
				t.Errorf("tierd_cold_store_available = %v while unavailable", v)
			}
			// Every kind of call now fails fast, without a request.
			before := srv.requests.Load()
			start = time.Now()
			errs := map[string]error{
				"put":    b.Put(ctx, "k", strings.NewReader("x"), 1),
				"delete": b.Delete(ctx, "k"),
			}
			_, errs["stat"] = b.Stat(ctx, "k")
			_, errs["get"] = b.Get(ctx, "k")
			_, errs["get range"] = b.GetRange(ctx, "k", 0, 1)
			for _, err := range b.List(ctx, "") {
				errs["list"] = err
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("six calls to an unavailable store took %v; they must fail fast", took)
			}
			for op, err := range errs {
				if !errors.Is(err, objstore.ErrUnavailable) || !strings.Contains(err.Error(), op) {
					t.Errorf("%s while unavailable: %v, want ErrUnavailable naming the op", op, err)
				}
			}
			// Probes went out meanwhile; none of the calls did.
			if n := srv.requests.Load() - before; n > 3 {
				t.Errorf("%d requests reached the store while calls failed fast (only probes should)", n)
			}
			// The store answers again: the next probe closes the breaker.
			srv.setMode("answer")
			deadline := time.Now().Add(15 * time.Second)
			for {
				if h, _ := objstore.HealthOf(b); h.Available {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the store answers again, but it is still unavailable after 15 s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := b.Stat(ctx, "k"); !errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("stat once the store answers: %v, want ErrNotFound", err)
			}
			if v := metricValue(t, reg, "tierd_cold_store_available"); v != 1 {
				t.Errorf("tierd_cold_store_available = %v once available", v)
			}
			for _, res := range []string{"timeout", "unavailable"} {
				if got := metricValue(t, reg, "tierd_cold_store_requests_total", "op", "stat", "result", res); got < 1 {
					t.Errorf(`tierd_cold_store_requests_total{op="stat",result=%q} = %v`, res, got)
				}
			}
		})
	}
}

// metricValue gathers reg and returns the value of the gauge or counter
// name with the given labels ("op", "stat", …), failing when it is absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v in the registry", name, labels)
	return 0
}
