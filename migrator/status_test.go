package migrator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/policy"
)

// failingInput is an Executor whose plan input fails while err is set.
type failingInput struct {
	*segmentStore
	mu  sync.Mutex
	err error
}

func (f *failingInput) PlanInput(ctx context.Context, stream string) ([]policy.Segment, error) {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.segmentStore.PlanInput(ctx, stream)
}

func TestStatusReportsScheduleRunsAndFailures(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := &failingInput{segmentStore: newStore(4, now.Add(-2*time.Hour))}
	st.fail[key("s", 100)] = errors.New("store down")
	st.now = func() time.Time { return now }
	m, err := New(st, Options{Config: config(t), Schedule: "@every 1h", MinBackoff: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Status(context.Background()); s.Schedule != "@every 1h" || s.LastRun != nil || len(s.Failures) != 0 || s.Running || s.LastError != "" {
		t.Fatalf("status before any run: %+v", s)
	}
	m.Start()
	defer m.Stop(context.Background())
	if s := m.Status(context.Background()); s.NextRun.IsZero() || time.Until(s.NextRun) > time.Hour {
		t.Fatalf("next run %v, want within the hour", s.NextRun)
	}

	// A run that executes: its report, and the failing segment.
	var seen []Progress
	rep, err := m.RunProgress(context.Background(), "", false, func(p Progress) { seen = append(seen, p) })
	if err != nil {
		t.Fatal(err)
	}
	s := m.Status(context.Background())
	if s.LastRun == nil || len(s.LastRun.Results) != len(rep.Results) || len(s.Failures) != 1 {
		t.Fatalf("status after a run: %+v", s)
	}
	if f := s.Failures[0]; f.Stream != "s" || f.Base != 100 || f.Err != "store down" || f.Attempts != 1 || f.Action.Kind != policy.Upload {
		t.Fatalf("failure %+v", f)
	}
	// Progress: the plan first (nothing done), then one step per action,
	// ending complete, bytes summed.
	if len(seen) != 5 || seen[0] != (Progress{Total: 4, TotalBytes: 4000}) || seen[4] != (Progress{Done: 4, Total: 4, Bytes: 4000, TotalBytes: 4000}) {
		t.Fatalf("progress %+v", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Done != seen[i-1].Done+1 {
			t.Fatalf("progress %+v does not count each action once", seen)
		}
	}

	// A run that cannot plan: its error, until a run gets through.
	st.mu.Lock()
	st.err = errors.New("catalog unreadable")
	st.mu.Unlock()
	if _, err := m.Run(context.Background(), "", false); err == nil {
		t.Fatal("a run without plan input succeeded")
	}
	if s := m.Status(context.Background()); s.LastError == "" || !s.LastErrorAt.Equal(now) || s.LastRun == nil {
		t.Fatalf("status after a failed run: %+v", s)
	}
	st.mu.Lock()
	st.err = nil
	st.mu.Unlock()
	if _, err := m.Run(context.Background(), "", false); err != nil {
		t.Fatal(err)
	}
	if s := m.Status(context.Background()); s.LastError != "" {
		t.Fatalf("run error kept after a good run: %q", s.LastError)
	}
}

// TestFailuresHaveOneOwner: status and explain show the executor's record
// of a failure, also one this migrator never saw (made before a restart,
// or by an offload on demand), and forget it when the executor does,
// retry schedule included.
func TestFailuresHaveOneOwner(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := newStore(2, now.Add(-2*time.Hour))
	st.failures[key("s", 100)] = &catalog.Failure{Stream: "s", Base: 100, Err: "drop-warm: disk on fire", At: now.Add(-time.Minute), Attempts: 3}
	m, err := New(st, Options{Config: config(t), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := m.Status(ctx)
	if len(s.Failures) != 1 {
		t.Fatalf("status lists %d failures, want the executor's one", len(s.Failures))
	}
	if f := s.Failures[0]; f.Base != 100 || f.Action.Kind != policy.DropWarm || f.Err != "disk on fire" || f.Attempts != 3 || !f.RetryAt.IsZero() {
		t.Fatalf("status failure %+v", f)
	}
	ex, err := m.Explain(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if f := ex.Segments[1].Failure; f == nil || f.Err != "drop-warm: disk on fire" || f.Attempts != 3 {
		t.Fatalf("explain failure %+v", f)
	}
	// A run fails it again (the store's Execute fails) and schedules the
	// retry; the executor counts the attempt.
	st.fail[key("s", 100)] = errors.New("disk on fire")
	st.now = func() time.Time { return now }
	m.Run(ctx, "", false)
	if f, ok, _ := m.LastFailure(ctx, "s", 100); !ok || f.Attempts != 4 || f.RetryAt.IsZero() {
		t.Fatalf("after a failed retry: %+v %v", f, ok)
	}
	// Finished elsewhere: the record goes, and with it status's entry and
	// the migrator's retry time.
	st.mu.Lock()
	delete(st.failures, key("s", 100))
	delete(st.fail, key("s", 100))
	st.mu.Unlock()
	if s := m.Status(ctx); len(s.Failures) != 0 {
		t.Fatalf("status after the record went: %+v", s.Failures)
	}
	m.Run(ctx, "", false)
	m.mu.Lock()
	n := len(m.mu.retry)
	m.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d retry entries kept after the records went", n)
	}
}
