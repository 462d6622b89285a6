package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// sameIntent fails the test unless got is want, Started compared as an
// instant.
func sameIntent(t *testing.T, what string, got, want catalog.Intent) {
	t.Helper()
	if !got.Started.Equal(want.Started) {
		t.Fatalf("%s: Started %v, want %v", what, got.Started, want.Started)
	}
	got.Started = want.Started
	if got != want {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// getIntent returns (stream, base)'s intent or fails the test.
func getIntent(t *testing.T, s catalog.Store, stream string, base uint64) catalog.Intent {
	t.Helper()
	in, ok, err := s.Intent(context.Background(), stream, base)
	if err != nil || !ok {
		t.Fatalf("Intent(%s, %d): ok %v, %v; want an intent", stream, base, ok, err)
	}
	return in
}

// testIntents: intents are recorded, read back one at a time and all
// together in (stream, base) order; a retry of the same kind keeps the
// history, another kind conflicts, and refusals change nothing.
func testIntents(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	all, err := s.Intents(ctx)
	if err != nil || all == nil || len(all) != 0 {
		t.Fatalf("Intents of an empty catalog = %#v, %v; want an empty slice", all, err)
	}
	put(t, s, seg("b", 0, 9), seg("a", 0, 9), seg("a", 10, 99), seg("a", 100, 1000), seg("a", 1001, 1001))
	before := time.Now().Add(-time.Minute)
	ins := []catalog.Intent{
		{Stream: "b", Base: 0, Kind: catalog.IntentDeleteCold, Key: "cold/b/0", Started: t0},
		{Stream: "a", Base: 100, Kind: catalog.IntentUpload, Key: "cold/a/100", Started: t0.Add(time.Second), Attempts: 2, LastError: "earlier"},
		{Stream: "a", Base: 10, Kind: catalog.IntentDropWarm, Key: "warm/a/10"},
		{Stream: "a", Base: 1001, Kind: catalog.IntentDeleteWarm, Key: "warm/a/1001", Started: t0},
		{Stream: "a", Base: 0, Kind: catalog.IntentUpload, Key: "cold/a/0", Started: t0},
	}
	for _, in := range ins {
		intent(t, s, in)
	}
	stamped := getIntent(t, s, "a", 10)
	if stamped.Started.Before(before) || stamped.Started.After(time.Now().Add(time.Minute)) {
		t.Fatalf("PutIntent with a zero Started stamped %v, want about now", stamped.Started)
	}
	ins[2].Started = stamped.Started
	sameIntent(t, "explicit Started and history", getIntent(t, s, "a", 100), ins[1])
	want := []catalog.Intent{ins[4], ins[2], ins[1], ins[3], ins[0]}
	checkAll := func(what string) {
		t.Helper()
		all, err := s.Intents(ctx)
		if err != nil {
			t.Fatalf("%s: Intents: %v", what, err)
		}
		if len(all) != len(want) {
			t.Fatalf("%s: Intents lists %d, want %d: %+v", what, len(all), len(want), all)
		}
		for i := range want {
			sameIntent(t, fmt.Sprintf("%s: Intents[%d] (ordered by stream and base)", what, i), all[i], want[i])
		}
	}
	checkAll("after PutIntent")

	// A retry of the same kind moves the key and keeps the history.
	intent(t, s, catalog.Intent{Stream: "a", Base: 100, Kind: catalog.IntentUpload, Key: "cold/a/100.v2", Started: t0.Add(time.Hour)})
	want[2].Key = "cold/a/100.v2"
	sameIntent(t, "a retry", getIntent(t, s, "a", 100), want[2])

	refusals := []struct {
		name string
		in   catalog.Intent
		err  error
	}{
		{"another kind", catalog.Intent{Stream: "a", Base: 100, Kind: catalog.IntentDropWarm, Key: "x"}, catalog.ErrIntentConflict},
		{"missing segment", catalog.Intent{Stream: "a", Base: 5, Kind: catalog.IntentUpload}, tiers.ErrSegmentNotFound},
		{"unknown stream", catalog.Intent{Stream: "c", Base: 0, Kind: catalog.IntentUpload}, tiers.ErrSegmentNotFound},
		{"empty kind", catalog.Intent{Stream: "a", Base: 100, Key: "y"}, catalog.ErrInvalidIntent},
		{"oversized kind", catalog.Intent{Stream: "a", Base: 100, Kind: strings.Repeat("k", 65)}, catalog.ErrInvalidIntent},
		{"oversized key", catalog.Intent{Stream: "a", Base: 100, Kind: catalog.IntentUpload, Key: strings.Repeat("k", 4097)}, catalog.ErrInvalidIntent},
	}
	for _, rc := range refusals {
		wantErr(t, "PutIntent, "+rc.name, s.PutIntent(ctx, rc.in), rc.err)
		checkAll("after a refused PutIntent (" + rc.name + ")")
	}
	if _, ok, err := s.Intent(ctx, "a", 5); ok || err != nil {
		t.Fatalf("Intent of a missing segment: ok %v, %v; want none, no error", ok, err)
	}
	if _, ok, err := s.Intent(ctx, "zzz", 0); ok || err != nil {
		t.Fatalf("Intent of an unknown stream: ok %v, %v; want none, no error", ok, err)
	}
}

// testClearIntent: clearing forgets the intent and only it; clearing none
// is no error.
func testClearIntent(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	put(t, s, seg("s", 0, 9), seg("s", 10, 19))
	intent(t, s, catalog.Intent{Stream: "s", Base: 0, Kind: catalog.IntentUpload, Key: "k0"})
	intent(t, s, catalog.Intent{Stream: "s", Base: 10, Kind: catalog.IntentUpload, Key: "k10"})
	if err := s.RecordFailure(ctx, "s", 0, "boom"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.ClearIntent(ctx, "s", 0); err != nil {
			t.Fatalf("ClearIntent %d: %v", i+1, err)
		}
	}
	if hasIntent(t, s, "s", 0) {
		t.Fatal("the intent survived ClearIntent")
	}
	if !hasIntent(t, s, "s", 10) {
		t.Fatal("ClearIntent of s/0 cleared s/10's intent")
	}
	if f, ok, err := s.LastError(ctx, "s", 0); err != nil || !ok || f.Err != "boom" {
		t.Fatalf("ClearIntent (a rollback, no success) lost the last failure: %+v %v %v", f, ok, err)
	}
	if err := s.ClearIntent(ctx, "nostream", 3); err != nil {
		t.Fatalf("ClearIntent on an unknown stream: %v", err)
	}
	sameMeta(t, "the segment after ClearIntent", segment(t, s, "s", 0), seg("s", 0, 9))
}

// testUpdateSegment: placements and cold bytes change in one call; any
// other change, and an error from fn, are refused and change nothing.
func testUpdateSegment(t *testing.T, e *env) {
	ctx := context.Background()
	errFn := errors.New("fn refused")
	s := e.open()
	want := seg("s", 0, 9)
	put(t, s, want)
	steps := []struct {
		name string
		fn   func(*tiers.SegmentMeta) error
		err  error
		want func(m *tiers.SegmentMeta) // the change to the stored segment
	}{
		{"upload", func(m *tiers.SegmentMeta) error {
			m.Placements = m.Placements.With(tiers.Cold)
			m.ColdBytes = 777
			return nil
		}, nil, func(m *tiers.SegmentMeta) { m.Placements, m.ColdBytes = tiers.Of(tiers.Warm, tiers.Cold), 777 }},
		{"fn error", func(m *tiers.SegmentMeta) error { m.Placements = tiers.Of(tiers.Cold); return errFn }, errFn, nil},
		{"no placement", func(m *tiers.SegmentMeta) error { m.Placements = 0; return nil }, catalog.ErrInvalidSegment, nil},
		{"hot only", func(m *tiers.SegmentMeta) error { m.Placements = tiers.Of(tiers.Hot); return nil }, catalog.ErrInvalidSegment, nil},
		{"change last", func(m *tiers.SegmentMeta) error { m.Last++; m.Count++; return nil }, catalog.ErrInvalidSegment, nil},
		{"change digest", func(m *tiers.SegmentMeta) error { m.Digest[0]++; return nil }, catalog.ErrInvalidSegment, nil},
		{"change bytes", func(m *tiers.SegmentMeta) error { m.Bytes++; return nil }, catalog.ErrInvalidSegment, nil},
		{"tombstone (only Tombstone may)", func(m *tiers.SegmentMeta) error { m.Tombstoned = tombAt; return nil }, catalog.ErrInvalidSegment, nil},
		{"cold bytes without cold", func(m *tiers.SegmentMeta) error { m.Placements = tiers.Of(tiers.Warm); return nil }, catalog.ErrInvalidSegment, nil},
		{"drop warm", func(m *tiers.SegmentMeta) error { m.Placements = tiers.Of(tiers.Cold); return nil },
			nil, func(m *tiers.SegmentMeta) { m.Placements = tiers.Of(tiers.Cold) }},
		{"no change", func(*tiers.SegmentMeta) error { return nil }, nil, func(*tiers.SegmentMeta) {}},
	}
	for _, st := range steps {
		got, err := s.UpdateSegment(ctx, "s", 0, st.fn)
		wantErr(t, "UpdateSegment, "+st.name, err, st.err)
		if st.want != nil {
			st.want(&want)
			sameMeta(t, "UpdateSegment's answer, "+st.name, got, want)
		}
		sameMeta(t, "the stored segment after "+st.name, segment(t, s, "s", 0), want)
	}
	_, err := s.UpdateSegment(ctx, "s", 10, func(*tiers.SegmentMeta) error { return nil })
	wantErr(t, "UpdateSegment of a missing segment", err, tiers.ErrSegmentNotFound)
	if in := stream(t, s, "s"); in.Segments != 1 || in.Records != 10 || in.Bytes != want.Bytes {
		t.Fatalf("stream after updates = %+v", in)
	}
}

// testCommitMove: the new placement, the cleared intent and the forgotten
// failure happen together or not at all.
func testCommitMove(t *testing.T, e *env) {
	ctx := context.Background()
	errFn := errors.New("fn refused")
	upload := func(m *tiers.SegmentMeta) error {
		m.Placements = m.Placements.With(tiers.Cold)
		m.ColdBytes = 55
		return nil
	}
	cases := []struct {
		name      string
		intent    bool
		fn        func(*tiers.SegmentMeta) error
		err       error
		committed bool
	}{
		{"commit", true, upload, nil, true},
		{"fn fails", true, func(m *tiers.SegmentMeta) error { upload(m); return errFn }, errFn, false},
		{"invalid result", true, func(m *tiers.SegmentMeta) error { m.Placements = 0; return nil }, catalog.ErrInvalidSegment, false},
		{"changes records", true, func(m *tiers.SegmentMeta) error { upload(m); m.Digest[3]++; return nil }, catalog.ErrInvalidSegment, false},
		{"no intent", false, upload, catalog.ErrNoIntent, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := e.open()
			orig, other := seg("s", 0, 9), seg("s", 10, 19)
			put(t, s, orig, other)
			in := catalog.Intent{Stream: "s", Base: 0, Kind: catalog.IntentUpload, Key: "cold/s/0", Started: t0}
			if tc.intent {
				intent(t, s, in)
			}
			// A move of another segment stays pending whatever happens here.
			intent(t, s, catalog.Intent{Stream: "s", Base: 10, Kind: catalog.IntentUpload, Key: "cold/s/10", Started: t0})
			if err := s.RecordFailure(ctx, "s", 0, "earlier failure"); err != nil {
				t.Fatal(err)
			}
			in.Attempts, in.LastError = 1, "earlier failure"
			got, err := s.CommitMove(ctx, "s", 0, tc.fn)
			wantErr(t, "CommitMove", err, tc.err)
			want := orig
			if tc.committed {
				want.Placements, want.ColdBytes = tiers.Of(tiers.Warm, tiers.Cold), 55
				sameMeta(t, "CommitMove's answer", got, want)
			}
			sameMeta(t, "the stored segment", segment(t, s, "s", 0), want)
			has := hasIntent(t, s, "s", 0)
			switch {
			case tc.committed && has:
				t.Fatal("CommitMove changed the placement but left the intent: a partial commit")
			case tc.intent && !tc.committed && !has:
				t.Fatal("a refused CommitMove cleared the intent: a partial commit")
			case tc.intent && !tc.committed:
				sameIntent(t, "the intent after a refused CommitMove", getIntent(t, s, "s", 0), in)
			}
			if failed := hasFailure(t, s, "s", 0); failed == tc.committed {
				t.Fatalf("after CommitMove (committed %v) the last failure is there: %v", tc.committed, failed)
			}
			if !hasIntent(t, s, "s", 10) {
				t.Fatal("CommitMove of s/0 cleared s/10's intent")
			}
			sameMeta(t, "the other segment", segment(t, s, "s", 10), other)
		})
	}
	t.Run("missing segment", func(t *testing.T) {
		s := e.open()
		_, err := s.CommitMove(ctx, "s", 0, upload)
		if err == nil {
			t.Fatal("CommitMove of a missing segment succeeded")
		}
	})
}

// testTombstone: retention tombstones oldest first, asking justify about
// each segment lowest first; one refusal refuses the run and changes
// nothing, watermark included; a repeat changes nothing.
func testTombstone(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	put(t, s, seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 29), seg("s", 30, 39))
	snapshot := func() ([]tiers.SegmentMeta, catalog.StreamInfo) { return segments(t, s, "s"), stream(t, s, "s") }
	same := func(what string, segs []tiers.SegmentMeta, info catalog.StreamInfo) {
		t.Helper()
		now, nowInfo := snapshot()
		if !slices.EqualFunc(now, segs, equalMeta) {
			t.Fatalf("%s changed the segments:\n got  %+v\n want %+v", what, now, segs)
		}
		if !nowInfo.CreatedAt.Equal(info.CreatedAt) {
			t.Fatalf("%s changed CreatedAt", what)
		}
		nowInfo.CreatedAt = info.CreatedAt
		if nowInfo != info {
			t.Fatalf("%s changed the stream: %+v, was %+v", what, nowInfo, info)
		}
	}

	segs0, info0 := snapshot()
	var asked []uint64
	refuse := fmt.Errorf("policy keeps it: %w", catalog.ErrUnjustified)
	_, err := s.Tombstone(ctx, "s", 20, tombAt, func(m *tiers.SegmentMeta) error {
		asked = append(asked, m.Base)
		if m.Base == 10 {
			return refuse
		}
		return nil
	})
	if !errors.Is(err, catalog.ErrUnjustified) {
		t.Fatalf("Tombstone with a refusal: %v, want it wrapping the refusal", err)
	}
	if len(asked) < 2 || !slices.Equal(asked[:2], []uint64{0, 10}) || !slices.IsSorted(asked) {
		t.Fatalf("Tombstone asked justify about %v, want 0 then 10 (oldest first)", asked)
	}
	same("a refused Tombstone", segs0, info0)
	if from, _, _, _, err := s.Retained(ctx, "s"); err != nil || from != 0 {
		t.Fatalf("a refused Tombstone moved the watermark to %d (%v)", from, err)
	}

	asked = asked[:0]
	done, err := s.Tombstone(ctx, "s", 10, tombAt, func(m *tiers.SegmentMeta) error {
		asked = append(asked, m.Base)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []uint64{0, 10}) || !slices.Equal(bases(done), []uint64{0, 10}) {
		t.Fatalf("Tombstone(10) asked about %v and tombstoned %v, want 0 then 10", asked, bases(done))
	}
	for _, m := range done {
		if !m.Tombstoned.Equal(tombAt) {
			t.Fatalf("Tombstone answered %d tombstoned at %v, want %v", m.Base, m.Tombstoned, tombAt)
		}
	}
	got := segments(t, s, "s")
	for i, m := range got {
		if tomb := i < 2; tomb != m.Tombstoned.Equal(tombAt) || !tomb && !m.Tombstoned.IsZero() {
			t.Fatalf("segment %d tombstoned %v after Tombstone(10)", m.Base, m.Tombstoned)
		}
		want := seg("s", m.Base, m.Last)
		want.Tombstoned = m.Tombstoned
		sameMeta(t, "a segment after Tombstone", m, want)
	}
	if in := stream(t, s, "s"); in.RetainedFrom != 20 || in.NextOffset != 40 {
		t.Fatalf("stream after Tombstone(10) = %+v, want retained from 20", in)
	}

	// A repeat (recovery redoing it) changes nothing, not even the time.
	segs1, info1 := snapshot()
	again, err := s.Tombstone(ctx, "s", 10, tombAt.Add(time.Hour), func(m *tiers.SegmentMeta) error {
		return fmt.Errorf("asked about %d on a repeat", m.Base)
	})
	if err != nil || len(again) != 0 {
		t.Fatalf("a repeated Tombstone = %v, %v; want nothing tombstoned, no error", bases(again), err)
	}
	same("a repeated Tombstone", segs1, info1)

	// A tombstone before the seal is refused.
	_, err = s.Tombstone(ctx, "s", 20, t0.Add(-time.Hour), justified)
	wantErr(t, "Tombstone before the seal", err, catalog.ErrInvalidSegment)
	same("a Tombstone before the seal", segs1, info1)

	_, err = s.Tombstone(ctx, "s", 25, tombAt, justified)
	wantErr(t, "Tombstone of a missing segment", err, tiers.ErrSegmentNotFound)
	same("a Tombstone of a missing segment", segs1, info1)

	// Offsets missing above the watermark are damage, never a reason to
	// skip them.
	put(t, s, seg("g", 0, 9), seg("g", 20, 29))
	segsG := segments(t, s, "g")
	_, err = s.Tombstone(ctx, "g", 20, tombAt, justified)
	var ce *tiers.CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, catalog.ErrRetainedGap) {
		t.Fatalf("Tombstone across a gap: %v, want a *tiers.CorruptionError wrapping ErrRetainedGap", err)
	}
	if now := segments(t, s, "g"); !slices.EqualFunc(now, segsG, equalMeta) || stream(t, s, "g").RetainedFrom != 0 {
		t.Fatalf("a Tombstone across a gap changed the stream: %+v", now)
	}
}

