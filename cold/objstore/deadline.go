package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"sync"
	"time"
)

// ErrTimeout reports a call the store did not answer within its deadline
// (Deadlines): the store is hung or too slow to use, which is the store
// failing, not the caller giving up. It never wraps context.Canceled or
// context.DeadlineExceeded, so no layer above mistakes it for a cancelled
// request.
var ErrTimeout = errors.New("objstore: the store did not answer in time")

// The defaults of Deadlines (and of Options) when a field is zero;
// policy.Default takes the configuration's (cold.read_timeout,
// cold.min_bytes_per_second) from them.
const (
	DefaultReadTimeout       = 10 * time.Second
	DefaultMinBytesPerSecond = 1 << 20
)

// Deadlines bounds every call to a store. A hung S3 endpoint (a paused
// process, a black-holed route) accepts connections and requests and never
// answers; without these bounds a caller waits for whatever timeout the
// HTTP transport has, which is either too long for a read or too short for
// a large upload.
//
// The rule, per call kind:
//   - Stat and Delete: ReadTimeout for the whole call.
//   - Get and GetRange: ReadTimeout until the answer starts, and then for
//     each Read of the body (a body that stops flowing fails within
//     ReadTimeout); a GetRange of known length also fails once the whole
//     read takes longer than Transfer(length).
//   - Put of size bytes: Transfer(size) = ReadTimeout + size at
//     MinBytesPerSecond, for the whole upload including the store's final
//     answer (a multipart completion).
//   - List: ReadTimeout for each object (each page, in practice) to arrive;
//     the time the caller spends between objects does not count.
type Deadlines struct {
	// ReadTimeout is how long the store may keep tierd waiting for any
	// answer: 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// MinBytesPerSecond is the slowest transfer rate tierd still accepts
	// from a healthy store: 0 means DefaultMinBytesPerSecond.
	MinBytesPerSecond int64
}

func (d Deadlines) withDefaults() Deadlines {
	if d.ReadTimeout <= 0 {
		d.ReadTimeout = DefaultReadTimeout
	}
	if d.MinBytesPerSecond <= 0 {
		d.MinBytesPerSecond = DefaultMinBytesPerSecond
	}
	return d
}

// Transfer is the deadline of a transfer of n bytes: ReadTimeout plus n at
// MinBytesPerSecond (a 64 MiB upload at the defaults: 10 s + 64 s). It
// saturates rather than overflows for absurd sizes.
func (d Deadlines) Transfer(n int64) time.Duration {
	d = d.withDefaults()
	if n <= 0 {
		return d.ReadTimeout
	}
	extra := float64(n) / float64(d.MinBytesPerSecond) * float64(time.Second)
	if extra >= float64(math.MaxInt64-int64(d.ReadTimeout)) {
		return time.Duration(math.MaxInt64)
	}
	return d.ReadTimeout + time.Duration(extra)
}

// deadlined enforces Deadlines on every call of b.
type deadlined struct {
	b Bucket
	d Deadlines
}

// WithDeadlines returns a Bucket whose calls fail with ErrTimeout once b
// exceeds d (see Deadlines for the rule per call kind), by cancelling the
// call's context. A caller's own cancellation is reported as it is (its
// context's error), never as a timeout. Providers must honour ctx on every
// call, the bodies they return included; the S3 providers do through
// net/http, while the file provider is interrupted only between its steps.
func WithDeadlines(b Bucket, d Deadlines) Bucket {
	return &deadlined{b: b, d: d.withDefaults()}
}

// Unwrap returns the wrapped Bucket (see HealthOf).
func (w *deadlined) Unwrap() Bucket { return w.b }

func (w *deadlined) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	wd := startWatchdog(ctx, "put", key, 0, w.d.Transfer(size))
	defer wd.stop()
	return wd.err(w.b.Put(wd.ctx, key, r, size))
}

func (w *deadlined) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	wd := startWatchdog(ctx, "get", key, w.d.ReadTimeout, 0)
	rc, err := w.b.Get(wd.ctx, key)
	if err != nil {
		err = wd.err(err)
		wd.stop()
		return nil, err
	}
	wd.pause()
	return &deadlinedBody{rc: rc, wd: wd}, nil
}

