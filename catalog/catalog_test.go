package catalog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)

func openT(t *testing.T, opts Options) (*Catalog, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.db")
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	c, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// seg builds a valid warm segment [base, last] whose timestamps are
// base*10 .. last*10.
func seg(stream string, base, last uint64) tiers.SegmentMeta {
	return tiers.SegmentMeta{
		Stream: stream, Base: base, Last: last, Count: last - base + 1,
		Bytes: int64(last-base+1) * 100, MinTS: int64(base) * 10, MaxTS: int64(last) * 10,
		SealedAt:   t0.Add(time.Duration(base) * time.Second),
		Digest:     tiers.Digest{byte(base), byte(last)},
		Placements: tiers.Of(tiers.Warm),
	}
}

func put(t *testing.T, c *Catalog, ms ...tiers.SegmentMeta) {
	t.Helper()
	for _, m := range ms {
		if err := c.PutSegment(context.Background(), m); err != nil {
			t.Fatalf("PutSegment(%s [%d, %d]): %v", m.Stream, m.Base, m.Last, err)
		}
	}
}

func sameMeta(t *testing.T, got, want tiers.SegmentMeta) {
	t.Helper()
	if !got.SealedAt.Equal(want.SealedAt) {
		t.Fatalf("SealedAt %v, want %v", got.SealedAt, want.SealedAt)
	}
	if !got.Tombstoned.Equal(want.Tombstoned) || got.Tombstoned.IsZero() != want.Tombstoned.IsZero() {
		t.Fatalf("Tombstoned %v, want %v", got.Tombstoned, want.Tombstoned)
	}
	got.SealedAt, got.Tombstoned = want.SealedAt, want.Tombstoned
	if got != want {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func bases(ms []tiers.SegmentMeta) []uint64 {
	out := []uint64{}
	for _, m := range ms {
		out = append(out, m.Base)
	}
	return out
}

func TestPutGetReplaceDelete(t *testing.T) {
	ctx := context.Background()
	c, _ := openT(t, Options{})
	a := seg("s", 0, 9)
	put(t, c, a)
	got, err := c.Segment(ctx, "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, got, a)

	// Replace: same (stream, base), new metadata.
	b := a
	b.Placements = tiers.Of(tiers.Warm, tiers.Cold)
	b.Digest = tiers.Digest{42}
	b.Bytes = 7
	put(t, c, b)
	got, err = c.Segment(ctx, "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, got, b)
	all, err := c.Segments(ctx, "s")
	if err != nil || len(all) != 1 {
		t.Fatalf("Segments after replace = %v, %v; want one segment", all, err)
	}
	infos, err := c.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (StreamInfo{Name: "s", CreatedAt: t0, Segments: 1, Records: 10, Bytes: 7, NextOffset: 10}); len(infos) != 1 || !infos[0].CreatedAt.Equal(t0) || withTime(infos[0], t0) != want {
		t.Fatalf("Streams after replace = %+v, want %+v", infos, want)
	}

	if err := c.DeleteSegment(ctx, "s", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Segment(ctx, "s", 0); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("Segment after delete: %v, want ErrSegmentNotFound", err)
	}
	if err := c.DeleteSegment(ctx, "s", 0); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("second delete: %v, want ErrSegmentNotFound", err)
	}
	all, err = c.Segments(ctx, "s")
	if err != nil || len(all) != 0 {
		t.Fatalf("Segments after delete = %v, %v; want none and no error", all, err)
	}
}

func withTime(s StreamInfo, t time.Time) StreamInfo {
	s.CreatedAt = t
	return s
}

func TestPutSegmentRejectsInvalid(t *testing.T) {
	mod := func(f func(*tiers.SegmentMeta)) tiers.SegmentMeta {
		m := seg("s", 10, 19)
		f(&m)
		return m
	}
	cases := []struct {
		name string
		m    tiers.SegmentMeta
		want error
	}{
		{"last before base", mod(func(m *tiers.SegmentMeta) { m.Last = 9 }), ErrInvalidSegment},
		{"count not dense", mod(func(m *tiers.SegmentMeta) { m.Count = 9 }), ErrInvalidSegment},
		{"negative bytes", mod(func(m *tiers.SegmentMeta) { m.Bytes = -1 }), ErrInvalidSegment},
		{"min ts after max ts", mod(func(m *tiers.SegmentMeta) { m.MinTS = m.MaxTS + 1 }), ErrInvalidSegment},
		{"hot only", mod(func(m *tiers.SegmentMeta) { m.Placements = tiers.Of(tiers.Hot) }), ErrInvalidSegment},
		{"no placement", mod(func(m *tiers.SegmentMeta) { m.Placements = 0 }), ErrInvalidSegment},
		{"unknown placement", mod(func(m *tiers.SegmentMeta) { m.Placements = tiers.Of(tiers.Warm, 7) }), ErrInvalidSegment},
		{"last is max", mod(func(m *tiers.SegmentMeta) { m.Last = math.MaxUint64; m.Count = math.MaxUint64 - 9 }), ErrInvalidSegment},
		{"bad stream name", mod(func(m *tiers.SegmentMeta) { m.Stream = "../etc" }), tiers.ErrInvalidStreamName},
		{"empty stream name", mod(func(m *tiers.SegmentMeta) { m.Stream = "" }), tiers.ErrInvalidStreamName},
	}
	c, _ := openT(t, Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.PutSegment(context.Background(), tc.m); !errors.Is(err, tc.want) {
				t.Fatalf("PutSegment = %v, want %v", err, tc.want)
			}
		})
	}
	if infos, err := c.Streams(context.Background()); err != nil || len(infos) != 0 {
		t.Fatalf("rejected puts left streams %+v (err %v)", infos, err)
	}
}

func TestPutSegmentOverlap(t *testing.T) {
	cases := []struct {
		base, last uint64
		ok         bool
	}{
		{5, 12, false},  // straddles [0,9] and [10,19]
		{9, 9, false},   // last offset of [0,9]
		{19, 25, false}, // starts inside [10,19]
		{25, 30, false}, // ends at the base of [30,39]
		{0, 100, false}, // covers everything
		{15, 15, false}, // inside [10,19], different base
		{20, 29, true},  // exactly fills the gap
		{20, 20, true},  // first offset of the gap
		{29, 29, true},  // last offset of the gap
		{40, 50, true},  // after the last segment
		{10, 15, true},  // replaces [10,19] with a shorter run
		{10, 25, true},  // replaces [10,19], growing into the gap
		{10, 30, false}, // replaces [10,19] but reaches [30,39]
		{0, 9, true},    // replaces [0,9] unchanged
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d-%d", tc.base, tc.last), func(t *testing.T) {
			c, _ := openT(t, Options{})
			put(t, c, seg("s", 0, 9), seg("s", 10, 19), seg("s", 30, 39), seg("other", 5, 12))
			err := c.PutSegment(context.Background(), seg("s", tc.base, tc.last))
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrOverlap)) {
				t.Fatalf("PutSegment = %v, want ok=%v (else ErrOverlap)", err, tc.ok)
			}
			all, err := c.Segments(context.Background(), "s")
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(all); i++ {
				if all[i].Base <= all[i-1].Last {
					t.Fatalf("catalog holds overlapping segments: %+v", all)
				}
			}
			if !tc.ok && !slices.Equal(bases(all), []uint64{0, 10, 30}) {
				t.Fatalf("rejected put changed the segments to %v", bases(all))
			}
		})
	}
}