// testCommitDelete: only a tombstoned segment below the watermark is
// forgotten, together with its intent and failure; a repeat is harmless.
func testCommitDelete(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	put(t, s, seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 29))
	intent(t, s, catalog.Intent{Stream: "s", Base: 10, Kind: catalog.IntentDeleteWarm, Key: "warm/s/10"})
	err := s.CommitDelete(ctx, "s", 10)
	wantErr(t, "CommitDelete of a live segment", err, catalog.ErrNotTombstoned)
	sameMeta(t, "a live segment after a refused CommitDelete", segment(t, s, "s", 10), seg("s", 10, 19))
	if !hasIntent(t, s, "s", 10) {
		t.Fatal("a refused CommitDelete cleared the intent")
	}

	if _, err := s.Tombstone(ctx, "s", 10, tombAt, justified); err != nil {
		t.Fatal(err)
	}
	intent(t, s, catalog.Intent{Stream: "s", Base: 0, Kind: catalog.IntentDeleteWarm, Key: "warm/s/0"})
	if err := s.RecordFailure(ctx, "s", 10, "unlink: busy"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // recovery may repeat it
		if err := s.CommitDelete(ctx, "s", 10); err != nil {
			t.Fatalf("CommitDelete %d: %v", i+1, err)
		}
	}
	if _, err := s.Segment(ctx, "s", 10); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("Segment after CommitDelete: %v, want ErrSegmentNotFound", err)
	}
	if hasIntent(t, s, "s", 10) {
		t.Fatal("CommitDelete forgot the segment but left its intent: a partial commit")
	}
	if hasFailure(t, s, "s", 10) {
		t.Fatal("CommitDelete left the last failure")
	}
	if !hasIntent(t, s, "s", 0) {
		t.Fatal("CommitDelete of s/10 cleared s/0's intent")
	}
	if got := bases(segments(t, s, "s")); !slices.Equal(got, []uint64{0, 20}) {
		t.Fatalf("segments after CommitDelete = %v, want [0 20]", got)
	}
	if in := stream(t, s, "s"); in.Segments != 2 || in.Records != 20 || in.Bytes != 2000 || in.NextOffset != 30 || in.RetainedFrom != 20 {
		t.Fatalf("stream after CommitDelete = %+v, want 2 segments, 20 records, 2000 bytes, [20, 30)", in)
	}
	if err := s.CommitDelete(ctx, "s", 0); err != nil {
		t.Fatal(err)
	}
	if hasIntent(t, s, "s", 0) {
		t.Fatal("CommitDelete left s/0's intent")
	}
	if cv, err := s.Coverage(ctx, "s"); err != nil || len(cv.Gaps) != 0 || cv.First != 20 {
		t.Fatalf("Coverage after the deletions = %+v, %v; want no gap from 20", cv, err)
	}
}