func (w *deadlined) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	var total time.Duration
	if length > 0 {
		total = w.d.Transfer(length)
	}
	wd := startWatchdog(ctx, "get range", key, w.d.ReadTimeout, total)
	rc, err := w.b.GetRange(wd.ctx, key, off, length)
	if err != nil {
		err = wd.err(err)
		wd.stop()
		return nil, err
	}
	wd.pause()
	return &deadlinedBody{rc: rc, wd: wd}, nil
}

func (w *deadlined) Stat(ctx context.Context, key string) (Attrs, error) {
	wd := startWatchdog(ctx, "stat", key, 0, w.d.ReadTimeout)
	defer wd.stop()
	a, err := w.b.Stat(wd.ctx, key)
	return a, wd.err(err)
}

func (w *deadlined) List(ctx context.Context, prefix string) iter.Seq2[Attrs, error] {
	return func(yield func(Attrs, error) bool) {
		wd := startWatchdog(ctx, "list", prefix, w.d.ReadTimeout, 0)
		defer wd.stop()
		for a, err := range w.b.List(wd.ctx, prefix) {
			wd.pause() // the caller's time with an object is not the store's
			if !yield(a, wd.err(err)) || err != nil {
				return
			}
			wd.resume()
		}
	}
}

func (w *deadlined) Delete(ctx context.Context, key string) error {
	wd := startWatchdog(ctx, "delete", key, 0, w.d.ReadTimeout)
	defer wd.stop()
	return wd.err(w.b.Delete(wd.ctx, key))
}

func (w *deadlined) Close() error { return w.b.Close() }

// deadlinedBody keeps a read's watchdog running while the caller reads the
// body: each Read must return within the idle timeout.
type deadlinedBody struct {
	rc   io.ReadCloser
	wd   *watchdog
	once sync.Once
}

func (b *deadlinedBody) Read(p []byte) (int, error) {
	b.wd.resume()
	n, err := b.rc.Read(p)
	b.wd.pause()
	if err != nil && err != io.EOF {
		err = b.wd.err(err)
	}
	return n, err
}

func (b *deadlinedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(b.wd.stop)
	return err
}

// watchdog cancels one call's context when the store takes too long: after
// idle without an answer (while running; the caller pauses it while it has
// the turn) or after total in all. Either may be 0 for none.
type watchdog struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   time.Duration
	op     string
	key    string

	mu        sync.Mutex
	idleTimer *time.Timer // nil without idle
	running   bool
	total     *time.Timer // nil without total
}

func startWatchdog(parent context.Context, op, key string, idle, total time.Duration) *watchdog {
	ctx, cancel := context.WithCancelCause(parent)
	w := &watchdog{parent: parent, ctx: ctx, cancel: cancel, idle: idle, op: op, key: key}
	if total > 0 {
		w.total = time.AfterFunc(total, func() { w.fire(fmt.Sprintf("not done after %s", total)) })
	}
	if idle > 0 {
		w.idleTimer = time.AfterFunc(idle, func() { w.fire(fmt.Sprintf("no answer for %s", idle)) })
		w.running = true
	}
	return w
}

// fire cancels the call with a timeout as the cause.
func (w *watchdog) fire(how string) {
	what := w.op
	if w.key != "" {
		what = fmt.Sprintf("%s %q", w.op, w.key)
	}
	w.cancel(fmt.Errorf("%w: %s: %s", ErrTimeout, what, how))
}

// pause stops the idle clock: the caller has the turn.
func (w *watchdog) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.idleTimer != nil && w.running {
		w.idleTimer.Stop()
		w.running = false
	}
}

// resume restarts the idle clock from zero: the store has the turn again.
func (w *watchdog) resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.idleTimer != nil && !w.running && w.ctx.Err() == nil {
		w.idleTimer.Reset(w.idle)
		w.running = true
	}
}

// stop ends the watch and releases the context.
func (w *watchdog) stop() {
	w.pause()
	if w.total != nil {
		w.total.Stop()
	}
	w.cancel(nil)
}

// err turns the failure of a call the watchdog cancelled into its
// ErrTimeout; any other error, and any error once the caller's own context
// is done, is returned as it is.
func (w *watchdog) err(err error) error {
	if err == nil || w.parent.Err() != nil {
		return err
	}
	if cause := context.Cause(w.ctx); cause != nil && errors.Is(cause, ErrTimeout) {
		return cause
	}
	return err
}
