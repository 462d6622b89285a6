package migrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// segmentStore is an Executor over an in-memory set of segments that applies
// each action's effect, so successive plans progress as they would against
// the engine. fail makes Execute fail for the listed segments; each failure
// is recorded as the mover records it in the catalog ("kind: error",
// attempts counted until a success), at now.
type segmentStore struct {
	mu        sync.Mutex
	now       func() time.Time
	segs      map[string]*policy.Segment
	fail      map[string]error
	failures  map[string]*catalog.Failure
	running   atomic.Int32
	maxSeen   atomic.Int32
	executed  []string
	execDelay time.Duration
}

func key(stream string, base uint64) string { return fmt.Sprintf("%s/%d", stream, base) }

func newStore(n int, sealed time.Time) *segmentStore {
	s := &segmentStore{now: time.Now, segs: map[string]*policy.Segment{}, fail: map[string]error{}, failures: map[string]*catalog.Failure{}}
	for i := 0; i < n; i++ {
		base := uint64(i * 100)
		s.segs[key("s", base)] = &policy.Segment{SegmentMeta: tiers.SegmentMeta{
			Stream: "s", Base: base, Last: base + 99, Count: 100, Bytes: 1000,
			SealedAt: sealed, Placements: tiers.Of(tiers.Warm),
		}}
	}
	return s
}

func (s *segmentStore) PlanInput(ctx context.Context, stream string) ([]policy.Segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []policy.Segment
	for i := 0; i < len(s.segs); i++ {
		if seg, ok := s.segs[key("s", uint64(i*100))]; ok {
			out = append(out, *seg)
		}
	}
	return out, nil
}

func (s *segmentStore) Execute(ctx context.Context, a policy.Action) error {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(s.execDelay)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(a.Stream, a.Base)
	if err := s.fail[k]; err != nil {
		f := s.failures[k]
		if f == nil {
			f = &catalog.Failure{Stream: a.Stream, Base: a.Base}
			s.failures[k] = f
		}
		f.Err, f.At = fmt.Sprintf("%s: %v", a.Kind, err), s.now()
		f.Attempts++
		return err
	}
	delete(s.failures, k)
	s.executed = append(s.executed, a.Kind.String()+" "+k)
	seg := s.segs[k]
	switch a.Kind {
	case policy.Upload:
		seg.Placements = seg.Placements.With(tiers.Cold)
	case policy.DropWarm:
		seg.Placements = seg.Placements.Without(tiers.Warm)
	}
	return nil
}

func (s *segmentStore) Settle(ctx context.Context) error { return nil }

func (s *segmentStore) LastFailure(ctx context.Context, stream string, base uint64) (string, time.Time, int, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.failures[key(stream, base)]
	if f == nil {
		return "", time.Time{}, 0, false, nil
	}
	return f.Err, f.At, f.Attempts, true, nil
}

func (s *segmentStore) Failures(ctx context.Context) ([]catalog.Failure, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []catalog.Failure
	for _, f := range s.failures {
		out = append(out, *f)
	}
	return out, nil
}

