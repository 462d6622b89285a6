package catalogtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// testStreams: streams are listed by name with their totals, created by
// their first segment; an empty catalog lists none.
func testStreams(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	infos, err := s.Streams(ctx)
	if err != nil || infos == nil || len(infos) != 0 {
		t.Fatalf("Streams of an empty catalog = %#v, %v; want an empty slice", infos, err)
	}
	put(t, s, seg("b", 0, 9), seg("c", 5, 5), seg("a", 10, 19), seg("a", 0, 9), seg("B", 0, 0))
	infos, err = s.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range infos {
		names = append(names, in.Name)
	}
	if want := []string{"B", "a", "b", "c"}; !slices.Equal(names, want) {
		t.Fatalf("Streams are %v, want %v (ordered by name)", names, want)
	}
	a := infos[1]
	if a.Segments != 2 || a.Records != 20 || a.Bytes != 2000 || a.NextOffset != 20 || a.RetainedFrom != 0 || a.CreatedAt.IsZero() {
		t.Fatalf("stream a = %+v, want 2 segments, 20 records, 2000 bytes, next offset 20, CreatedAt set", a)
	}
	if c := infos[3]; c.NextOffset != 6 || c.Records != 1 {
		t.Fatalf("stream c = %+v, want next offset 6 and 1 record", c)
	}
}

// testSegmentRoundTrip: a segment reads back as put; putting the same
// (stream, base) again replaces it; missing ones wrap the sentinels.
func testSegmentRoundTrip(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	a := seg("s", 0, 9)
	a.Placements = tiers.Of(tiers.Warm, tiers.Cold)
	a.ColdBytes = 321
	put(t, s, a)
	sameMeta(t, "Segment after PutSegment", segment(t, s, "s", 0), a)

	b := seg("s", 0, 9)
	b.Digest = tiers.Digest{42}
	b.Bytes = 7
	put(t, s, b)
	sameMeta(t, "Segment after a replacing PutSegment", segment(t, s, "s", 0), b)
	if all := segments(t, s, "s"); len(all) != 1 {
		t.Fatalf("Segments after a replace = %v, want one segment", bases(all))
	}
	if in := stream(t, s, "s"); in.Segments != 1 || in.Records != 10 || in.Bytes != 7 || in.NextOffset != 10 {
		t.Fatalf("stream after a replace = %+v, want it counted once (1 segment, 10 records, 7 bytes)", in)
	}

	if _, err := s.Segment(ctx, "s", 5); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("Segment(s, 5), inside a segment but not its base: %v, want ErrSegmentNotFound", err)
	}
	if _, err := s.Segment(ctx, "nope", 0); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("Segment of an unknown stream: %v, want ErrSegmentNotFound", err)
	}
	for name, call := range map[string]func() error{
		"Segments": func() error { _, err := s.Segments(ctx, "nope"); return err },
		"Locate":   func() error { _, _, err := s.Locate(ctx, "nope", 0, 10); return err },
		"Retained": func() error { _, _, _, _, err := s.Retained(ctx, "nope"); return err },
		"Coverage": func() error { _, err := s.Coverage(ctx, "nope"); return err },
	} {
		if err := call(); !errors.Is(err, tiers.ErrStreamNotFound) {
			t.Errorf("%s of an unknown stream: %v, want ErrStreamNotFound", name, err)
		}
	}
}

// testSegmentsInOffsetOrder: Segments and Locate answer by base whatever
// the order of the puts, bases past one byte included (a store ordering
// keys as text would put 10 before 9).
func testSegmentsInOffsetOrder(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	want := []uint64{0, 9, 10, 100, 256, 1000, 65536, 70000, 1 << 32, 1 << 40}
	ms := map[uint64]tiers.SegmentMeta{}
	for i, b := range want {
		last := b
		if i+1 < len(want) {
			last = want[i+1] - 1
		}
		last = min(last, b+50)
		ms[b] = seg("s", b, last)
	}
	for _, i := range []int{5, 2, 9, 0, 7, 3, 8, 1, 6, 4} {
		put(t, s, ms[want[i]])
	}
	if got := bases(segments(t, s, "s")); !slices.Equal(got, want) {
		t.Fatalf("Segments bases %v, want %v (offset order)", got, want)
	}
	got, _, err := s.Locate(ctx, "s", 0, math.MaxUint64)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bases(got), want) {
		t.Fatalf("Locate bases %v, want %v (offset order)", bases(got), want)
	}
	for _, m := range got {
		sameMeta(t, "Locate", m, ms[m.Base])
	}
	if in := stream(t, s, "s"); in.NextOffset != 1<<40+1 || in.Segments != len(want) {
		t.Fatalf("stream = %+v, want next offset %d and %d segments", in, uint64(1<<40+1), len(want))
	}
}

