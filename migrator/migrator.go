// Package migrator runs the policy's plan: on a cron schedule (and on
// demand) it asks the planner what should move, and executes those actions
// through an Executor (the engine) with a concurrency limit, a byte-rate
// limit, per-segment retries with backoff, and the last error of each
// segment read from the executor's record for explain and status. One
// failing segment never blocks the others.
package migrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"golang.org/x/time/rate"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/policy"
)

// Executor is what the migrator needs of the mover (the engine hands its
// mover out, and delegates to it): the planner's input, the crash-safe
// execution of one action, settling, and each segment's record of its last
// failed move. That record is the executor's (the catalog keeps it): it
// outlives the process, and whatever finishes a move clears it, so the
// migrator keeps no failure history of its own, only when to retry.
type Executor interface {
	// PlanInput returns every segment the planner should consider, those of
	// one stream when stream is not empty.
	PlanInput(ctx context.Context, stream string) ([]policy.Segment, error)
	// Execute performs one action; it must be safe to repeat after a crash
	// at any point. A failure is recorded before it returns.
	Execute(ctx context.Context, a policy.Action) error
	// Settle finishes, before each run, moves that the plan will not ask
	// for again (a warm drop that failed after its commit). Its errors are
	// logged; the run goes on.
	Settle(ctx context.Context) error
	// LastFailure returns the segment's last failed move, if its latest
	// attempt failed.
	LastFailure(ctx context.Context, stream string, base uint64) (msg string, at time.Time, attempts int, ok bool, err error)
	// Failures returns every segment's last failed move.
	Failures(ctx context.Context) ([]catalog.Failure, error)
}

// StoreBackoff caps the retry delay of a move that failed because the cold
// store was unavailable (cold.ErrStoreUnavailable): per-call deadlines and
// the store's breaker make an attempt cheap while the store is down, and
// the segment should move soon after it is back rather than up to
// MaxBackoff later.
const StoreBackoff = 30 * time.Second

// Options configures a Migrator.
type Options struct {
	Config         policy.Config // policies, budgets, schedule, limits
	Schedule       string        // cron spec; "" = on demand only
	Concurrency    int           // actions at once (default 2)
	BytesPerSecond int64         // upload rate limit; 0 = unlimited
	MinBackoff     time.Duration // first retry delay of a failing segment (default 1 s)
	MaxBackoff     time.Duration // longest retry delay (default 5 m)
	Logger         *slog.Logger
	Now            func() time.Time
	// Registerer receives the tierd_migrator_* metrics (migrator/metrics.go);
	// nil registers none.
	Registerer prometheus.Registerer
}

// Result is the outcome of one action in a run.
type Result struct {
	Action policy.Action
	Err    string // empty on success
}

// Report is what one run did.
type Report struct {
	Started  time.Time
	Duration time.Duration
	DryRun   bool
	Results  []Result
	Skipped  int // actions not tried because their segment is backing off
}

// Failure is the last error of a segment, kept until it next succeeds: the
// executor's record (Err, At, Attempts) with the action that failed and
// when the migrator retries it.
type Failure struct {
	Action   policy.Action
	Err      string
	At       time.Time
	Attempts int
	RetryAt  time.Time
}

type segKey struct {
	stream string
	base   uint64
}

// retry is when the migrator tries a failing segment again, and the action
// that failed. It is the migrator's schedule, not a failure history: an
// entry lives while the executor's record of the failure does.
type retry struct {
	action policy.Action
	at     time.Time
}

// Migrator executes plans.
type Migrator struct {
	opts    Options
	exec    Executor
	limiter *rate.Limiter
	metrics *metrics
	cron    *cron.Cron
	ctx     context.Context // scheduled runs; cancelled by Stop
	cancel  context.CancelFunc
	runMu   sync.Mutex // one run at a time
	running atomic.Bool
	mu      struct {
		sync.Mutex
		retry     map[segKey]retry // failing segments' next attempts
		last      *Report
		lastErr   string // why the latest run could not plan; "" once one could
		lastErrAt time.Time
	}
}

// ErrBadSchedule reports a schedule the cron parser rejects.
var ErrBadSchedule = errors.New("migrator: bad schedule")

// New returns a Migrator; Start begins the schedule.
func New(exec Executor, opts Options) (*Migrator, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = policy.DefaultMigratorConcurrency
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Migrator{opts: opts, exec: exec, metrics: newMetrics(opts.Registerer)}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.mu.retry = map[segKey]retry{}
	if opts.BytesPerSecond > 0 {
		m.limiter = rate.NewLimiter(rate.Limit(opts.BytesPerSecond), int(min(opts.BytesPerSecond, 1<<30)))
	}
	if opts.Schedule != "" {
		m.cron = cron.New(cron.WithParser(cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)))
		if _, err := m.cron.AddFunc(opts.Schedule, m.scheduled); err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrBadSchedule, opts.Schedule, err)
		}
	}
	return m, nil
}

