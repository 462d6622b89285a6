package server

import (
	"container/list"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/internal/promreg"
)

// HTTPOptions bounds the connections and requests of the http.Server that
// NewHTTPServer builds. Zero fields take the defaults.
type HTTPOptions struct {
	// ReadTimeout bounds reading a request from its first header byte:
	// the header (within at most 10 s of it) and the body. Once the
	// request is read, net/http lifts the deadline, so its answer may take
	// as long as it needs (long-polls, streamed reads, a verify). Default
	// 1m.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that waits this long for
	// its next request, and cuts a response its client has read nothing of
	// for this long. Default 2m.
	IdleTimeout time.Duration
	// MaxConnections caps the connections open at once. At the cap a new
	// connection takes the place of the one that has waited longest for a
	// request; with none waiting it gets one of a small reserve that
	// answers /healthz (and every other route 503 too_many_connections),
	// and past the reserve it is answered 503 at once and closed. Default
	// 10000.
	MaxConnections int
	// TLSConfig makes the server HTTPS (serve with ServeTLS(ln, "", "")).
	TLSConfig *tls.Config
	// ErrorLog receives net/http's own complaints; nil: the standard logger.
	ErrorLog *slog.Logger
	// Logger receives the limiter's warnings; nil discards.
	Logger *slog.Logger
	// Registerer receives the tierd_http_connections* series.
	Registerer prometheus.Registerer
}

// The defaults of HTTPOptions, in one place (policy.Default has the same
// for the configuration file).
const (
	DefaultReadTimeout    = time.Minute
	DefaultIdleTimeout    = 2 * time.Minute
	DefaultMaxConnections = 10000
	// maxHeaderWait bounds reading a request's header.
	maxHeaderWait = 10 * time.Second
	// reserveHeaderWait bounds a reserve connection: it is there for a
	// health check, which sends its request at once.
	reserveHeaderWait = 2 * time.Second
	// maxRefusers bounds the connections being answered 503 past the
	// reserve at once; beyond it they are closed without an answer.
	maxRefusers = 32
	// refuseLinger is how long a refused connection may take to read its
	// answer.
	refuseLinger = time.Second
)

// ReservedConnections is how many connections MaxConnections keeps in
// reserve for health checks: 1%, at least 4 and at most 100.
func ReservedConnections(maxConns int) int { return min(max(maxConns/100, 4), 100) }

// MaxRefusing is how many refused connections may be open at once while
// being answered; with the reserve it is what a process needs in file
// descriptors beyond MaxConnections.
const MaxRefusing = maxRefusers

func (o HTTPOptions) withDefaults() HTTPOptions {
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// NewHTTPServer returns the http.Server that serves h with o's timeouts,
// and ln wrapped to hold at most o.MaxConnections: serve the server on the
// returned listener. No WriteTimeout is set: long-polls and streamed reads
// must not be cut while the client reads; a client that stops reading for
// IdleTimeout is.
func NewHTTPServer(h http.Handler, ln net.Listener, o HTTPOptions) (*http.Server, net.Listener) {
	o = o.withDefaults()
	l := newConnLimiter(ln, o)
	srv := &http.Server{
		Handler:           &connGuard{next: h, idle: o.IdleTimeout, limiter: l},
		TLSConfig:         o.TLSConfig,
		ReadHeaderTimeout: min(maxHeaderWait, o.ReadTimeout),
		ReadTimeout:       o.ReadTimeout,
		IdleTimeout:       o.IdleTimeout,
		ConnState:         l.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, trackedOf(c))
		},
	}
	if o.ErrorLog != nil {
		srv.ErrorLog = slog.NewLogLogger(o.ErrorLog.Handler(), slog.LevelWarn)
	}
	return srv, l
}

// connKey carries a request's *trackedConn in its context.
type connKey struct{}

