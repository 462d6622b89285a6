// Package migrator runs the policy's plan: on a cron schedule (and on
// demand) it asks the planner what should move, and executes those actions
// through an Executor (the engine) with a concurrency limit, a byte-rate
// limit, per-segment retries with backoff, and the last error of each
// segment kept for explain. One failing segment never blocks the others.
package migrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"golang.org/x/time/rate"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/policy"
)

// Executor is what the migrator needs of the engine: the planner's input
// and the crash-safe execution of one action.
type Executor interface {
	// PlanInput returns every segment the planner should consider, those of
	// one stream when stream is not empty.
	PlanInput(ctx context.Context, stream string) ([]policy.Segment, error)
	// Execute performs one action; it must be safe to repeat after a crash
	// at any point.
	Execute(ctx context.Context, a policy.Action) error
}

// StoreBackoff caps the retry delay of a move that failed because the cold
// store was unavailable (cold.ErrStoreUnavailable): per-call deadlines and
// the store's breaker make an attempt cheap while the store is down, and
// the segment should move soon after it is back rather than up to
// MaxBackoff later.
const StoreBackoff = 30 * time.Second

// Settler is what an Executor may offer to finish, before each run, moves
// that the plan will not ask for again (a warm drop that failed after its
// commit). Its errors are logged; the run goes on.
type Settler interface {
	Settle(ctx context.Context) error
}

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

// Failure is the last error of a segment, kept until it next succeeds.
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
		failures  map[segKey]*Failure
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
	m.mu.failures = map[segKey]*Failure{}
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
	if s, ok := m.exec.(Settler); ok && !dryRun {
		if err := s.Settle(ctx); err != nil {
			m.opts.Logger.Warn("migrator: settling unfinished moves", "err", err)
		}
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
	for _, k := range order {
		if f := m.failure(k); f != nil && now.Before(f.RetryAt) {
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
	m.mu.Lock()
	defer m.mu.Unlock()
	defer func() { m.metrics.failing.Set(float64(len(m.mu.failures))) }()
	if err == nil {
		delete(m.mu.failures, k)
		return nil
	}
	f := m.mu.failures[k]
	if f == nil {
		f = &Failure{}
		m.mu.failures[k] = f
	}
	f.Attempts++
	f.Action, f.Err, f.At = a, err.Error(), m.opts.Now()
	backoff := min(m.opts.MinBackoff<<min(f.Attempts-1, 20), m.opts.MaxBackoff)
	if errors.Is(err, cold.ErrStoreUnavailable) {
		backoff = min(backoff, StoreBackoff)
	}
	f.RetryAt = f.At.Add(backoff)
	m.opts.Logger.Warn("migrator action failed", "action", a.String(), "attempts", f.Attempts, "retry_at", f.RetryAt, "err", err)
	return err
}

func (m *Migrator) failure(k segKey) *Failure {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.mu.failures[k]; f != nil {
		c := *f
		return &c
	}
	return nil
}

// LastFailure returns the last error of a segment, if its latest attempt
// failed.
func (m *Migrator) LastFailure(stream string, base uint64) (Failure, bool) {
	f := m.failure(segKey{stream, base})
	if f == nil {
		return Failure{}, false
	}
	return *f, true
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