// Start runs the schedule until Stop.
func (m *Migrator) Start() {
	if m.cron != nil {
		m.cron.Start()
	}
}

// Stop stops the schedule, cancels a run in progress, scheduled or on
// demand (each move is safe to interrupt), and waits for a scheduled one
// to end or ctx.
func (m *Migrator) Stop(ctx context.Context) {
	m.cancel()
	if m.cron == nil {
		return
	}
	select {
	case <-m.cron.Stop().Done():
	case <-ctx.Done():
	}
}

// scheduled is the cron job: it skips a tick while a run is still going
// instead of queueing behind it.
func (m *Migrator) scheduled() {
	if !m.runMu.TryLock() {
		return
	}
	defer m.runMu.Unlock()
	if _, err := m.runLocked(m.ctx, "", false, nil); err != nil {
		m.opts.Logger.Error("migrator run", "err", err)
	}
}

// Run plans now and, unless dryRun, executes the plan; stream limits it to
// one stream. It returns what was planned and what happened to each action.
// It waits for a run in progress to end first.
func (m *Migrator) Run(ctx context.Context, stream string, dryRun bool) (Report, error) {
	return m.RunProgress(ctx, stream, dryRun, nil)
}

// Progress is how far a run is: actions finished (done, failed or skipped)
// of those planned, and their bytes.
type Progress struct {
	Done, Total       int
	Bytes, TotalBytes int64
}

// RunProgress is Run telling progress, if not nil, once the plan is made
// and after each action; it is called from one goroutine at a time.
//
// Stop cancels it as it cancels a scheduled run: each move is safe to
// interrupt, and a run stalled on a hung store must not hold up shutdown.
func (m *Migrator) RunProgress(ctx context.Context, stream string, dryRun bool, progress func(Progress)) (Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)()
	m.runMu.Lock()
	defer m.runMu.Unlock()
	return m.runLocked(ctx, stream, dryRun, progress)
}