func TestLocate(t *testing.T) {
	c, _ := openT(t, Options{})
	// Segments [0,9] [10,19] [30,39]; a gap at 20..29.
	put(t, c, seg("s", 30, 39), seg("s", 0, 9), seg("s", 10, 19))
	if err := c.ensureStream(context.Background(), "empty"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		stream   string
		from, to uint64
		want     []uint64
	}{
		{"s", 0, 0, []uint64{0}},
		{"s", 9, 9, []uint64{0}},
		{"s", 9, 10, []uint64{0, 10}},
		{"s", 10, 10, []uint64{10}},
		{"s", 5, 15, []uint64{0, 10}},
		{"s", 19, 30, []uint64{10, 30}},
		{"s", 20, 29, []uint64{}},
		{"s", 25, 35, []uint64{30}},
		{"s", 39, 39, []uint64{30}},
		{"s", 40, math.MaxUint64, []uint64{}},
		{"s", 0, math.MaxUint64, []uint64{0, 10, 30}},
		{"s", 35, math.MaxUint64, []uint64{30}},
		{"s", 15, 5, []uint64{}},
		{"empty", 0, math.MaxUint64, []uint64{}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s[%d,%d]", tc.stream, tc.from, tc.to), func(t *testing.T) {
			got, _, err := c.Locate(context.Background(), tc.stream, tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bases(got), tc.want) {
				t.Fatalf("Locate = %v, want %v", bases(got), tc.want)
			}
		})
	}
}

