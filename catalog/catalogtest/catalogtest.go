// Package catalogtest is the conformance suite of the catalog contract: the
// interfaces catalog.Reads, catalog.Appends, catalog.Moves and their union
// catalog.Store, whose doc comments (catalog/iface.go) it checks sentence by
// sentence. It is written against the interfaces only, so the same suite
// runs against the bbolt catalog today (catalog/conformance_test.go) and
// against any second implementation (a shared PostgreSQL catalog) before
// tierd relies on it:
//
//	func TestConformance(t *testing.T) {
//		catalogtest.Run(t, catalogtest.Factory{Open: ..., Reopen: ...})
//	}
//
// The suite is what the move protocol stakes its "nothing lost, nothing
// doubled" on: a Store that loses an intent, commits a move partially or
// lists segments out of order fails it (broken_test.go shows that it does).
package catalogtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// Factory makes the Stores the suite runs against.
type Factory struct {
	// Open returns a new, empty Store for test t, one nothing else uses.
	// The suite closes it (once) before t ends.
	Open func(t *testing.T) catalog.Store
	// Reopen closes s, a Store Open (or Reopen) returned, and opens the
	// same catalog again, as a restart of tierd does: every change
	// committed before the Close must be found. Required: that intents
	// survive a restart is the contract's reason to exist.
	Reopen func(t *testing.T, s catalog.Store) catalog.Store
}

// Run runs the whole suite, each part as a subtest of t named after what it
// checks (Streams, Locate, CommitMove, ...).
func Run(t *testing.T, f Factory) {
	if f.Open == nil || f.Reopen == nil {
		t.Fatal("catalogtest: Factory needs both Open and Reopen")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, &env{t: t, f: f})
		})
	}
}

// tests are the suite's parts, in the order Run runs them.
var tests = []struct {
	name string
	fn   func(t *testing.T, e *env)
}{
	// reads.go
	{"Streams", testStreams},
	{"SegmentRoundTrip", testSegmentRoundTrip},
	{"SegmentsInOffsetOrder", testSegmentsInOffsetOrder},
	{"PutSegmentRefusals", testPutSegmentRefusals},
	{"HotIsNeverStored", testHotIsNeverStored},
	{"Locate", testLocate},
	{"Retained", testRetained},
	{"Coverage", testCoverage},
	// moves.go
	{"Intents", testIntents},
	{"ClearIntent", testClearIntent},
	{"UpdateSegment", testUpdateSegment},
	{"CommitMove", testCommitMove},
	{"Tombstone", testTombstone},
	{"CommitDelete", testCommitDelete},
	{"Failures", testFailures},
	// lifecycle.go
	{"SurvivesReopen", testSurvivesReopen},
	{"CanceledContext", testCanceledContext},
	{"Closed", testClosed},
	{"ConcurrentReadersWithWriter", testConcurrentReadersWithWriter},
}

// env opens Stores for one test and closes them when it ends.
type env struct {
	t *testing.T
	f Factory
}

// handle is a Store the suite got from the factory; Close closes it once,
// so that a test closing it itself and the cleanup do not both reach it.
type handle struct {
	catalog.Store
	once sync.Once
	err  error
}

func (h *handle) Close() error {
	h.once.Do(func() { h.err = h.Store.Close() })
	return h.err
}

func (e *env) wrap(s catalog.Store) *handle {
	if s == nil {
		e.t.Fatal("catalogtest: the factory returned a nil Store")
	}
	h := &handle{Store: s}
	e.t.Cleanup(func() { h.Close() })
	return h
}

// open returns a new, empty Store.
func (e *env) open() *handle {
	e.t.Helper()
	return e.wrap(e.f.Open(e.t))
}

// reopen closes h and returns the same catalog opened again.
func (e *env) reopen(h *handle) *handle {
	e.t.Helper()
	h.once.Do(func() {}) // the factory closes it
	return e.wrap(e.f.Reopen(e.t, h.Store))
}

// t0 is when the suite's segments are sealed. Times are whole milliseconds
// so that a store keeping microseconds (PostgreSQL) returns them exactly.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

// tombAt is when the suite tombstones segments: after every seal.
var tombAt = t0.Add(24 * time.Hour)

// seg returns a valid warm segment [base, last] of stream.
func seg(stream string, base, last uint64) tiers.SegmentMeta {
	return tiers.SegmentMeta{
		Stream: stream, Base: base, Last: last, Count: last - base + 1,
		Bytes: int64(last-base+1) * 100, MinTS: int64(base >> 1), MaxTS: int64(last>>1) + 1,
		SealedAt:   t0.Add(time.Duration(base%1000) * time.Millisecond),
		Digest:     tiers.Digest{byte(base), byte(base >> 8), byte(base >> 16), byte(last)},
		Placements: tiers.Of(tiers.Warm),
	}
}

