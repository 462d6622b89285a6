package migrator

import (
	"context"
	"fmt"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/policy"
)

// SegmentExplanation is what explain says of one segment.
type SegmentExplanation struct {
	Segment policy.Segment
	// Age is now − SealedAt.
	Age time.Duration
	// Next is the action that will happen next and when (Due ≤ now: due
	// now, at the next run); nil when nothing ever will as things stand.
	Next *policy.Action
	// Failure is the last error of a move of the segment, if its latest
	// attempt failed.
	Failure *Failure
}

// Explanation is explain's answer for one stream.
type Explanation struct {
	Stream string
	Now    time.Time
	// Policy is the policy that applies to the stream.
	Policy   policy.Policy
	Segments []SegmentExplanation
}

// Explain says, for each durable segment of stream, where it is, which
// policy applies, what happens next and when, and its last error. An
// action a budget calls for now (which depends on the other streams'
// segments too) takes precedence over the segment's own age schedule.
func (m *Migrator) Explain(ctx context.Context, stream string) (Explanation, error) {
	now := m.opts.Now()
	ex := Explanation{Stream: stream, Now: now, Policy: m.opts.Config.PolicyFor(stream), Segments: []SegmentExplanation{}}
	segs, err := m.exec.PlanInput(ctx, stream)
	if err != nil {
		return ex, err
	}
	// Budgets need every stream's segments.
	all, err := m.exec.PlanInput(ctx, "")
	if err != nil {
		return ex, fmt.Errorf("migrator: explain: %w", err)
	}
	dueNow := map[uint64]policy.Action{}
	for _, a := range policy.Plan(now, all, m.opts.Config) {
		if a.Stream != stream {
			continue
		}
		if have, ok := dueNow[a.Base]; !ok || a.Kind < have.Kind {
			dueNow[a.Base] = a
		}
	}
	for _, s := range segs {
		se := SegmentExplanation{Segment: s, Age: now.Sub(s.SealedAt)}
		if a, ok := dueNow[s.Base]; ok {
			se.Next = &a
		} else if a, ok := policy.Next(now, s, m.opts.Config); ok {
			se.Next = &a
		}
		// The executor's record is the truth (it survives restarts and is
		// cleared by whatever finishes the move); the migrator adds the
		// action and when it retries. Explain shows the record's message
		// as it is.
		msg, at, attempts, ok, err := m.exec.LastFailure(ctx, s.Stream, s.Base)
		if err != nil {
			return ex, fmt.Errorf("migrator: explain: %w", err)
		}
		if ok {
			f := m.failure(catalog.Failure{Stream: s.Stream, Base: s.Base, Err: msg, At: at, Attempts: attempts})
			f.Err = msg
			se.Failure = &f
		}
		ex.Segments = append(ex.Segments, se)
	}
	return ex, nil
}