func TestLocateTime(t *testing.T) {
	c, _ := openT(t, Options{})
	// ts ranges: [0,90] [100,190] [300,390]; and one segment whose
	// producer clock ran backwards: [400,409] has ts [50,60].
	late := seg("s", 400, 409)
	late.MinTS, late.MaxTS = 50, 60
	put(t, c, seg("s", 0, 9), seg("s", 10, 19), seg("s", 30, 39), late)
	cases := []struct {
		since, until int64
		want         []uint64
	}{
		{0, 1, []uint64{0}},                // since inclusive at MinTS
		{90, 91, []uint64{0}},              // since inclusive at MaxTS
		{91, 100, []uint64{}},              // until exclusive at MinTS of the next
		{91, 101, []uint64{10}},            // until just past MinTS
		{55, 56, []uint64{0, 400}},         // the out-of-order segment
		{200, 300, []uint64{}},             // the gap, until exclusive
		{390, math.MaxInt64, []uint64{30}}, // open end
		{math.MinInt64, 0, []uint64{}},     // all before, until exclusive at 0
		{math.MinInt64, math.MaxInt64, []uint64{0, 10, 30, 400}},
		{150, 100, []uint64{}}, // empty range
		{100, 100, []uint64{}}, // empty range
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("[%d,%d)", tc.since, tc.until), func(t *testing.T) {
			got, err := c.locateTime(context.Background(), "s", tc.since, tc.until)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bases(got), tc.want) {
				t.Fatalf("locateTime = %v, want %v", bases(got), tc.want)
			}
		})
	}
}

func TestUnknownStream(t *testing.T) {
	ctx := context.Background()
	c, _ := openT(t, Options{})
	put(t, c, seg("known", 0, 9))
	identity := func(p tiers.Placements) tiers.Placements { return p }
	cases := []struct {
		name string
		call func() error
		want []error
	}{
		{"Segments", func() error { _, err := c.Segments(ctx, "nope"); return err }, []error{tiers.ErrStreamNotFound}},
		{"Locate", func() error { _, _, err := c.Locate(ctx, "nope", 0, 10); return err }, []error{tiers.ErrStreamNotFound}},
		{"locateTime", func() error { _, err := c.locateTime(ctx, "nope", 0, 10); return err }, []error{tiers.ErrStreamNotFound}},
		{"Segment", func() error { _, err := c.Segment(ctx, "nope", 0); return err }, []error{tiers.ErrSegmentNotFound, tiers.ErrStreamNotFound}},
		{"Segment known stream", func() error { _, err := c.Segment(ctx, "known", 5); return err }, []error{tiers.ErrSegmentNotFound}},
		{"updatePlacements", func() error { _, err := c.updatePlacements(ctx, "nope", 0, identity); return err }, []error{tiers.ErrSegmentNotFound}},
		{"DeleteSegment", func() error { return c.DeleteSegment(ctx, "nope", 0) }, []error{tiers.ErrSegmentNotFound}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Fatalf("err = %v, want it to wrap %v", err, w)
				}
			}
		})
	}
	// A lookup of a missing segment in a known stream is not "stream not found".
	if _, err := c.Segment(ctx, "known", 5); errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("missing segment of a known stream reported as unknown stream: %v", err)
	}
}

