package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// state is everything a Store answers, for comparing it before and after.
type state struct {
	streams  []catalog.StreamInfo
	segments map[string][]tiers.SegmentMeta
	intents  []catalog.Intent
	failures []catalog.Failure
}

// snapshot reads the whole state of s or fails the test.
func snapshot(t *testing.T, s catalog.Store) state {
	t.Helper()
	ctx := context.Background()
	var st state
	var err error
	if st.streams, err = s.Streams(ctx); err != nil {
		t.Fatalf("Streams: %v", err)
	}
	st.segments = map[string][]tiers.SegmentMeta{}
	for _, in := range st.streams {
		st.segments[in.Name] = segments(t, s, in.Name)
	}
	if st.intents, err = s.Intents(ctx); err != nil {
		t.Fatalf("Intents: %v", err)
	}
	if st.failures, err = s.Failures(ctx); err != nil {
		t.Fatalf("Failures: %v", err)
	}
	return st
}

// sameState fails the test unless a and b hold the same catalog.
func sameState(t *testing.T, what string, a, b state) {
	t.Helper()
	eqInfo := func(x, y catalog.StreamInfo) bool {
		ok := x.CreatedAt.Equal(y.CreatedAt)
		x.CreatedAt = y.CreatedAt
		return ok && x == y
	}
	eqIntent := func(x, y catalog.Intent) bool {
		ok := x.Started.Equal(y.Started)
		x.Started = y.Started
		return ok && x == y
	}
	eqFailure := func(x, y catalog.Failure) bool {
		ok := x.At.Equal(y.At)
		x.At = y.At
		return ok && x == y
	}
	if !slices.EqualFunc(a.streams, b.streams, eqInfo) {
		t.Fatalf("%s: streams\n %+v\nwere\n %+v", what, a.streams, b.streams)
	}
	for name, segs := range b.segments {
		if !slices.EqualFunc(a.segments[name], segs, equalMeta) {
			t.Fatalf("%s: segments of %s\n %+v\nwere\n %+v", what, name, a.segments[name], segs)
		}
	}
	if !slices.EqualFunc(a.intents, b.intents, eqIntent) {
		t.Fatalf("%s: intents\n %+v\nwere\n %+v", what, a.intents, b.intents)
	}
	if !slices.EqualFunc(a.failures, b.failures, eqFailure) {
		t.Fatalf("%s: failures\n %+v\nwere\n %+v", what, a.failures, b.failures)
	}
}

