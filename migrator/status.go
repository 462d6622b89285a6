package migrator

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// Status is the migrator at a glance, for tierctl status.
type Status struct {
	Schedule string    // the cron spec; "" = on demand only
	NextRun  time.Time // the next scheduled run; zero without a schedule
	Running  bool      // a run is in progress
	// LastRun is the latest run that got as far as executing its plan.
	LastRun *Report
	// LastError is why the latest run failed before executing anything
	// (its plan input could not be read), with when; empty once a later
	// run gets through.
	LastError   string
	LastErrorAt time.Time
	// Failures are the segments whose latest action failed, newest first.
	Failures []SegmentFailure
}

// SegmentFailure is one failing segment.
type SegmentFailure struct {
	Stream string
	Base   uint64
	Failure
}

// Status reports the schedule, the last run and every failing segment, as
// the executor records failures.
func (m *Migrator) Status(ctx context.Context) Status {
	st := Status{Schedule: m.opts.Schedule, Running: m.running.Load()}
	if m.cron != nil {
		if es := m.cron.Entries(); len(es) > 0 {
			st.NextRun = es[0].Next
		}
	}
	fs, err := m.exec.Failures(ctx)
	if err != nil {
		m.opts.Logger.Warn("migrator status: read failure records", "err", err)
	}
	for _, f := range fs {
		st.Failures = append(st.Failures, SegmentFailure{Stream: f.Stream, Base: f.Base, Failure: m.failure(f)})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.last != nil {
		last := *m.mu.last
		st.LastRun = &last
	}
	st.LastError, st.LastErrorAt = m.mu.lastErr, m.mu.lastErrAt
	slices.SortFunc(st.Failures, func(a, b SegmentFailure) int {
		return cmp.Or(b.At.Compare(a.At), cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Base, b.Base))
	})
	return st
}
