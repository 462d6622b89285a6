package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/promreg"
)

// ErrUnavailable reports a call refused without trying, or abandoned: the
// store stopped answering (a call ran into its deadline, ErrTimeout) and
// has not answered a probe since. It tells the caller the store is failing,
// and costs it nothing: a migrator run over many segments, or a verify,
// does not wait out one deadline per object.
var ErrUnavailable = errors.New("objstore: store unavailable")

// DefaultProbeInterval is how often an unavailable store is probed when
// BreakerOptions.ProbeInterval is 0.
const DefaultProbeInterval = time.Second

// probeKey is the key a probe stats. No object is expected there: any
// answer (not found included) proves the store answers.
const probeKey = "tierd-health-probe"

// Health is a store's availability as WithBreaker sees it.
type Health struct {
	// Available is false from a call's timeout until a probe is answered.
	Available bool
	// Since is when the store became unavailable; zero while available.
	Since time.Time
	// Err is the timeout that made it unavailable; "" while available.
	Err string
}

// HealthOf returns the health of the breaker in b's chain of wrappers
// (each wrapper offers Unwrap() Bucket); ok is false when b has none.
func HealthOf(b Bucket) (h Health, ok bool) {
	for b != nil {
		if br, isBr := b.(*breaker); isBr {
			return br.Health(), true
		}
		u, isWrapper := b.(interface{ Unwrap() Bucket })
		if !isWrapper {
			break
		}
		b = u.Unwrap()
	}
	return Health{}, false
}

// BreakerOptions configures WithBreaker. The zero value is usable.
type BreakerOptions struct {
	// ProbeInterval is the pause between probes of an unavailable store;
	// 0 means DefaultProbeInterval.
	ProbeInterval time.Duration
	// Logger gets a warning when the store becomes unavailable and a line
	// when it answers again; nil discards them.
	Logger *slog.Logger
	// Registerer, when set, exports tierd_cold_store_available.
	Registerer prometheus.Registerer
}

// breaker is a circuit breaker over a Bucket whose calls have deadlines.
type breaker struct {
	b     Bucket
	opts  BreakerOptions
	up    prometheus.Gauge
	life  context.Context // cancelled by Close: ends the prober
	close context.CancelFunc
	mu    struct {
		sync.Mutex
		open    bool
		since   time.Time
		cause   error
		probing bool
		calls   map[*call]struct{}
	}
}

// WithBreaker returns a Bucket that stops calling b once b times out: the
// call that timed out returns its ErrTimeout, every call in flight at that
// moment is abandoned (its context cancelled) and returns ErrUnavailable, and
// every later call fails at once with ErrUnavailable, until a probe (a Stat
// of a key no one writes, every ProbeInterval, in the background) is
// answered, however it is answered. Only a timeout opens it: a store that
// answers, even with an error (refused connection, denied credentials, a
// missing bucket), fails fast by itself. b should be WithDeadlines, so that
// every call, and every probe, ends.
func WithBreaker(b Bucket, opts BreakerOptions) Bucket {
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	br := &breaker{b: b, opts: opts}
	br.life, br.close = context.WithCancel(context.Background())
	br.mu.calls = map[*call]struct{}{}
	br.up = promreg.Register(opts.Registerer, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tierd_cold_store_available",
		Help: "1 while the cold store answers; 0 from a call's timeout (cold.read_timeout) until a probe is answered, while calls fail fast.",
	}))
	br.up.Set(1)
	return br
}

// Unwrap returns the wrapped Bucket.
func (br *breaker) Unwrap() Bucket { return br.b }

// Health reports whether calls go through or fail fast.
func (br *breaker) Health() Health {
	br.mu.Lock()
	defer br.mu.Unlock()
	if !br.mu.open {
		return Health{Available: true}
	}
	return Health{Since: br.mu.since, Err: br.mu.cause.Error()}
}

// call is one call in flight through the breaker.
type call struct {
	br      *breaker
	parent  context.Context
	ctx     context.Context
	cancel  context.CancelCauseFunc
	op, key string
}

// begin admits a call, or refuses it with ErrUnavailable while open.
func (br *breaker) begin(ctx context.Context, op, key string) (*call, error) {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.mu.open {
		// The timeout is told (%v), not wrapped: this call did not time
		// out, it was not tried.
		return nil, fmt.Errorf("%w: %s %q: failing fast since %s, until the store answers a probe; it stopped answering: %v",
			ErrUnavailable, op, key, br.mu.since.UTC().Format(time.RFC3339), br.mu.cause)
	}
	c := &call{br: br, parent: ctx, op: op, key: key}
	c.ctx, c.cancel = context.WithCancelCause(ctx)
	br.mu.calls[c] = struct{}{}
	return c, nil
}

