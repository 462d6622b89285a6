package migrator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

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