// testFailures: failures are counted per segment since its last success,
// carry the intent's kind, count in the intent too, and are listed by
// (stream, base); refusals are marked; messages are cut to 4 KiB.
func testFailures(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	put(t, s, seg("b", 0, 9), seg("a", 0, 9), seg("a", 10, 19))
	all, err := s.Failures(ctx)
	if err != nil || all == nil || len(all) != 0 {
		t.Fatalf("Failures of an empty catalog = %#v, %v; want an empty slice", all, err)
	}
	intent(t, s, catalog.Intent{Stream: "a", Base: 10, Kind: catalog.IntentUpload, Key: "k"})
	before := time.Now().Add(-time.Minute)
	long := strings.Repeat("é", 4096) // 2 bytes a rune: the cut must not split one
	steps := []struct {
		stream   string
		base     uint64
		msg      string
		refusal  bool
		attempts int
		kind     string
	}{
		{"a", 10, "first", false, 1, catalog.IntentUpload},
		{"a", 10, "second", false, 2, catalog.IntentUpload},
		{"a", 10, long, false, 3, catalog.IntentUpload},
		{"b", 0, "no intent", false, 1, ""},
		{"a", 0, "not justified", true, 1, ""},
		{"a", 0, "still not", true, 2, ""},
	}
	for i, st := range steps {
		record := s.RecordFailure
		if st.refusal {
			record = s.RecordRefusal
		}
		if err := record(ctx, st.stream, st.base, st.msg); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		f, ok, err := s.LastError(ctx, st.stream, st.base)
		if err != nil || !ok {
			t.Fatalf("step %d: LastError: ok %v, %v", i, ok, err)
		}
		cut := len(st.msg) > 4096 && strings.HasPrefix(st.msg, f.Err) && len(f.Err) <= 4096 && len(f.Err) > 4096-utf8.UTFMax
		if !utf8.ValidString(f.Err) || f.Err != st.msg && !cut {
			t.Fatalf("step %d: stored message is %d bytes (valid UTF-8 %v), want the message cut to at most 4096 bytes on a rune boundary", i, len(f.Err), utf8.ValidString(f.Err))
		}
		if f.Stream != st.stream || f.Base != st.base || f.Attempts != st.attempts || f.Kind != st.kind || f.Refused != st.refusal || f.At.Before(before) {
			t.Fatalf("step %d: LastError = %s/%d %d attempts, kind %q, refused %v, at %v; want %s/%d %d, %q, %v, about now", i, f.Stream, f.Base, f.Attempts, f.Kind, f.Refused, f.At, st.stream, st.base, st.attempts, st.kind, st.refusal)
		}
		in, has, err := s.Intent(ctx, st.stream, st.base)
		if err != nil {
			t.Fatal(err)
		}
		if st.kind == "" && has {
			t.Fatalf("step %d: recording a failure created an intent: %+v", i, in)
		}
		if st.kind != "" && (!has || in.Attempts != st.attempts || in.LastError != f.Err) {
			t.Fatalf("step %d: the intent = %+v (ok %v), want %d attempts and the last message", i, in, has, st.attempts)
		}
	}
	// A failure needs no segment: a move may fail after its segment went.
	if err := s.RecordFailure(ctx, "gone", 7, "stat: no such file"); err != nil {
		t.Fatalf("RecordFailure of a segment the catalog does not hold: %v", err)
	}
	all, err = s.Failures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range all {
		keys = append(keys, fmt.Sprintf("%s/%d", f.Stream, f.Base))
	}
	if want := []string{"a/0", "a/10", "b/0", "gone/7"}; !slices.Equal(keys, want) {
		t.Fatalf("Failures lists %v, want %v (ordered by stream and base)", keys, want)
	}
	for i := range 2 {
		if err := s.ClearFailure(ctx, "a", 10); err != nil {
			t.Fatalf("ClearFailure %d: %v", i+1, err)
		}
	}
	if hasFailure(t, s, "a", 10) {
		t.Fatal("the failure survived ClearFailure")
	}
	if !hasIntent(t, s, "a", 10) {
		t.Fatal("ClearFailure cleared the intent")
	}
	if !hasFailure(t, s, "a", 0) || !hasFailure(t, s, "b", 0) {
		t.Fatal("ClearFailure of a/10 cleared another segment's failure")
	}
	// Counting starts again after a success.
	if err := s.RecordFailure(ctx, "a", 10, "again"); err != nil {
		t.Fatal(err)
	}
	if f, _, _ := s.LastError(ctx, "a", 10); f.Attempts != 1 {
		t.Fatalf("after ClearFailure the count is %d, want 1", f.Attempts)
	}
}