func config(t *testing.T) policy.Config {
	t.Helper()
	cfg, err := policy.Parse("t.yaml", []byte(`
policies:
  - name: all
    streams: ["*"]
    warm: {max_age: 1h}
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRunMovesEverySegmentAndRespectsConcurrency(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := newStore(8, now.Add(-2*time.Hour))
	st.execDelay = 5 * time.Millisecond
	m, err := New(st, Options{Config: config(t), Concurrency: 3, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	dry, err := m.Run(context.Background(), "", true)
	if err != nil || len(dry.Results) != 8 || len(st.executed) != 0 {
		t.Fatalf("dry run: %d planned, %d executed, %v", len(dry.Results), len(st.executed), err)
	}
	for _, r := range dry.Results {
		if r.Action.Kind != policy.Upload || r.Action.Reason == "" {
			t.Fatalf("dry run planned %v", r.Action)
		}
	}
	// Two runs: upload everything, then drop every warm copy.
	for run := 0; run < 2; run++ {
		rep, err := m.Run(context.Background(), "", false)
		if err != nil || len(rep.Results) != 8 {
			t.Fatalf("run %d: %d results, %v", run, len(rep.Results), err)
		}
		for _, r := range rep.Results {
			if r.Err != "" {
				t.Fatalf("run %d: %v failed: %s", run, r.Action, r.Err)
			}
		}
	}
	for k, seg := range st.segs {
		if seg.Placements != tiers.Of(tiers.Cold) {
			t.Fatalf("%s ended %v, want cold only", k, seg.Placements)
		}
	}
	if got := st.maxSeen.Load(); got > 3 || got < 2 {
		t.Fatalf("at most %d actions ran at once, want 2..3 with concurrency 3", got)
	}
	if last, ok := m.LastRun(); !ok || len(last.Results) != 8 {
		t.Fatalf("LastRun = %+v, %v", last, ok)
	}
}

func TestFailingSegmentBacksOffAndDoesNotBlockOthers(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	st := newStore(4, now.Add(-2*time.Hour))
	st.fail[key("s", 200)] = errors.New("store down")
	st.now = clock
	m, err := New(st, Options{Config: config(t), MinBackoff: time.Minute, MaxBackoff: 4 * time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := m.Run(context.Background(), "", false)
	failed := 0
	for _, r := range rep.Results {
		if r.Err != "" {
			failed++
		}
	}
	if failed != 1 || len(st.executed) != 3 {
		t.Fatalf("first run: %d failed, %d executed; want 1 and 3", failed, len(st.executed))
	}
	f, ok, _ := m.LastFailure(context.Background(), "s", 200)
	if !ok || f.Err != "store down" || f.Attempts != 1 || !f.RetryAt.Equal(clock().Add(time.Minute)) {
		t.Fatalf("failure record %+v %v", f, ok)
	}
	// Within the backoff the segment is skipped; the others move on.
	rep, _ = m.Run(context.Background(), "", false)
	if rep.Skipped != 1 {
		t.Fatalf("second run skipped %d, want 1", rep.Skipped)
	}
	// After it, retried: fails again, the backoff doubles.
	advance(61 * time.Second)
	m.Run(context.Background(), "", false)
	if f, _, _ := m.LastFailure(context.Background(), "s", 200); f.Attempts != 2 || !f.RetryAt.Equal(clock().Add(2*time.Minute)) {
		t.Fatalf("after the second failure: %+v", f)
	}
	// Fixed: the next attempt succeeds and the failure is forgotten.
	st.mu.Lock()
	delete(st.fail, key("s", 200))
	st.mu.Unlock()
	advance(3 * time.Minute)
	m.Run(context.Background(), "", false)
	if _, ok, _ := m.LastFailure(context.Background(), "s", 200); ok {
		t.Fatal("failure kept after success")
	}
	if st.segs[key("s", 200)].Placements != tiers.Of(tiers.Warm, tiers.Cold) {
		t.Fatalf("segment 200 is %v after the retry", st.segs[key("s", 200)].Placements)
	}
}

func TestStoreOutageRetriesWithoutLongBackoff(t *testing.T) {
	// A move that failed because the cold store was down is retried within
	// StoreBackoff however often it failed: per-call deadlines and the
	// breaker make each attempt cheap while the store is down, and the
	// segment must move soon after it is back, not up to MaxBackoff later.
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := newStore(2, now.Add(-2*time.Hour))
	st.fail[key("s", 0)] = fmt.Errorf("engine: upload: %w", cold.ErrStoreUnavailable)
	st.fail[key("s", 100)] = errors.New("disk on fire")
	st.now = func() time.Time { return now }
	m, err := New(st, Options{Config: config(t), MinBackoff: time.Second, MaxBackoff: 10 * time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ {
		m.Run(context.Background(), "", false)
		now = now.Add(2 * time.Hour)
	}
	out, _, _ := m.LastFailure(context.Background(), "s", 0)
	other, _, _ := m.LastFailure(context.Background(), "s", 100)
	if out.Attempts != 12 || other.Attempts != 12 {
		t.Fatalf("attempts %d and %d, want 12 each", out.Attempts, other.Attempts)
	}
	if got := out.RetryAt.Sub(out.At); got != StoreBackoff {
		t.Errorf("store outage: retry after %v, want %v", got, StoreBackoff)
	}
	if got := other.RetryAt.Sub(other.At); got != 10*time.Minute {
		t.Errorf("other failure: retry after %v, want the max backoff 10m", got)
	}
}

func TestScheduleRunsAndBadSpecIsRejected(t *testing.T) {
	if _, err := New(newStore(1, time.Now()), Options{Config: config(t), Schedule: "every minute"}); !errors.Is(err, ErrBadSchedule) {
		t.Fatalf("bad schedule: %v", err)
	}
	st := newStore(2, time.Now().Add(-2*time.Hour))
	m, err := New(st, Options{Config: config(t), Schedule: "@every 50ms"})
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st.mu.Lock()
		done := len(st.executed) >= 4 // two uploads, two warm drops
		st.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the schedule ran too little: %v", st.executed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Stop(ctx)
}

func TestRateLimitPacesUploads(t *testing.T) {
	st := newStore(3, time.Now().Add(-2*time.Hour))
	for _, s := range st.segs {
		s.Bytes = 50_000
	}
	m, err := New(st, Options{Config: config(t), BytesPerSecond: 100_000, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m.Run(context.Background(), "", false)
	// 150 kB at 100 kB/s with a 100 kB burst: at least 0.5 s.
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("3 uploads of 50 kB at 100 kB/s took %v", el)
	}
}

// stalledExecutor's actions hang until their context is cancelled, as an
// upload to a hung store would without deadlines.
type stalledExecutor struct {
	*segmentStore
	entered chan struct{}
}

func (s *stalledExecutor) Execute(ctx context.Context, a policy.Action) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestStopCancelsOnDemandRun: Stop ends an on-demand run too (an operator's
// tierctl migrate), whose caller's context would not be cancelled by a
// shutdown: its stalled actions return, and the run with them.
func TestStopCancelsOnDemandRun(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := &stalledExecutor{segmentStore: newStore(3, now.Add(-2*time.Hour)), entered: make(chan struct{}, 1)}
	m, err := New(st, Options{Config: config(t), Concurrency: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := m.Run(context.Background(), "", false)
		done <- result{rep, err}
	}()
	select {
	case <-st.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the run never started an action")
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	m.Stop(stopCtx)
	select {
	case r := <-done:
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("the on-demand run ended %v after Stop", took)
		}
		failed := 0
		for _, res := range r.rep.Results {
			if strings.Contains(res.Err, "canceled") {
				failed++
			}
		}
		if r.err == nil && failed == 0 {
			t.Errorf("the run stopped without a cancelled action: %+v", r.rep)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not end the on-demand run")
	}
}