func (m *Migrator) runLocked(ctx context.Context, stream string, dryRun bool, progress func(Progress)) (Report, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	now := m.opts.Now()
	rep := Report{Started: now, DryRun: dryRun}
	if !dryRun {
		defer func() { m.metrics.ran(time.Now()) }()
		m.running.Store(true)
		defer m.running.Store(false)
	}
	segs, err := m.exec.PlanInput(ctx, stream)
	if err != nil {
		err = fmt.Errorf("migrator: plan input: %w", err)
		if !dryRun {
			m.mu.Lock()
			m.mu.lastErr, m.mu.lastErrAt = err.Error(), now
			m.mu.Unlock()
		}
		return rep, err
	}
	actions := policy.Plan(now, segs, m.opts.Config)
	if !dryRun {
		if err := m.exec.Settle(ctx); err != nil {
			m.opts.Logger.Warn("migrator: settling unfinished moves", "err", err)
		}
		defer m.countFailing(context.WithoutCancel(ctx))
	}
	if dryRun {
		for _, a := range actions {
			rep.Results = append(rep.Results, Result{Action: a})
		}
		rep.Duration = m.opts.Now().Sub(now)
		return rep, nil
	}
	// Actions of one segment run in plan order, one after another; segments
	// run in parallel up to the concurrency limit.
	bySeg := map[segKey][]policy.Action{}
	var order []segKey
	for _, a := range actions {
		k := segKey{a.Stream, a.Base}
		if _, ok := bySeg[k]; !ok {
			order = append(order, k)
		}
		bySeg[k] = append(bySeg[k], a)
	}
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, m.opts.Concurrency)
		rmu  sync.Mutex // guards rep.Results and prog
		prog = Progress{Total: len(actions)}
	)
	for _, a := range actions {
		prog.TotalBytes += a.Bytes
	}
	progress(prog)
	// finished books actions as done for the progress report; rmu held.
	finished := func(as ...policy.Action) {
		for _, a := range as {
			prog.Done++
			prog.Bytes += a.Bytes
		}
		progress(prog)
	}
	backingOff := m.backingOff(ctx, now)
	for _, k := range order {
		if backingOff[k] {
			rep.Skipped += len(bySeg[k])
			m.metrics.skipped(bySeg[k])
			rmu.Lock()
			finished(bySeg[k]...)
			rmu.Unlock()
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			as := bySeg[k]
			for i, a := range as {
				err := m.execute(ctx, a)
				rmu.Lock()
				r := Result{Action: a}
				if err != nil {
					r.Err = err.Error()
				}
				rep.Results = append(rep.Results, r)
				if err != nil {
					finished(as[i:]...) // later actions of this segment depend on this one
				} else {
					finished(a)
				}
				rmu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	sort.SliceStable(rep.Results, func(i, j int) bool {
		a, b := rep.Results[i].Action, rep.Results[j].Action
		if a.Stream != b.Stream {
			return a.Stream < b.Stream
		}
		return a.Base < b.Base
	})
	rep.Duration = m.opts.Now().Sub(now)
	m.mu.Lock()
	last := rep
	m.mu.last = &last
	m.mu.lastErr, m.mu.lastErrAt = "", time.Time{}
	m.mu.Unlock()
	return rep, nil
}

// execute runs one action under the rate limit and books its outcome.
func (m *Migrator) execute(ctx context.Context, a policy.Action) error {
	if m.limiter != nil && a.Kind == policy.Upload {
		for left := a.Bytes; left > 0; {
			n := min(left, int64(m.limiter.Burst()))
			if err := m.limiter.WaitN(ctx, int(n)); err != nil {
				m.metrics.count(a, err)
				return err
			}
			left -= n
		}
	}
	start := time.Now()
	err := m.exec.Execute(ctx, a)
	m.metrics.moved(a, err, time.Since(start))
	k := segKey{a.Stream, a.Base}
	if err == nil {
		m.mu.Lock()
		delete(m.mu.retry, k)
		m.mu.Unlock()
		return nil
	}
	// The executor recorded the failure; its count of attempts sets the
	// backoff.
	_, _, attempts, ok, rerr := m.exec.LastFailure(context.WithoutCancel(ctx), a.Stream, a.Base)
	if rerr != nil || !ok {
		attempts = 1
	}
	backoff := min(m.opts.MinBackoff<<min(max(attempts, 1)-1, 20), m.opts.MaxBackoff)
	if errors.Is(err, cold.ErrStoreUnavailable) {
		backoff = min(backoff, StoreBackoff)
	}
	at := m.opts.Now().Add(backoff)
	m.mu.Lock()
	m.mu.retry[k] = retry{action: a, at: at}
	m.mu.Unlock()
	m.opts.Logger.Warn("migrator action failed", "action", a.String(), "attempts", attempts, "retry_at", at, "err", err)
	return err
}

// backingOff returns the segments not to try before their retry time: those
// whose failure the executor still records. It forgets the retry times of
// the others (finished elsewhere, or deleted), so the schedule stays as
// small as the failures.
func (m *Migrator) backingOff(ctx context.Context, now time.Time) map[segKey]bool {
	fs, err := m.exec.Failures(ctx)
	if err != nil {
		m.opts.Logger.Warn("migrator: read failure records", "err", err)
		return nil
	}
	failing := make(map[segKey]bool, len(fs))
	for _, f := range fs {
		failing[segKey{f.Stream, f.Base}] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[segKey]bool{}
	for k, r := range m.mu.retry {
		switch {
		case !failing[k]:
			delete(m.mu.retry, k)
		case now.Before(r.at):
			out[k] = true
		}
	}
	return out
}

// countFailing sets the failing-segments gauge from the executor's records.
func (m *Migrator) countFailing(ctx context.Context) {
	if fs, err := m.exec.Failures(ctx); err == nil {
		m.metrics.failing.Set(float64(len(fs)))
	}
}

// failure is the executor's record f as the migrator reports it: with the
// action that failed and when it is retried, if this migrator tried it;
// otherwise the action is read from the record's message ("upload: …").
// Err is the error without the action's name, as the action returned it.
func (m *Migrator) failure(f catalog.Failure) Failure {
	out := Failure{Err: f.Err, At: f.At, Attempts: f.Attempts}
	m.mu.Lock()
	r, ok := m.mu.retry[segKey{f.Stream, f.Base}]
	m.mu.Unlock()
	if ok {
		out.Action, out.RetryAt = r.action, r.at
	} else if name, _, found := strings.Cut(f.Err, ": "); found {
		if kind, err := policy.ParseActionKind(name); err == nil {
			out.Action = policy.Action{Kind: kind, Stream: f.Stream, Base: f.Base}
		}
	}
	if out.Action.Kind != 0 {
		out.Err = strings.TrimPrefix(out.Err, out.Action.Kind.String()+": ")
	}
	return out
}

// LastFailure returns the last error of a segment, if its latest attempt
// failed, as the executor records it.
func (m *Migrator) LastFailure(ctx context.Context, stream string, base uint64) (Failure, bool, error) {
	msg, at, attempts, ok, err := m.exec.LastFailure(ctx, stream, base)
	if err != nil || !ok {
		return Failure{}, false, err
	}
	return m.failure(catalog.Failure{Stream: stream, Base: base, Err: msg, At: at, Attempts: attempts}), true, nil
}

// LastRun returns the report of the latest run that executed, if any.
func (m *Migrator) LastRun() (Report, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.last == nil {
		return Report{}, false
	}
	return *m.mu.last, true
}