// connLimiter is a listener that holds at most max connections, plus a
// reserve for health checks. It learns from the server's ConnState hook
// which connections wait for a request (new or idle): at the cap, the one
// that has waited longest is closed to make room, as a server under load
// should prefer a client with a request to one without. A connection with
// a request in progress is never closed to make room.
type connLimiter struct {
	net.Listener
	max, reserve int
	tls          bool
	log          *slog.Logger
	met          *connMetrics
	refusers     chan struct{}
	refusal      []byte // the raw 503 answer past the reserve

	mu struct {
		sync.Mutex
		open     int       // connections holding one of the max places
		reserved int       // reserve connections open
		waiting  list.List // *trackedConn without a request in progress, longest waiting first
		warned   time.Time
	}
}

func newConnLimiter(ln net.Listener, o HTTPOptions) *connLimiter {
	l := &connLimiter{
		Listener: ln,
		max:      o.MaxConnections,
		reserve:  ReservedConnections(o.MaxConnections),
		tls:      o.TLSConfig != nil,
		log:      o.Logger,
		refusers: make(chan struct{}, maxRefusers),
	}
	l.met = newConnMetrics(o.Registerer, l)
	// Written before any request is read, so not through writeError; the
	// same error body all the same.
	b, _ := json.Marshal(api.ErrorBody{Error: &api.Error{Code: api.CodeTooManyConnections,
		Message: fmt.Sprintf("tierd holds http.max_connections (%d) connections and its reserve; retry later", l.max)}})
	body := string(b) + "\n"
	l.refusal = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return l
}

// trackedConn is an accepted connection the limiter counts.
type trackedConn struct {
	net.Conn
	l       *connLimiter
	reserve bool
	until   time.Time // reserve: reads never wait past it

	// Guarded by l.mu.
	elem     *list.Element // in l.mu.waiting while no request is in progress
	released bool          // its place is given back (closed, or taken by another)
}

// trackedOf returns c's trackedConn, looking through TLS.
func trackedOf(c net.Conn) *trackedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}

// Accept returns the next connection the limiter admits; the others are
// refused without the server ever seeing them.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := l.admit(c); tc != nil {
			return tc, nil
		}
		l.refuse(c)
	}
}

// admit gives c a place: a free one, the place of the connection that has
// waited longest for a request, or one of the reserve; nil when none.
func (l *connLimiter) admit(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, l: l}
	var victim *trackedConn
	l.mu.Lock()
	switch {
	case l.mu.open < l.max:
		l.mu.open++
	case l.mu.waiting.Len() > 0:
		victim = l.mu.waiting.Remove(l.mu.waiting.Front()).(*trackedConn)
		victim.elem, victim.released = nil, true // tc takes its place
	case l.mu.reserved < l.reserve:
		l.mu.reserved++
		tc.reserve = true
		tc.until = time.Now().Add(reserveHeaderWait)
	default:
		l.mu.Unlock()
		return nil
	}
	l.warnLocked()
	l.mu.Unlock()
	if victim != nil {
		victim.Conn.Close() // the server's read fails and it lets the connection go
		l.met.evicted.Inc()
	}
	if tc.reserve {
		c.SetReadDeadline(tc.until)
	}
	return tc
}

// warnLocked logs, at most every 10 s, that the limiter is at its cap.
func (l *connLimiter) warnLocked() {
	if l.mu.open < l.max {
		return
	}
	if now := time.Now(); now.Sub(l.mu.warned) >= 10*time.Second {
		l.mu.warned = now
		l.log.Warn("http: at http.max_connections: closing connections that wait for a request, then refusing new ones",
			"max_connections", l.max, "reserve", l.reserve, "reserve_in_use", l.mu.reserved, "waiting", l.mu.waiting.Len())
	}
}

// refuse answers c 503 too_many_connections and closes it, from a small
// pool of goroutines so that the answer can be read before the close
// (closing with the request unread would reset the connection); with the
// pool busy, or over TLS, c is closed at once.
func (l *connLimiter) refuse(c net.Conn) {
	l.met.refused.Inc()
	l.mu.Lock()
	l.warnLocked()
	l.mu.Unlock()
	if l.tls {
		c.Close()
		return
	}
	select {
	case l.refusers <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusers }()
		c.SetDeadline(time.Now().Add(refuseLinger))
		if _, err := c.Write(l.refusal); err == nil {
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		}
		c.Close()
	}()
}