// put registers every segment or fails the test.
func put(t *testing.T, s catalog.Store, ms ...tiers.SegmentMeta) {
	t.Helper()
	for _, m := range ms {
		if err := s.PutSegment(context.Background(), m); err != nil {
			t.Fatalf("PutSegment(%s [%d, %d]): %v", m.Stream, m.Base, m.Last, err)
		}
	}
}

// intent records an intent or fails the test.
func intent(t *testing.T, s catalog.Store, in catalog.Intent) {
	t.Helper()
	if err := s.PutIntent(context.Background(), in); err != nil {
		t.Fatalf("PutIntent(%+v): %v", in, err)
	}
}

// justified approves every segment a Tombstone asks about.
func justified(*tiers.SegmentMeta) error { return nil }

// equalMeta reports whether two segments are the same, times compared as
// instants.
func equalMeta(a, b tiers.SegmentMeta) bool {
	if !a.SealedAt.Equal(b.SealedAt) || !a.Tombstoned.Equal(b.Tombstoned) || a.Tombstoned.IsZero() != b.Tombstoned.IsZero() {
		return false
	}
	a.SealedAt, a.Tombstoned = b.SealedAt, b.Tombstoned
	return a == b
}

// sameMeta fails the test unless got is want.
func sameMeta(t *testing.T, what string, got, want tiers.SegmentMeta) {
	t.Helper()
	if !equalMeta(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// segment reads one segment or fails the test.
func segment(t *testing.T, s catalog.Store, stream string, base uint64) tiers.SegmentMeta {
	t.Helper()
	m, err := s.Segment(context.Background(), stream, base)
	if err != nil {
		t.Fatalf("Segment(%s, %d): %v", stream, base, err)
	}
	return m
}

// segments lists a stream's segments or fails the test.
func segments(t *testing.T, s catalog.Store, stream string) []tiers.SegmentMeta {
	t.Helper()
	ms, err := s.Segments(context.Background(), stream)
	if err != nil {
		t.Fatalf("Segments(%s): %v", stream, err)
	}
	return ms
}

// stream returns one stream's info or fails the test.
func stream(t *testing.T, s catalog.Store, name string) catalog.StreamInfo {
	t.Helper()
	infos, err := s.Streams(context.Background())
	if err != nil {
		t.Fatalf("Streams: %v", err)
	}
	for _, in := range infos {
		if in.Name == name {
			return in
		}
	}
	t.Fatalf("Streams has no %q: %+v", name, infos)
	return catalog.StreamInfo{}
}

// hasIntent reports whether (stream, base) has an intent, asking both
// Intent and Intents, which must agree.
func hasIntent(t *testing.T, s catalog.Store, stream string, base uint64) bool {
	t.Helper()
	ctx := context.Background()
	_, ok, err := s.Intent(ctx, stream, base)
	if err != nil {
		t.Fatalf("Intent(%s, %d): %v", stream, base, err)
	}
	all, err := s.Intents(ctx)
	if err != nil {
		t.Fatalf("Intents: %v", err)
	}
	listed := false
	for _, in := range all {
		listed = listed || in.Stream == stream && in.Base == base
	}
	if ok != listed {
		t.Fatalf("Intent(%s, %d) says %v, Intents says %v", stream, base, ok, listed)
	}
	return ok
}

// hasFailure reports whether (stream, base) has a last failure, asking
// both LastError and Failures, which must agree.
func hasFailure(t *testing.T, s catalog.Store, stream string, base uint64) bool {
	t.Helper()
	ctx := context.Background()
	_, ok, err := s.LastError(ctx, stream, base)
	if err != nil {
		t.Fatalf("LastError(%s, %d): %v", stream, base, err)
	}
	all, err := s.Failures(ctx)
	if err != nil {
		t.Fatalf("Failures: %v", err)
	}
	listed := false
	for _, f := range all {
		listed = listed || f.Stream == stream && f.Base == base
	}
	if ok != listed {
		t.Fatalf("LastError(%s, %d) says %v, Failures says %v", stream, base, ok, listed)
	}
	return ok
}

// wantErr fails the test unless err wraps want (or is nil when want is).
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if (want == nil) != (err == nil) || !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

// bases returns the bases of ms, in their order.
func bases(ms []tiers.SegmentMeta) []uint64 {
	out := []uint64{}
	for _, m := range ms {
		out = append(out, m.Base)
	}
	return out
}