func TestStreams(t *testing.T) {
	ctx := context.Background()
	now := t0
	c, _ := openT(t, Options{Now: func() time.Time { return now }})
	if err := c.ensureStream(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(time.Hour)
	if err := c.ensureStream(ctx, "b"); err != nil { // idempotent: keeps CreatedAt
		t.Fatal(err)
	}
	put(t, c, seg("a", 0, 9), seg("a", 10, 14), seg("Z", 100, 100))
	if err := c.ensureStream(ctx, "bad/name"); !errors.Is(err, tiers.ErrInvalidStreamName) {
		t.Fatalf("ensureStream(bad/name) = %v", err)
	}
	got, err := c.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []StreamInfo{
		{Name: "Z", CreatedAt: t0.Add(time.Hour), Segments: 1, Records: 1, Bytes: 100, NextOffset: 101},
		{Name: "a", CreatedAt: t0.Add(time.Hour), Segments: 2, Records: 15, Bytes: 1500, NextOffset: 15},
		{Name: "b", CreatedAt: t0, Segments: 0, Records: 0, Bytes: 0, NextOffset: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("Streams = %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].CreatedAt.Equal(want[i].CreatedAt) || withTime(got[i], time.Time{}) != withTime(want[i], time.Time{}) {
			t.Fatalf("Streams[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	// Deleting the newest segment keeps NextOffset: offsets are never reused.
	if err := c.DeleteSegment(ctx, "a", 10); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSegment(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	got, err = c.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a := got[1]; a.Name != "a" || a.Segments != 0 || a.Records != 0 || a.Bytes != 0 || a.NextOffset != 15 {
		t.Fatalf("after deleting every segment of a: %+v, want no segments and NextOffset 15", a)
	}
}

func TestHotIsNotStored(t *testing.T) {
	ctx := context.Background()
	c, _ := openT(t, Options{})
	m := seg("s", 0, 9)
	m.Placements = tiers.Of(tiers.Hot, tiers.Warm)
	put(t, c, m)
	got, err := c.Segment(ctx, "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Placements != tiers.Of(tiers.Warm) {
		t.Fatalf("stored placements %v, want warm", got.Placements)
	}
	got, err = c.updatePlacements(ctx, "s", 0, func(p tiers.Placements) tiers.Placements { return p.With(tiers.Hot).With(tiers.Cold) })
	if err != nil {
		t.Fatal(err)
	}
	if got.Placements != tiers.Of(tiers.Warm, tiers.Cold) {
		t.Fatalf("updatePlacements stored %v, want warm+cold", got.Placements)
	}
}

func TestUpdatePlacements(t *testing.T) {
	ctx := context.Background()
	c, _ := openT(t, Options{})
	put(t, c, seg("s", 0, 9))
	steps := []struct {
		name string
		fn   func(tiers.Placements) tiers.Placements
		want tiers.Placements // stored afterwards
		err  error
	}{
		{"upload", func(p tiers.Placements) tiers.Placements { return p.With(tiers.Cold) }, tiers.Of(tiers.Warm, tiers.Cold), nil},
		{"drop warm", func(p tiers.Placements) tiers.Placements { return p.Without(tiers.Warm) }, tiers.Of(tiers.Cold), nil},
		{"drop everything", func(p tiers.Placements) tiers.Placements { return 0 }, tiers.Of(tiers.Cold), ErrInvalidSegment},
		{"hot only", func(p tiers.Placements) tiers.Placements { return tiers.Of(tiers.Hot) }, tiers.Of(tiers.Cold), ErrInvalidSegment},
		{"no change", func(p tiers.Placements) tiers.Placements { return p }, tiers.Of(tiers.Cold), nil},
	}
	for _, st := range steps {
		var seen tiers.Placements
		got, err := c.updatePlacements(ctx, "s", 0, func(p tiers.Placements) tiers.Placements { seen = p; return st.fn(p) })
		if !errors.Is(err, st.err) || (st.err == nil) != (err == nil) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.err)
		}
		if err == nil && got.Placements != st.want {
			t.Fatalf("%s: returned placements %v, want %v", st.name, got.Placements, st.want)
		}
		stored, err := c.Segment(ctx, "s", 0)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Placements != st.want {
			t.Fatalf("%s: stored placements %v, want %v (fn saw %v)", st.name, stored.Placements, st.want, seen)
		}
	}
}

func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	c, path := openT(t, Options{})
	ms := []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 10, 19), seg("t", 0, 0)}
	put(t, c, ms...)
	if _, err := c.updatePlacements(ctx, "s", 10, func(p tiers.Placements) tiers.Placements { return p.With(tiers.Cold) }); err != nil {
		t.Fatal(err)
	}
	ms[1].Placements = tiers.Of(tiers.Warm, tiers.Cold)
	before, err := c.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for _, m := range ms {
		got, err := c2.Segment(ctx, m.Stream, m.Base)
		if err != nil {
			t.Fatal(err)
		}
		sameMeta(t, got, m)
		if got.SealedAt.Nanosecond() != m.SealedAt.Nanosecond() {
			t.Fatalf("SealedAt lost nanoseconds: %v vs %v", got.SealedAt, m.SealedAt)
		}
	}
	after, err := c2.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("streams before %+v, after %+v", before, after)
	}
	for i := range before {
		if !after[i].CreatedAt.Equal(before[i].CreatedAt) || withTime(after[i], time.Time{}) != withTime(before[i], time.Time{}) {
			t.Fatalf("stream %d before %+v, after %+v", i, before[i], after[i])
		}
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	_, path := openT(t, Options{})
	c2, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	if err == nil {
		c2.Close()
		t.Fatal("second Open of a held catalog succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	c, _ := openT(t, Options{})
	put(t, c, seg("s", 0, 9))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Segment":       func() error { _, err := c.Segment(ctx, "s", 0); return err },
		"Segments":      func() error { _, err := c.Segments(ctx, "s"); return err },
		"Streams":       func() error { _, err := c.Streams(ctx); return err },
		"PutSegment":    func() error { return c.PutSegment(ctx, seg("s", 10, 19)) },
		"ensureStream":  func() error { return c.ensureStream(ctx, "x") },
		"DeleteSegment": func() error { return c.DeleteSegment(ctx, "s", 0) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, tiers.ErrClosed) {
			t.Errorf("%s after Close = %v, want tiers.ErrClosed", name, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	c, _ := openT(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.PutSegment(ctx, seg("s", 0, 9)); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutSegment with a canceled context = %v", err)
	}
	if _, err := c.Segments(context.Background(), "s"); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("canceled PutSegment created the stream: %v", err)
	}
}

func TestCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path, Options{})
	if err == nil {
		c.Close()
		t.Fatal("Open of a garbage file succeeded")
	}
	var ce *tiers.CorruptionError
	if !errors.As(err, &ce) || ce.Path != path {
		t.Fatalf("Open = %v, want a *tiers.CorruptionError naming %s", err, path)
	}
}

func TestCorruptValues(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		damage func(tx *bolt.Tx) error
		check  func(c *Catalog) error
	}{
		{"segment value", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketSegments)).Bucket([]byte("s")).Put(segmentKey(10), []byte{1, 2, 3})
		}, func(c *Catalog) error { _, err := c.Segment(ctx, "s", 10); return err }},
		{"segment value seen by Locate", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketSegments)).Bucket([]byte("s")).Put(segmentKey(10), []byte{9})
		}, func(c *Catalog) error { _, _, err := c.Locate(ctx, "s", 12, 12); return err }},
		{"segment value seen by PutSegment", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketSegments)).Bucket([]byte("s")).Put(segmentKey(10), []byte{9})
		}, func(c *Catalog) error { return c.PutSegment(ctx, seg("s", 20, 29)) }},
		{"short segment key", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketSegments)).Bucket([]byte("s")).Put([]byte{1}, encodeSegment(&tiers.SegmentMeta{}))
		}, func(c *Catalog) error { _, err := c.Segments(ctx, "s"); return err }},
		{"stream value", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketStreams)).Put([]byte("s"), []byte{1, 0xff})
		}, func(c *Catalog) error { _, err := c.Streams(ctx); return err }},
		{"stream totals", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketStreams)).Put([]byte("s"), encodeStream("s", &streamValue{CreatedAt: t0}))
		}, func(c *Catalog) error { return c.DeleteSegment(ctx, "s", 0) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, path := openT(t, Options{})
			put(t, c, seg("s", 0, 9), seg("s", 10, 19))
			if err := c.db.Update(tc.damage); err != nil {
				t.Fatal(err)
			}
			err := tc.check(c)
			var ce *tiers.CorruptionError
			if !errors.As(err, &ce) || ce.Path != path {
				t.Fatalf("err = %v, want a *tiers.CorruptionError naming %s", err, path)
			}
		})
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	c, path := openT(t, Options{})
	if err := c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), appendCRC(binary.AppendUvarint(nil, schemaVersion+1), kindSchema, keySchema, 0))
	}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c2, err := Open(path, Options{})
	if err == nil {
		c2.Close()
		t.Fatalf("opened a catalog with schema version %d", schemaVersion+1)
	}
	// A newer build's catalog is not damage: rebuilding would lose what
	// that build keeps.
	var ce *tiers.CorruptionError
	if errors.As(err, &ce) || !strings.Contains(err.Error(), "schema version 4") {
		t.Fatalf("newer schema: %v, want a plain error naming the version", err)
	}
}