// testPutSegmentRefusals: overlapping or invalid segments, or ones below
// the retention watermark, are refused with their sentinel and change
// nothing.
func testPutSegmentRefusals(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	put(t, s, seg("s", 10, 19), seg("s", 30, 39))
	changed := func(f func(*tiers.SegmentMeta)) tiers.SegmentMeta {
		m := seg("s", 50, 59)
		f(&m)
		return m
	}
	cases := []struct {
		name string
		m    tiers.SegmentMeta
		err  error
	}{
		{"overlaps the start", seg("s", 5, 10), catalog.ErrOverlap},
		{"overlaps the end", seg("s", 19, 25), catalog.ErrOverlap},
		{"inside", seg("s", 12, 15), catalog.ErrOverlap},
		{"covers", seg("s", 20, 45), catalog.ErrOverlap},
		{"same base, longer", seg("s", 10, 30), catalog.ErrOverlap},
		{"count not dense", changed(func(m *tiers.SegmentMeta) { m.Count++ }), catalog.ErrInvalidSegment},
		{"last before base", changed(func(m *tiers.SegmentMeta) { m.Last, m.Count = 49, 0 }), catalog.ErrInvalidSegment},
		{"hot only", changed(func(m *tiers.SegmentMeta) { m.Placements = tiers.Of(tiers.Hot) }), catalog.ErrInvalidSegment},
		{"no placement", changed(func(m *tiers.SegmentMeta) { m.Placements = 0 }), catalog.ErrInvalidSegment},
		{"not sealed", changed(func(m *tiers.SegmentMeta) { m.SealedAt = time.Time{} }), catalog.ErrInvalidSegment},
		{"cold bytes without cold", changed(func(m *tiers.SegmentMeta) { m.ColdBytes = 5 }), catalog.ErrInvalidSegment},
		{"timestamps reversed", changed(func(m *tiers.SegmentMeta) { m.MinTS, m.MaxTS = 10, 9 }), catalog.ErrInvalidSegment},
		{"bad stream name", seg("../x", 0, 9), tiers.ErrInvalidStreamName},
		{"new stream, invalid", func() tiers.SegmentMeta { m := seg("t", 0, 9); m.Placements = 0; return m }(), catalog.ErrInvalidSegment},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.PutSegment(ctx, tc.m)
			wantErr(t, fmt.Sprintf("PutSegment([%d, %d])", tc.m.Base, tc.m.Last), err, tc.err)
			if got := bases(segments(t, s, "s")); !slices.Equal(got, []uint64{10, 30}) {
				t.Fatalf("a refused PutSegment changed the segments to %v", got)
			}
			sameMeta(t, "segment 10 after a refusal", segment(t, s, "s", 10), seg("s", 10, 19))
			if in := stream(t, s, "s"); in.Segments != 2 || in.NextOffset != 40 || in.Records != 20 {
				t.Fatalf("a refused PutSegment changed the stream: %+v", in)
			}
		})
	}
	infos, err := s.Streams(ctx)
	if err != nil || len(infos) != 1 {
		t.Fatalf("Streams after refusals = %+v, %v; want only s (a refused put creates no stream)", infos, err)
	}
	// The gap [20, 30) may be filled exactly.
	put(t, s, seg("s", 20, 29))

	// Offsets below the watermark were deleted by retention: never again.
	put(t, s, seg("r", 0, 9), seg("r", 10, 19))
	if _, err := s.Tombstone(ctx, "r", 0, tombAt, justified); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitDelete(ctx, "r", 0); err != nil {
		t.Fatal(err)
	}
	err = s.PutSegment(ctx, seg("r", 0, 9))
	wantErr(t, "PutSegment below the retention watermark", err, catalog.ErrInvalidSegment)
	if got := bases(segments(t, s, "r")); !slices.Equal(got, []uint64{10}) {
		t.Fatalf("a refused PutSegment below the watermark left segments %v", got)
	}
}