// result maps a call's error: abandoned by a trip, it is ErrUnavailable;
// a timeout trips the breaker. The caller's own cancellation stays as it is.
func (c *call) result(err error) error {
	if err == nil || c.parent.Err() != nil {
		return err
	}
	if cause := context.Cause(c.ctx); cause != nil && errors.Is(cause, ErrUnavailable) {
		return cause
	}
	if errors.Is(err, ErrTimeout) {
		c.br.trip(err)
	}
	return err
}

// end releases the call.
func (c *call) end() {
	c.br.mu.Lock()
	delete(c.br.mu.calls, c)
	c.br.mu.Unlock()
	c.cancel(nil)
}

// trip opens the breaker after cause, abandons the calls in flight (they
// would wait out their own deadlines against a store that does not answer)
// and starts the prober.
func (br *breaker) trip(cause error) {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.mu.open {
		return
	}
	br.mu.open, br.mu.since, br.mu.cause = true, time.Now(), cause
	br.up.Set(0)
	for c := range br.mu.calls {
		c.cancel(fmt.Errorf("%w: %s %q abandoned: another call timed out: %v", ErrUnavailable, c.op, c.key, cause))
	}
	br.opts.Logger.Warn("cold store not answering: its calls fail fast until it answers a probe", "err", cause, "probe_interval", br.opts.ProbeInterval)
	if !br.mu.probing {
		br.mu.probing = true
		go br.probe()
	}
}

// probe stats probeKey every ProbeInterval until the store answers, then
// closes the breaker.
func (br *breaker) probe() {
	t := time.NewTimer(br.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-br.life.Done():
			return
		case <-t.C:
		}
		_, err := br.b.Stat(br.life, probeKey)
		if br.life.Err() != nil {
			return
		}
		if err == nil || !errors.Is(err, ErrTimeout) {
			br.mu.Lock()
			since := br.mu.since
			br.mu.open, br.mu.probing, br.mu.since, br.mu.cause = false, false, time.Time{}, nil
			br.up.Set(1)
			br.mu.Unlock()
			br.opts.Logger.Info("cold store answering again", "unavailable_for", time.Since(since).Round(time.Millisecond))
			return
		}
		t.Reset(br.opts.ProbeInterval)
	}
}

func (br *breaker) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	c, err := br.begin(ctx, "put", key)
	if err != nil {
		return err
	}
	defer c.end()
	return c.result(br.b.Put(c.ctx, key, r, size))
}

func (br *breaker) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c, err := br.begin(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	rc, err := br.b.Get(c.ctx, key)
	if err != nil {
		err = c.result(err)
		c.end()
		return nil, err
	}
	return &breakerBody{rc: rc, c: c}, nil
}

func (br *breaker) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	c, err := br.begin(ctx, "get range", key)
	if err != nil {
		return nil, err
	}
	rc, err := br.b.GetRange(c.ctx, key, off, length)
	if err != nil {
		err = c.result(err)
		c.end()
		return nil, err
	}
	return &breakerBody{rc: rc, c: c}, nil
}

func (br *breaker) Stat(ctx context.Context, key string) (Attrs, error) {
	c, err := br.begin(ctx, "stat", key)
	if err != nil {
		return Attrs{}, err
	}
	defer c.end()
	a, err := br.b.Stat(c.ctx, key)
	return a, c.result(err)
}

func (br *breaker) List(ctx context.Context, prefix string) iter.Seq2[Attrs, error] {
	return func(yield func(Attrs, error) bool) {
		c, err := br.begin(ctx, "list", prefix)
		if err != nil {
			yield(Attrs{}, err)
			return
		}
		defer c.end()
		for a, err := range br.b.List(c.ctx, prefix) {
			if !yield(a, c.result(err)) || err != nil {
				return
			}
		}
	}
}

func (br *breaker) Delete(ctx context.Context, key string) error {
	c, err := br.begin(ctx, "delete", key)
	if err != nil {
		return err
	}
	defer c.end()
	return c.result(br.b.Delete(c.ctx, key))
}

// Close stops the prober and closes b.
func (br *breaker) Close() error {
	br.close()
	return br.b.Close()
}

// breakerBody keeps a read in flight (abandoned on a trip) until closed.
type breakerBody struct {
	rc   io.ReadCloser
	c    *call
	once sync.Once
}

func (b *breakerBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = b.c.result(err)
	}
	return n, err
}

func (b *breakerBody) Close() error {
	err := b.rc.Close()
	b.once.Do(b.c.end)
	return err
}

// Check asks the store whether tierd can use it, with one listing of a
// prefix no object has. It fails with ErrBucketNotFound, ErrAccessDenied,
// ErrTimeout or ErrUnavailable (no answer), or with the store's own error
// (a refused connection, a TLS problem). tierd calls it at start to warn an
// operator early; it changes nothing in the store.
func Check(ctx context.Context, b Bucket) error {
	for _, err := range b.List(ctx, probeKey) {
		return err
	}
	return nil
}