// populate fills s with two streams, a moved segment, a tombstone,
// pending intents of every kind and failures.
func populate(t *testing.T, s catalog.Store) {
	t.Helper()
	ctx := context.Background()
	put(t, s, seg("a", 0, 9), seg("a", 10, 19), seg("a", 20, 29), seg("b", 0, 4), seg("b", 5, 9))
	if _, err := s.UpdateSegment(ctx, "a", 10, func(m *tiers.SegmentMeta) error {
		m.Placements, m.ColdBytes = tiers.Of(tiers.Warm, tiers.Cold), 99
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tombstone(ctx, "a", 0, tombAt, justified); err != nil {
		t.Fatal(err)
	}
	intent(t, s, catalog.Intent{Stream: "a", Base: 0, Kind: catalog.IntentDeleteWarm, Key: "warm/a/0", Started: t0})
	intent(t, s, catalog.Intent{Stream: "a", Base: 10, Kind: catalog.IntentDropWarm, Key: "warm/a/10", Started: t0})
	intent(t, s, catalog.Intent{Stream: "a", Base: 20, Kind: catalog.IntentUpload, Key: "cold/a/20", Started: t0})
	intent(t, s, catalog.Intent{Stream: "b", Base: 5, Kind: catalog.IntentDeleteCold, Key: "cold/b/5", Started: t0})
	if err := s.RecordFailure(ctx, "a", 20, "put: connection refused"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordRefusal(ctx, "b", 0, "nothing justifies it"); err != nil {
		t.Fatal(err)
	}
}

// testSurvivesReopen: everything committed, intents above all, is found
// again after a Close and an open, and the moves can be finished then.
func testSurvivesReopen(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	populate(t, s)
	before := snapshot(t, s)
	if len(before.intents) != 4 {
		t.Fatalf("%d intents before the reopen, want 4", len(before.intents))
	}
	s = e.reopen(s)
	sameState(t, "after a reopen", snapshot(t, s), before)
	if from, next, first, ok, err := s.Retained(ctx, "a"); err != nil || from != 10 || next != 30 || !ok || first.Base != 10 {
		t.Fatalf("Retained after a reopen = %d %d %d %v %v", from, next, first.Base, ok, err)
	}
	// Recovery finishes what the crash interrupted.
	if _, err := s.CommitMove(ctx, "a", 20, func(m *tiers.SegmentMeta) error {
		m.Placements, m.ColdBytes = m.Placements.With(tiers.Cold), 7
		return nil
	}); err != nil {
		t.Fatalf("CommitMove of an intent recorded before the reopen: %v", err)
	}
	if err := s.CommitDelete(ctx, "a", 0); err != nil {
		t.Fatalf("CommitDelete after the reopen: %v", err)
	}
	s = e.reopen(s)
	if hasIntent(t, s, "a", 20) || hasIntent(t, s, "a", 0) || !hasIntent(t, s, "a", 10) || !hasIntent(t, s, "b", 5) {
		t.Fatal("after the commits and a second reopen the intents are not a/10 and b/5")
	}
	if m := segment(t, s, "a", 20); m.Placements != tiers.Of(tiers.Warm, tiers.Cold) || m.ColdBytes != 7 {
		t.Fatalf("the committed move did not survive a reopen: %+v", m)
	}
}

// calls are one of each of the Store's calls, for the tests that check
// every one of them.
func calls(s catalog.Store) map[string]func(ctx context.Context) error {
	noop := func(*tiers.SegmentMeta) error { return nil }
	cold := func(m *tiers.SegmentMeta) error {
		m.Placements, m.ColdBytes = m.Placements.With(tiers.Cold), 3
		return nil
	}
	return map[string]func(ctx context.Context) error{
		"Streams":  func(ctx context.Context) error { _, err := s.Streams(ctx); return err },
		"Segment":  func(ctx context.Context) error { _, err := s.Segment(ctx, "a", 20); return err },
		"Segments": func(ctx context.Context) error { _, err := s.Segments(ctx, "a"); return err },
		"Locate":   func(ctx context.Context) error { _, _, err := s.Locate(ctx, "a", 0, math.MaxUint64); return err },
		"Retained": func(ctx context.Context) error { _, _, _, _, err := s.Retained(ctx, "a"); return err },
		"Coverage": func(ctx context.Context) error { _, err := s.Coverage(ctx, "a"); return err },
		"PutSegment": func(ctx context.Context) error {
			return s.PutSegment(ctx, seg("c", 0, 9))
		},
		"PutIntent": func(ctx context.Context) error {
			return s.PutIntent(ctx, catalog.Intent{Stream: "b", Base: 0, Kind: catalog.IntentUpload})
		},
		"Intent":        func(ctx context.Context) error { _, _, err := s.Intent(ctx, "a", 20); return err },
		"Intents":       func(ctx context.Context) error { _, err := s.Intents(ctx); return err },
		"ClearIntent":   func(ctx context.Context) error { return s.ClearIntent(ctx, "a", 20) },
		"UpdateSegment": func(ctx context.Context) error { _, err := s.UpdateSegment(ctx, "b", 0, cold); return err },
		"CommitMove":    func(ctx context.Context) error { _, err := s.CommitMove(ctx, "a", 20, cold); return err },
		"Tombstone": func(ctx context.Context) error {
			_, err := s.Tombstone(ctx, "a", 10, tombAt, justified)
			return err
		},
		"CommitDelete":  func(ctx context.Context) error { return s.CommitDelete(ctx, "a", 0) },
		"RecordFailure": func(ctx context.Context) error { return s.RecordFailure(ctx, "a", 10, "x") },
		"RecordRefusal": func(ctx context.Context) error { return s.RecordRefusal(ctx, "a", 10, "x") },
		"ClearFailure":  func(ctx context.Context) error { return s.ClearFailure(ctx, "a", 20) },
		"LastError":     func(ctx context.Context) error { _, _, err := s.LastError(ctx, "a", 20); return err },
		"Failures":      func(ctx context.Context) error { _, err := s.Failures(ctx); return err },
		"UpdateNoop":    func(ctx context.Context) error { _, err := s.UpdateSegment(ctx, "a", 20, noop); return err },
	}
}

// testCanceledContext: a call with a done context fails with ctx's error
// and changes nothing.
func testCanceledContext(t *testing.T, e *env) {
	s := e.open()
	populate(t, s)
	before := snapshot(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, call := range calls(s) {
		if err := call(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", name, err)
		}
	}
	sameState(t, "after calls with a canceled context", snapshot(t, s), before)
	// The calls would have changed it with a live context (the test can fail).
	for _, name := range []string{"CommitMove", "PutSegment"} {
		if err := calls(s)[name](context.Background()); err != nil {
			t.Fatalf("%s with a live context: %v", name, err)
		}
	}
}

// testClosed: every call after Close wraps tiers.ErrClosed.
func testClosed(t *testing.T, e *env) {
	s := e.open()
	populate(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, call := range calls(s.Store) {
		if err := call(context.Background()); !errors.Is(err, tiers.ErrClosed) {
			t.Errorf("%s after Close: %v, want tiers.ErrClosed", name, err)
		}
	}
}

// testConcurrentReadersWithWriter: readers running beside a writer see
// each of its calls whole: the segments a dense prefix in offset order that
// never shrinks, and every listed intent on a segment that exists.
func testConcurrentReadersWithWriter(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	const n = 60
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := uint64(0); i < n; i++ {
			m := seg("s", i*10, i*10+9)
			if err := s.PutSegment(ctx, m); err != nil {
				errc <- err
				return
			}
			if i%3 != 0 {
				continue
			}
			if err := s.PutIntent(ctx, catalog.Intent{Stream: "s", Base: m.Base, Kind: catalog.IntentUpload, Key: fmt.Sprint(m.Base)}); err != nil {
				errc <- err
				return
			}
			if _, err := s.CommitMove(ctx, "s", m.Base, func(m *tiers.SegmentMeta) error {
				m.Placements, m.ColdBytes = m.Placements.With(tiers.Cold), 1
				return nil
			}); err != nil {
				errc <- err
				return
			}
		}
	}()
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				// Intents first: a segment cold before it is listed has
				// no intent left.
				ins, err := s.Intents(ctx)
				if err != nil {
					errc <- fmt.Errorf("Intents: %w", err)
					return
				}
				got, _, err := s.Locate(ctx, "s", 0, math.MaxUint64)
				if errors.Is(err, tiers.ErrStreamNotFound) {
					continue
				}
				if err != nil {
					errc <- fmt.Errorf("Locate: %w", err)
					return
				}
				for i, m := range got {
					if m.Base != uint64(i)*10 || m.Last != m.Base+9 {
						errc <- fmt.Errorf("a snapshot of %d segments has [%d, %d] at %d", len(got), m.Base, m.Last, i)
						return
					}
				}
				if len(got) < last {
					errc <- fmt.Errorf("the segments shrank from %d to %d", last, len(got))
					return
				}
				last = len(got)
				for _, in := range ins {
					if in.Base/10 >= uint64(len(got)) {
						errc <- fmt.Errorf("Intents listed %d before its segment existed", in.Base)
						return
					}
				}
				segs, err := s.Segments(ctx, "s")
				if err != nil || len(segs) < last {
					errc <- fmt.Errorf("Segments = %d segments, %v; Locate saw %d before", len(segs), err, last)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if in := stream(t, s, "s"); in.Segments != n || in.NextOffset != n*10 {
		t.Fatalf("stream after the writer = %+v", in)
	}
	ins, err := s.Intents(ctx)
	if err != nil || len(ins) != 0 {
		t.Fatalf("intents after every move committed = %+v, %v", ins, err)
	}
}