// connState follows the server's view of each connection: new and idle
// ones wait for a request and may give their place up; active ones not.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	tc := trackedOf(c)
	if tc == nil || tc.reserve {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if tc.released {
		return
	}
	switch st {
	case http.StateNew, http.StateIdle:
		if tc.elem == nil {
			tc.elem = l.mu.waiting.PushBack(tc)
		} else {
			l.mu.waiting.MoveToBack(tc.elem)
		}
	default:
		if tc.elem != nil {
			l.mu.waiting.Remove(tc.elem)
			tc.elem = nil
		}
	}
}

// release gives c's place back, once.
func (l *connLimiter) release(c *trackedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released {
		return
	}
	c.released = true
	if c.elem != nil {
		l.mu.waiting.Remove(c.elem)
		c.elem = nil
	}
	if c.reserve {
		l.mu.reserved--
	} else {
		l.mu.open--
	}
}

// counts returns the connections open in places and in the reserve.
func (l *connLimiter) counts() (open, reserved int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.open, l.mu.reserved
}

// Close gives the connection's place back and closes it.
func (c *trackedConn) Close() error {
	c.l.release(c)
	return c.Conn.Close()
}

// CloseWrite half-closes the connection when it can, so that net/http can
// end an answer with FIN and let the client read it before the close.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// SetReadDeadline keeps a reserve connection's reads within its bound,
// whatever the server asks.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if c.reserve && (t.IsZero() || t.After(c.until)) {
		t = c.until
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline is SetReadDeadline and SetWriteDeadline.
func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// connGuard is the handler in front of the API: it answers requests on
// reserve connections other than /healthz with 503, and gives every
// response write IdleTimeout to make progress.
type connGuard struct {
	next    http.Handler
	idle    time.Duration
	limiter *connLimiter
}

func (g *connGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tc, _ := r.Context().Value(connKey{}).(*trackedConn)
	if tc != nil && tc.reserve {
		w.Header().Set("Connection", "close") // the reserve is for one request
	}
	if tc != nil && tc.reserve && r.URL.Path != "/healthz" {
		g.limiter.met.refused.Inc()
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, api.CodeTooManyConnections,
			fmt.Sprintf("tierd holds http.max_connections (%d) connections; this one is from the reserve kept for /healthz; retry later", g.limiter.max))
		return
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // none left from an earlier request
	g.next.ServeHTTP(&progressWriter{ResponseWriter: w, rc: rc, idle: g.idle}, r)
}

// progressWriter gives each write and flush of a response IdleTimeout to
// complete: a client that stops reading is cut, one that reads slowly is
// not.
type progressWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *progressWriter) Write(b []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	return w.ResponseWriter.Write(b)
}

// FlushError lets http.ResponseController flush through the deadline.
func (w *progressWriter) FlushError() error {
	w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// connMetrics are the limiter's series.
type connMetrics struct {
	evicted prometheus.Counter
	refused prometheus.Counter
}

func newConnMetrics(reg prometheus.Registerer, l *connLimiter) *connMetrics {
	m := &connMetrics{
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_http_connections_evicted_total",
			Help: "Connections waiting for a request that were closed at http.max_connections to make room for a new one.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_http_connections_refused_total",
			Help: "Connections (or requests on reserve connections other than /healthz) answered 503 too_many_connections at http.max_connections.",
		}),
	}
	m.evicted = promreg.Register(reg, m.evicted)
	m.refused = promreg.Register(reg, m.refused)
	promreg.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tierd_http_connections",
		Help: "HTTP connections open, reserve ones included.",
	}, func() float64 {
		open, reserved := l.counts()
		return float64(open + reserved)
	}))
	promreg.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tierd_http_connections_max",
		Help: "http.max_connections in effect (lowered at start to what the open-file limit allows).",
	}, func() float64 { return float64(l.max) }))
	return m
}