// testHotIsNeverStored: tiers.Hot is dropped by every write.
func testHotIsNeverStored(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	m := seg("s", 0, 9)
	m.Placements = tiers.Of(tiers.Hot, tiers.Warm)
	put(t, s, m)
	if got := segment(t, s, "s", 0); got.Placements != tiers.Of(tiers.Warm) {
		t.Fatalf("PutSegment stored %v, want warm (hot is volatile)", got.Placements)
	}
	got, err := s.UpdateSegment(ctx, "s", 0, func(m *tiers.SegmentMeta) error {
		m.Placements = m.Placements.With(tiers.Hot).With(tiers.Cold)
		m.ColdBytes = 10
		return nil
	})
	if err != nil || got.Placements != tiers.Of(tiers.Warm, tiers.Cold) {
		t.Fatalf("UpdateSegment answered %v, %v; want warm+cold", got.Placements, err)
	}
	intent(t, s, catalog.Intent{Stream: "s", Base: 0, Kind: catalog.IntentDropWarm})
	got, err = s.CommitMove(ctx, "s", 0, func(m *tiers.SegmentMeta) error {
		m.Placements = tiers.Of(tiers.Hot, tiers.Cold)
		return nil
	})
	if err != nil || got.Placements != tiers.Of(tiers.Cold) {
		t.Fatalf("CommitMove answered %v, %v; want cold", got.Placements, err)
	}
	for _, m := range segments(t, s, "s") {
		if m.Placements.Has(tiers.Hot) {
			t.Fatalf("Segments lists %v", m.Placements)
		}
	}
	if got := segment(t, s, "s", 0); got.Placements != tiers.Of(tiers.Cold) {
		t.Fatalf("stored %v, want cold", got.Placements)
	}
}

// testLocate: the segments holding any offset of [from, to], both
// inclusive, in offset order, tombstoned ones included, with the watermark.
func testLocate(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	// Segments [0,9] [10,19] [30,39] [40,49]; a gap at 20..29.
	put(t, s, seg("s", 30, 39), seg("s", 0, 9), seg("s", 40, 49), seg("s", 10, 19))
	cases := []struct {
		from, to uint64
		want     []uint64
	}{
		{0, 0, []uint64{0}},
		{9, 9, []uint64{0}},
		{9, 10, []uint64{0, 10}},
		{10, 10, []uint64{10}},
		{5, 15, []uint64{0, 10}},
		{19, 30, []uint64{10, 30}},
		{20, 29, []uint64{}},
		{25, 35, []uint64{30}},
		{39, 40, []uint64{30, 40}},
		{50, math.MaxUint64, []uint64{}},
		{0, math.MaxUint64, []uint64{0, 10, 30, 40}},
		{35, math.MaxUint64, []uint64{30, 40}},
		{15, 5, []uint64{}},
	}
	for _, tc := range cases {
		got, retained, err := s.Locate(ctx, "s", tc.from, tc.to)
		if err != nil {
			t.Fatalf("Locate [%d, %d]: %v", tc.from, tc.to, err)
		}
		if got == nil || !slices.Equal(bases(got), tc.want) || retained != 0 {
			t.Errorf("Locate [%d, %d] = %v, retained from %d; want %v, 0", tc.from, tc.to, bases(got), retained, tc.want)
		}
	}
	if _, err := s.Tombstone(ctx, "s", 10, tombAt, justified); err != nil {
		t.Fatal(err)
	}
	got, retained, err := s.Locate(ctx, "s", 5, 35)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bases(got), []uint64{0, 10, 30}) || retained != 20 {
		t.Fatalf("Locate [5, 35] after a tombstone = %v, retained from %d; want [0 10 30], 20", bases(got), retained)
	}
	if got[0].Tombstoned.IsZero() || got[1].Tombstoned.IsZero() || !got[2].Tombstoned.IsZero() {
		t.Fatalf("Locate's tombstones: %v %v %v, want 0 and 10 tombstoned, 30 live", got[0].Tombstoned, got[1].Tombstoned, got[2].Tombstoned)
	}
}