func TestConcurrentReadersWithWriter(t *testing.T) {
	ctx := context.Background()
	c, _ := openT(t, Options{})
	const segments = 200
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := uint64(0); i < segments; i++ {
			m := seg("s", i*10, i*10+9)
			if err := c.PutSegment(ctx, m); err != nil {
				errc <- err
				return
			}
			if i%3 == 0 {
				if _, err := c.updatePlacements(ctx, "s", m.Base, func(p tiers.Placements) tiers.Placements { return p.With(tiers.Cold) }); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1
			for {
				select {
				case <-done:
					return
				default:
				}
				got, _, err := c.Locate(ctx, "s", 0, math.MaxUint64)
				if errors.Is(err, tiers.ErrStreamNotFound) {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				// The writer appends in order: every snapshot is a dense
				// prefix, never shrinking.
				for i, m := range got {
					if m.Base != uint64(i)*10 || m.Last != m.Base+9 {
						errc <- fmt.Errorf("snapshot %d: segment %d is [%d, %d]", len(got), i, m.Base, m.Last)
						return
					}
				}
				if len(got) < last {
					errc <- fmt.Errorf("snapshot shrank from %d to %d segments", last, len(got))
					return
				}
				last = len(got)
				if _, err := c.Streams(ctx); err != nil {
					errc <- err
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
	infos, err := c.Streams(ctx)
	if err != nil || len(infos) != 1 || infos[0].Segments != segments || infos[0].NextOffset != segments*10 {
		t.Fatalf("Streams after the writer = %+v, %v", infos, err)
	}
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	c, _ := openT(t, Options{Registerer: reg})
	put(t, c, seg("s", 0, 9))
	c.Segment(ctx, "s", 99)
	c.PutSegment(ctx, seg("s", 5, 5))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "tierd_catalog_ops_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["op"]+"/"+labels["result"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"put_segment/ok": 1, "segment/not_found": 1, "put_segment/error": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("tierd_catalog_ops_total{%s} = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// A second catalog on the same registry (an engine reopened in one
	// process) opens and counts into the same series.
	c2, err := Open(filepath.Join(t.TempDir(), "other.db"), Options{Registerer: reg})
	if err != nil {
		t.Fatalf("second catalog on one registry: %v", err)
	}
	defer c2.Close()
	if _, err := c2.Segment(context.Background(), "nope", 0); err == nil {
		t.Fatal("segment of an unknown stream found")
	}
	families, err = reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	shared := 0.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if f.GetName() == "tierd_catalog_ops_total" {
				for _, l := range m.GetLabel() {
					if l.GetName() == "op" && l.GetValue() == "segment" {
						shared += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if shared != 2 {
		t.Fatalf("segment lookups counted across both catalogs: %v, want 2", shared)
	}
}

// bbolt asserts (panics) on some damaged pages; runTx must turn that into a
// corruption error and leave the catalog usable.
func TestPanicInTransactionIsCorruption(t *testing.T) {
	c, path := openT(t, Options{})
	for _, write := range []bool{false, true} {
		err := c.runTx(write, func(tx *bolt.Tx) error { panic("assertion failed: page 7 self identifies as 9") })
		var ce *tiers.CorruptionError
		if !errors.As(err, &ce) || ce.Path != path {
			t.Fatalf("write=%v: err = %v, want a *tiers.CorruptionError", write, err)
		}
	}
	put(t, c, seg("s", 0, 9))
	if _, err := c.Segment(context.Background(), "s", 0); err != nil {
		t.Fatalf("catalog unusable after a recovered panic: %v", err)
	}
}