// testRetained: the watermark, the next offset and the live segment that
// starts at the watermark.
func testRetained(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.open()
	put(t, s, seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 24))
	check := func(what string, wantFrom, wantNext uint64, wantFirst uint64, wantOK bool) {
		t.Helper()
		from, next, first, ok, err := s.Retained(ctx, "s")
		if err != nil {
			t.Fatalf("%s: Retained: %v", what, err)
		}
		if from != wantFrom || next != wantNext || ok != wantOK || ok && first.Base != wantFirst {
			t.Fatalf("%s: Retained = %d, %d, first %d (ok %v); want %d, %d, first %d (ok %v)", what, from, next, first.Base, ok, wantFrom, wantNext, wantFirst, wantOK)
		}
		if ok {
			sameMeta(t, what+": Retained's first segment", first, segment(t, s, "s", first.Base))
		}
		in := stream(t, s, "s")
		if in.RetainedFrom != wantFrom || in.NextOffset != wantNext {
			t.Fatalf("%s: Streams says [%d, %d), want [%d, %d)", what, in.RetainedFrom, in.NextOffset, wantFrom, wantNext)
		}
	}
	check("fresh", 0, 25, 0, true)
	if _, err := s.Tombstone(ctx, "s", 0, tombAt, justified); err != nil {
		t.Fatal(err)
	}
	check("first tombstoned", 10, 25, 10, true)
	if _, err := s.Tombstone(ctx, "s", 20, tombAt, justified); err != nil {
		t.Fatal(err)
	}
	check("all tombstoned", 25, 25, 0, false)
	for _, b := range []uint64{0, 10, 20} {
		if err := s.CommitDelete(ctx, "s", b); err != nil {
			t.Fatal(err)
		}
	}
	// The newest segments are gone: the next offset does not move back,
	// so offsets are never handed out twice.
	check("all deleted", 25, 25, 0, false)
	put(t, s, seg("s", 25, 29))
	check("appended again", 25, 30, 25, true)
}

// testCoverage: gaps in the retained offsets, in offset order; none where
// retention explains the missing offsets.
func testCoverage(t *testing.T, e *env) {
	ctx := context.Background()
	type r = [2]uint64
	cases := []struct {
		name        string
		segs        []tiers.SegmentMeta
		tombstone   []uint64 // tombstoned in this order
		deleted     []uint64 // then forgotten by CommitDelete
		first, next uint64
		gaps        []r
		tombs       int
	}{
		{name: "contiguous", segs: []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 20)}, next: 21},
		{name: "start missing", segs: []tiers.SegmentMeta{seg("s", 100, 109), seg("s", 110, 119)}, next: 120, gaps: []r{{0, 100}}},
		{name: "gaps in the middle", segs: []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 15, 19), seg("s", 25, 29)}, next: 30, gaps: []r{{10, 15}, {20, 25}}},
		{name: "retention deleted the start", segs: []tiers.SegmentMeta{seg("s", 0, 49), seg("s", 50, 99), seg("s", 100, 109)},
			tombstone: []uint64{50}, deleted: []uint64{0, 50}, first: 100, next: 110},
		{name: "tombstones at the low end", segs: []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 29)},
			tombstone: []uint64{10}, first: 20, next: 30, tombs: 2},
		{name: "all tombstoned", segs: []tiers.SegmentMeta{seg("s", 0, 9)}, tombstone: []uint64{0}, first: 10, next: 10, tombs: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := e.open()
			put(t, s, tc.segs...)
			for _, b := range tc.tombstone {
				if _, err := s.Tombstone(ctx, "s", b, tombAt, justified); err != nil {
					t.Fatal(err)
				}
			}
			for _, b := range tc.deleted {
				if err := s.CommitDelete(ctx, "s", b); err != nil {
					t.Fatal(err)
				}
			}
			cv, err := s.Coverage(ctx, "s")
			if err != nil {
				t.Fatal(err)
			}
			if cv.First != tc.first || cv.Next != tc.next {
				t.Errorf("range [%d, %d), want [%d, %d)", cv.First, cv.Next, tc.first, tc.next)
			}
			if len(cv.Gaps) != len(tc.gaps) || len(tc.gaps) > 0 && !slices.Equal(cv.Gaps, tc.gaps) {
				t.Errorf("gaps %v, want %v", cv.Gaps, tc.gaps)
			}
			// Through the Store's own writes nothing overlaps or contradicts
			// the watermark.
			if len(cv.Overlaps) != 0 || len(cv.Misplaced) != 0 {
				t.Errorf("overlaps %v, misplaced %v; want none", cv.Overlaps, bases(cv.Misplaced))
			}
			if len(cv.Tombstoned) != tc.tombs {
				t.Errorf("%d tombstoned, want %d", len(cv.Tombstoned), tc.tombs)
			}
			if !slices.IsSortedFunc(cv.Tombstoned, func(a, b tiers.SegmentMeta) int { return cmp.Compare(a.Base, b.Base) }) {
				t.Errorf("tombstoned out of offset order: %v", bases(cv.Tombstoned))
			}
		})
	}
}
