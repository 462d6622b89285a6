package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// clock is an ingest clock the tests move by hand, so that segment ages
// are what the test says, not what the machine took.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// t0 is when the tests' first segments seal.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// forever keeps the hot tier from sealing or evicting on its own: in these
// tests only the plan moves segments.
const forever = 100 * 365 * 24 * time.Hour

// fileStore returns a fresh file:// cold store: its directory and URL.
func fileStore(t *testing.T) (dir, storeURL string) {
	dir = filepath.Join(t.TempDir(), "cold")
	return dir, (&url.URL{Scheme: "file", Path: dir}).String()
}

// openClocked opens an engine on dir whose ingest clock is clk, with small
// segments and a cold tier on storeURL ("" for none), whose deletions are
// justified against defaultConfig(storeURL).
func openClocked(t *testing.T, dir, storeURL string, clk *clock) *Engine {
	t.Helper()
	cfg := defaultConfig(storeURL)
	return openClockedConfig(t, dir, storeURL, clk, &cfg)
}

// openClockedConfig is openClocked with the configuration cfg.
func openClockedConfig(t *testing.T, dir, storeURL string, clk *clock, cfg *policy.Config) *Engine {
	t.Helper()
	return open(t, dir, func(o *Options) {
		o.Now = clk.Now
		o.SegmentMaxBytes = 8 << 10
		o.SegmentMaxAge = forever
		o.HotResidency = forever
		o.Config = cfg
		if storeURL != "" {
			o.Cold = openCold(t, storeURL)
		}
	})
}

// defaultConfig is the configuration the tests' engines justify deletions
// against: with a cold store, uploads at 24h and deletion at 7d; without,
// deletion from warm at 7d.
func defaultConfig(storeURL string) policy.Config {
	if storeURL == "" {
		return testConfig("", time.Hour, 7*24*time.Hour, 0)
	}
	return testConfig(storeURL, time.Hour, 24*time.Hour, 7*24*time.Hour)
}

// testConfig is a policy for every stream with the given ages (0: keep
// forever) and a one-hour delete delay; storeURL "" means no cold store.
func testConfig(storeURL string, hot, warm, coldAge time.Duration) policy.Config {
	cfg := policy.Default()
	cfg.Cold.Store = storeURL
	if storeURL == "" {
		cfg.Cold.Store = policy.StoreNone
	}
	cfg.Cold.DeleteDelay = time.Hour
	cfg.Policies = []policy.Policy{{Name: "test", Streams: []string{"*"}, HotMaxAge: hot, WarmMaxAge: warm, ColdMaxAge: coldAge}}
	return cfg
}

// settle plans and executes until nothing is planned at now, as repeated
// migrator runs would, and returns what it executed.
func settle(t *testing.T, e *Engine, cfg policy.Config, now time.Time) []policy.Action {
	t.Helper()
	ctx := context.Background()
	var done []policy.Action
	for round := 0; round < 10; round++ {
		segs, err := e.PlanInput(ctx, "")
		if err != nil {
			t.Fatalf("plan input: %v", err)
		}
		acts := policy.Plan(now, segs, cfg)
		if len(acts) == 0 {
			return done
		}
		for _, a := range acts {
			if err := e.Execute(ctx, a); err != nil {
				t.Fatalf("execute %v: %v", a, err)
			}
			done = append(done, a)
		}
	}
	t.Fatalf("the plan did not settle in 10 rounds; executed %v", done)
	return nil
}

func execute(e *Engine, kind policy.ActionKind, stream string, base uint64) error {
	return e.Execute(context.Background(), policy.Action{Kind: kind, Stream: stream, Base: base, Reason: "test"})
}

// evictThrough drops seg and the older resident segments of stream from
// memory, as the hot tier's own residency rule does (no migrator action
// evicts: memory is the hot tier's alone).
func evictThrough(t *testing.T, e *Engine, stream string, seg tiers.SegmentMeta) {
	t.Helper()
	if n := e.hot.Evict(stream, seg.Last+1); n == 0 {
		t.Fatalf("evict %s through %d: nothing dropped", stream, seg.Base)
	}
}

func mustExecute(t *testing.T, e *Engine, kind policy.ActionKind, stream string, base uint64) {
	t.Helper()
	if err := execute(e, kind, stream, base); err != nil {
		t.Fatalf("%s %s@%d: %v", kind, stream, base, err)
	}
}

// placementsOf returns the segment's placements as the listing shows them
// (Hot included when resident); ok is false when the segment is not listed.
func placementsOf(t *testing.T, e *Engine, stream string, base uint64) (tiers.Placements, bool) {
	t.Helper()
	for _, s := range sealedSegments(t, e, stream) {
		if s.Base == base {
			return s.Placements, true
		}
	}
	return 0, false
}

func wantPlacements(t *testing.T, e *Engine, stream string, base uint64, want tiers.Placements) {
	t.Helper()
	got, ok := placementsOf(t, e, stream, base)
	if !ok {
		t.Fatalf("segment %s@%d is not listed; want it placed %v", stream, base, want)
	}
	if got != want {
		t.Fatalf("segment %s@%d placed %v, want %v", stream, base, got, want)
	}
}

// wantServed reads stream from want[0]'s offset to the end and fails unless
// it returns exactly want, in order, each record once, each from the tier
// the segment listing says is its best.
func wantServed(t *testing.T, e *Engine, stream string, want []tiers.Record) {
	t.Helper()
	segs, err := e.Segments(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	tierOf := func(off uint64) tiers.Placement {
		for _, s := range segs {
			if off >= s.Base && off <= s.Last {
				return s.Placements.Best()
			}
		}
		return 0
	}
	q := tiers.AllRecords()
	if len(want) > 0 {
		q.From = want[0].Offset
	}
	var got []Item
	for it, err := range e.Read(context.Background(), stream, q) {
		if err != nil {
			t.Fatalf("read %s from %d: %v (after %d records)", stream, q.From, err, len(got))
		}
		got = append(got, it)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records of %s from %d, want %d", len(got), stream, q.From, len(want))
	}
	for i := range got {
		if !got[i].Record.Equal(&want[i]) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i].Record, want[i])
		}
		if tier := tierOf(got[i].Offset); got[i].Tier != tier {
			t.Fatalf("offset %d served from %v, want %v", got[i].Offset, got[i].Tier, tier)
		}
	}
}

// wantExpired fails unless a read of stream with q yields, before any
// record, an error wrapping tiers.ErrExpired that names offsets [from, to).
func wantExpired(t *testing.T, e *Engine, stream string, q tiers.Query, from, to uint64) {
	t.Helper()
	n := 0
	var rerr error
	for _, err := range e.Read(context.Background(), stream, q) {
		if err != nil {
			rerr = err
			break
		}
		n++
	}
	if !errors.Is(rerr, tiers.ErrExpired) {
		t.Fatalf("read %s [%d, %d]: %v after %d records, want ErrExpired", stream, q.From, q.To, rerr, n)
	}
	if r := fmt.Sprintf("[%d, %d)", from, to); !strings.Contains(rerr.Error(), r) {
		t.Fatalf("expired error %q does not name the range %s", rerr, r)
	}
	if n != 0 {
		t.Fatalf("read served %d records before reporting the expired range", n)
	}
}

func fromTo(from, to uint64) tiers.Query {
	q := tiers.AllRecords()
	q.From, q.To = from, to
	return q
}

// warmFiles lists the .seg files under dir's warm directory, relative to it.
func warmFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dir, "warm")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func warmName(stream string, base uint64) string {
	return fmt.Sprintf("%s/%020d.seg", stream, base)
}

func wantVerifyClean(t *testing.T, e *Engine) VerifyReport {
	t.Helper()
	rep, err := e.Verify(context.Background(), "", nil)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(rep.Findings) != 0 {
		t.Fatalf("verify found %+v", rep.Findings)
	}
	return rep
}

func TestPlanInput(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := openClocked(t, t.TempDir(), "", clk)
	defer e.Close(ctx)
	fill(t, e, "s", 300)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	fill(t, e, "only-active", 3) // nothing persisted yet
	for _, stream := range []string{"s", ""} {
		in, err := e.PlanInput(ctx, stream)
		if err != nil {
			t.Fatalf("plan input %q: %v", stream, err)
		}
		if len(in) != len(segs) {
			t.Fatalf("plan input %q: %d segments, want the %d persisted", stream, len(in), len(segs))
		}
		for i, s := range in {
			if s.Stream != "s" || s.Base != segs[i].Base || s.Last != segs[i].Last || s.Digest != segs[i].Digest {
				t.Fatalf("plan input %q segment %d is %s@%d..%d, want s@%d..%d", stream, i, s.Stream, s.Base, s.Last, segs[i].Base, segs[i].Last)
			}
			if s.Placements != tiers.Of(tiers.Hot, tiers.Warm) || s.InFlight {
				t.Fatalf("resident persisted segment %d planned as %v (in flight %v), want hot+warm", s.Base, s.Placements, s.InFlight)
			}
			if !s.SealedAt.Equal(t0) {
				t.Fatalf("segment %d sealed at %v, want the ingest clock's %v", s.Base, s.SealedAt, t0)
			}
		}
	}
	evictThrough(t, e, "s", segs[1].SegmentMeta)
	in, err := e.PlanInput(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range in {
		if wantHot := i > 1; s.Placements.Has(tiers.Hot) != wantHot {
			t.Fatalf("after evicting up to segment 1, segment %d planned as %v", i, s.Placements)
		}
	}
	if in, err := e.PlanInput(ctx, "only-active"); err != nil || len(in) != 0 {
		t.Fatalf("plan input of a stream with nothing persisted: %v %v, want nothing", in, err)
	}
	if _, err := e.PlanInput(ctx, "nope"); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("plan input of an unknown stream: %v", err)
	}
	if _, err := e.PlanInput(ctx, "../x"); !errors.Is(err, tiers.ErrInvalidStreamName) {
		t.Fatalf("plan input of a bad name: %v", err)
	}
}

// TestExecuteEachAction runs every action kind against a cold-tiered
// engine and checks placements, files, objects, catalog entries and reads
// after each.
func TestExecuteEachAction(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	dir := t.TempDir()
	_, storeURL := fileStore(t)
	e := openClocked(t, dir, storeURL, clk)
	defer func() { e.Close(ctx) }()
	want := fill(t, e, "s", 400)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	if len(segs) < 5 {
		t.Fatalf("want at least 5 segments, got %d", len(segs))
	}
	wantServed(t, e, "s", want) // all from memory

	// The hot tier evicting segment 1 drops the older segment 0 too.
	evictThrough(t, e, "s", segs[1].SegmentMeta)
	if err := execute(e, policy.EvictHot, "s", segs[2].Base); err == nil {
		t.Fatal("the mover executed evict-hot: memory is the hot tier's alone")
	}
	if msg, _, _, ok, _ := e.LastFailure(ctx, "s", segs[2].Base); ok {
		t.Fatalf("a refused evict-hot left a failure record: %q", msg)
	}
	wantPlacements(t, e, "s", segs[0].Base, tiers.Of(tiers.Warm))
	wantPlacements(t, e, "s", segs[1].Base, tiers.Of(tiers.Warm))
	wantPlacements(t, e, "s", segs[2].Base, tiers.Of(tiers.Hot, tiers.Warm))
	wantServed(t, e, "s", want)

	// upload copies to cold and keeps the warm copy.
	mustExecute(t, e, policy.Upload, "s", segs[0].Base)
	wantPlacements(t, e, "s", segs[0].Base, tiers.Of(tiers.Warm, tiers.Cold))
	if keys := listObjects(t, storeURL); !slices.Equal(keys, []string{cold.ObjectKey(segs[0].SegmentMeta)}) {
		t.Fatalf("objects after one upload: %v", keys)
	}
	if !slices.Contains(warmFiles(t, dir), warmName("s", segs[0].Base)) {
		t.Fatal("upload removed the warm copy")
	}
	wantServed(t, e, "s", want)

	// drop-warm removes the warm copy; reads go to cold.
	mustExecute(t, e, policy.DropWarm, "s", segs[0].Base)
	wantPlacements(t, e, "s", segs[0].Base, tiers.Of(tiers.Cold))
	if slices.Contains(warmFiles(t, dir), warmName("s", segs[0].Base)) {
		t.Fatal("drop-warm left the warm file")
	}
	wantServed(t, e, "s", want)
	if got := readAll(t, e, "s", fromTo(segs[0].Base, segs[0].Last)); got[0].Tier != tiers.Cold {
		t.Fatalf("segment 0 served from %v after drop-warm", got[0].Tier)
	}

	// Segment 1 gets a cold copy too, so that one deletion removes both.
	mustExecute(t, e, policy.Upload, "s", segs[1].Base)

	// tombstone: no longer served, copies kept until delete-cold.
	clk.Advance(8 * 24 * time.Hour) // past cold.max_age
	tombAt := clk.Now()
	mustExecute(t, e, policy.Tombstone, "s", segs[0].Base)
	mustExecute(t, e, policy.Tombstone, "s", segs[1].Base)
	for _, s := range segs[:2] {
		m, err := e.catalog.Segment(ctx, "s", s.Base)
		if err != nil || !m.Tombstoned.Equal(tombAt) {
			t.Fatalf("segment %d after tombstone: tombstoned %v (%v), want %v", s.Base, m.Tombstoned, err, tombAt)
		}
	}
	if n := len(listObjects(t, storeURL)); n != 2 {
		t.Fatalf("%d objects after tombstoning, want both kept until delete-cold", n)
	}
	if !slices.Contains(warmFiles(t, dir), warmName("s", segs[1].Base)) {
		t.Fatal("tombstone removed a warm file; that is delete-cold's step")
	}
	first := segs[2].Base
	wantExpired(t, e, "s", tiers.AllRecords(), 0, first)
	wantExpired(t, e, "s", fromTo(0, 5), 0, 6)
	wantExpired(t, e, "s", fromTo(segs[1].Base+3, first+10), segs[1].Base+3, first)
	wantServed(t, e, "s", want[first:])
	if r, err := e.Retention(ctx, "s"); err != nil || r.First != first || r.Next != 400 {
		t.Fatalf("retention after tombstones: %+v %v, want first %d next 400", r, err, first)
	}
	wantVerifyClean(t, e)

	// delete-cold removes the object, the warm file and the catalog entry.
	clk.Advance(2 * time.Hour)
	mustExecute(t, e, policy.DeleteCold, "s", segs[0].Base)
	mustExecute(t, e, policy.DeleteCold, "s", segs[1].Base)
	for _, s := range segs[:2] {
		if _, err := e.catalog.Segment(ctx, "s", s.Base); !errors.Is(err, tiers.ErrSegmentNotFound) {
			t.Fatalf("catalog still has deleted segment %d: %v", s.Base, err)
		}
		if _, ok := placementsOf(t, e, "s", s.Base); ok {
			t.Fatalf("deleted segment %d still listed", s.Base)
		}
	}
	if keys := listObjects(t, storeURL); len(keys) != 0 {
		t.Fatalf("objects left after delete-cold: %v", keys)
	}
	if files := warmFiles(t, dir); slices.Contains(files, warmName("s", segs[1].Base)) || slices.Contains(files, warmName("s", segs[0].Base)) {
		t.Fatalf("warm files of deleted segments left: %v", files)
	}
	wantExpired(t, e, "s", tiers.AllRecords(), 0, first)
	wantExpired(t, e, "s", fromTo(segs[1].Base, segs[1].Base), segs[1].Base, segs[1].Base+1)
	wantServed(t, e, "s", want[first:])
	rep := wantVerifyClean(t, e)
	if len(rep.Streams) != 1 || rep.Streams[0].First != first || rep.Streams[0].Next != 400 {
		t.Fatalf("verify covered %+v, want [%d, 400)", rep.Streams, first)
	}
	// Offsets are never reused.
	res, err := e.Append(ctx, "s", batch(1, 0))
	if err != nil || res.First != 400 {
		t.Fatalf("append after deletions got offset %d (%v), want 400", res.First, err)
	}

	// And all of it holds after a restart (nothing resident any more).
	e.Close(ctx)
	e = openClocked(t, dir, storeURL, clk)
	want = append(want, batch(1, 0)...)
	want[400].Offset = 400
	wantExpired(t, e, "s", tiers.AllRecords(), 0, first)
	wantServed(t, e, "s", want[first:])
}

// TestExecuteDeleteWarm: with no cold store, delete-warm tombstones and
// deletes in one action.
func TestExecuteDeleteWarm(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	dir := t.TempDir()
	e := openClocked(t, dir, "", clk)
	want := fill(t, e, "s", 300)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	clk.Advance(8 * 24 * time.Hour) // past warm.max_age
	mustExecute(t, e, policy.DeleteWarm, "s", segs[0].Base)
	if _, err := e.catalog.Segment(ctx, "s", segs[0].Base); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("catalog still has the deleted segment: %v", err)
	}
	if files := warmFiles(t, dir); slices.Contains(files, warmName("s", segs[0].Base)) || len(files) != len(segs)-1 {
		t.Fatalf("warm files after delete-warm: %v", files)
	}
	first := segs[1].Base
	wantExpired(t, e, "s", tiers.AllRecords(), 0, first)
	wantServed(t, e, "s", want[first:])
	if r, err := e.Retention(ctx, "s"); err != nil || r.First != first {
		t.Fatalf("retention: %+v %v", r, err)
	}
	wantVerifyClean(t, e)
	e.Close(ctx)

	e = openClocked(t, dir, "", clk)
	defer e.Close(ctx)
	wantExpired(t, e, "s", tiers.AllRecords(), 0, first)
	wantServed(t, e, "s", want[first:])
	wantVerifyClean(t, e)
}

// TestExecuteIsIdempotent runs each action twice in a row: the second run
// succeeds and changes nothing.
func TestExecuteIsIdempotent(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	dir := t.TempDir()
	_, storeURL := fileStore(t)
	e := openClocked(t, dir, storeURL, clk)
	defer e.Close(ctx)
	want := fill(t, e, "s", 300)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	base := segs[0].Base
	twice := func(kind policy.ActionKind) {
		t.Helper()
		for i := 1; i <= 2; i++ {
			if err := execute(e, kind, "s", base); err != nil {
				t.Fatalf("%s run %d: %v", kind, i, err)
			}
		}
	}
	evictThrough(t, e, "s", segs[0].SegmentMeta)
	wantPlacements(t, e, "s", base, tiers.Of(tiers.Warm))
	twice(policy.Upload)
	wantPlacements(t, e, "s", base, tiers.Of(tiers.Warm, tiers.Cold))
	if n := len(listObjects(t, storeURL)); n != 1 {
		t.Fatalf("%d objects after two uploads, want 1", n)
	}
	twice(policy.DropWarm)
	wantPlacements(t, e, "s", base, tiers.Of(tiers.Cold))
	wantServed(t, e, "s", want)

	clk.Advance(8 * 24 * time.Hour) // past cold.max_age
	mustExecute(t, e, policy.Tombstone, "s", base)
	tombAt := clk.Now()
	clk.Advance(30 * time.Minute)
	mustExecute(t, e, policy.Tombstone, "s", base)
	if m, err := e.catalog.Segment(ctx, "s", base); err != nil || !m.Tombstoned.Equal(tombAt) {
		t.Fatalf("a second tombstone moved the deletion clock: %v (%v), want %v", m.Tombstoned, err, tombAt)
	}
	clk.Advance(time.Hour)
	twice(policy.DeleteCold)
	if n := len(listObjects(t, storeURL)); n != 0 {
		t.Fatalf("%d objects after delete-cold", n)
	}
	wantExpired(t, e, "s", tiers.AllRecords(), 0, segs[1].Base)
	wantServed(t, e, "s", want[segs[1].Base:])
	wantVerifyClean(t, e)
}

// TestExecuteDeleteWarmTwice: delete-warm, like delete-cold, is done once
// its segment is gone; running it again is not a failure.
func TestExecuteDeleteWarmTwice(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := openClocked(t, t.TempDir(), "", clk)
	defer e.Close(ctx)
	want := fill(t, e, "s", 300)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	clk.Advance(8 * 24 * time.Hour) // past warm.max_age
	mustExecute(t, e, policy.DeleteWarm, "s", segs[0].Base)
	if err := execute(e, policy.DeleteWarm, "s", segs[0].Base); err != nil {
		t.Errorf("delete-warm of a segment already deleted: %v, want nil (delete-cold answers nil here)", err)
	}
	if err := execute(e, policy.DeleteCold, "s", segs[0].Base); err != nil {
		t.Errorf("delete-cold of a segment already deleted: %v", err)
	}
	wantExpired(t, e, "s", tiers.AllRecords(), 0, segs[1].Base)
	wantServed(t, e, "s", want[segs[1].Base:])
}

// fpCase is one failpoint at which an action is interrupted.
// TestFailedActionIsRecorded: a failed action leaves its error where
// explain finds it.
func TestFailedActionIsRecorded(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	_, storeURL := fileStore(t)
	e := openClocked(t, t.TempDir(), storeURL, clk)
	defer e.Close(ctx)
	fill(t, e, "s", 200)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	mustExecute(t, e, policy.Upload, "s", segs[1].Base)
	for _, c := range []struct {
		fp   string
		kind policy.ActionKind
		base uint64
	}{
		{failpoint.MoveAfterWrite, policy.Upload, segs[0].Base},
		{failpoint.MoveAfterCommit, policy.DropWarm, segs[1].Base},
	} {
		if err := failpoint.Enable(c.fp, "error"); err != nil {
			t.Fatal(err)
		}
		err := execute(e, c.kind, "s", c.base)
		failpoint.Disable(c.fp)
		if !errors.Is(err, failpoint.ErrInjected) {
			t.Fatalf("%s with %s armed: %v", c.kind, c.fp, err)
		}
		msg, _, attempts, ok, err := e.LastFailure(ctx, "s", c.base)
		if err != nil || !ok || !strings.Contains(msg, "injected") || attempts != 1 {
			t.Fatalf("%s failed at %s; last failure %q ×%d (%v %v)", c.kind, c.fp, msg, attempts, ok, err)
		}
	}
	// A success ends the failure history.
	mustExecute(t, e, policy.Upload, "s", segs[0].Base)
	mustExecute(t, e, policy.DropWarm, "s", segs[1].Base)
	for _, s := range segs[:2] {
		if msg, _, _, ok, _ := e.LastFailure(ctx, "s", s.Base); ok {
			t.Fatalf("segment %d keeps last failure %q after its action succeeded", s.Base, msg)
		}
	}
}

// TestExplainForecastsTheHotTier: memory has one owner. Explain's
// evict-hot is a forecast of the hot tier's own rule (hot.max_age since the
// seal): a second before it the segment is still resident after a pass of
// the hot tier, at it the pass evicts it, and no migrator run ever lists
// an eviction.
func TestExplainForecastsTheHotTier(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	cfg := testConfig("", time.Hour, 0, 0)
	e := open(t, t.TempDir(), func(o *Options) {
		o.Now = clk.Now
		o.SegmentMaxBytes = 8 << 10
		o.SegmentMaxAge = forever
		o.HotResidency = cfg.Policies[0].HotMaxAge // what tierd passes the hot tier
		o.Config = &cfg
	})
	defer e.Close(ctx)
	m, err := migrator.New(e, migrator.Options{Config: cfg, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	want := fill(t, e, "s", 100)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ex, err := m.Explain(ctx, "s")
	if err != nil || len(ex.Segments) < 2 {
		t.Fatalf("explain: %+v %v", ex, err)
	}
	for _, s := range ex.Segments {
		n := s.Next
		if n == nil || n.Kind != policy.EvictHot || !n.Due.Equal(s.Segment.SealedAt.Add(time.Hour)) || !strings.Contains(n.Reason, "hot.max_age 1h") ||
			!strings.Contains(n.Reason, "hot.max_bytes") {
			t.Fatalf("segment %d: next %+v, want evict-hot at seal + hot.max_age", s.Segment.Base, n)
		}
	}
	due := ex.Segments[0].Next.Due
	pass := func(at time.Time) {
		t.Helper()
		clk.Set(at)
		if rep, err := m.Run(ctx, "", false); err != nil || len(rep.Results) != 0 {
			t.Fatalf("run at %v: %+v %v, want nothing (no warm.max_age, and memory is the hot tier's)", at, rep.Results, err)
		}
		if err := e.Flush(ctx); err != nil { // a pass of the hot tier
			t.Fatal(err)
		}
	}
	pass(due.Add(-time.Second))
	wantPlacements(t, e, "s", ex.Segments[0].Segment.Base, tiers.Of(tiers.Hot, tiers.Warm))
	pass(due)
	for _, s := range sealedSegments(t, e, "s") {
		if s.Placements != tiers.Of(tiers.Warm) {
			t.Fatalf("at the forecast time segment %d is %v, want warm only", s.Base, s.Placements)
		}
	}
	wantServed(t, e, "s", want)
	ex, err = m.Explain(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ex.Segments {
		if s.Next != nil {
			t.Fatalf("segment %d out of memory, kept warm forever: next %+v, want none", s.Segment.Base, s.Next)
		}
	}
}

// TestMigratorDrivesLifecycle: with a fake clock, the hot tier takes
// segments out of memory at hot.max_age, and migrator runs take them
// warm → cold → deleted as the clock passes the policy's ages.
func TestMigratorDrivesLifecycle(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	dir := t.TempDir()
	storeDir, storeURL := fileStore(t)
	cfg := testConfig(storeURL, time.Hour, 24*time.Hour, 7*24*time.Hour)
	e := open(t, dir, func(o *Options) {
		o.Now = clk.Now
		o.SegmentMaxBytes = 8 << 10
		o.SegmentMaxAge = forever
		o.HotResidency = cfg.Policies[0].HotMaxAge // what tierd passes the hot tier
		o.Config = &cfg
		o.Cold = openCold(t, storeURL)
	})
	defer e.Close(ctx)
	m, err := migrator.New(e, migrator.Options{Config: cfg, Now: clk.Now, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := fill(t, e, "s", 300)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "s")
	n := len(segs)
	run := func(wantKind policy.ActionKind, wantN int) {
		t.Helper()
		rep, err := m.Run(ctx, "", false)
		if err != nil {
			t.Fatalf("run at %v: %v", clk.Now(), err)
		}
		got := 0
		for _, r := range rep.Results {
			if r.Err != "" {
				t.Fatalf("run at %v: %v failed: %s", clk.Now(), r.Action, r.Err)
			}
			if r.Action.Kind != wantKind {
				t.Fatalf("run at %v did %v, want only %v", clk.Now(), r.Action, wantKind)
			}
			got++
		}
		if got != wantN {
			t.Fatalf("run at %v did %d %v actions, want %d", clk.Now(), got, wantKind, wantN)
		}
	}
	everywhere := func(p tiers.Placements) {
		t.Helper()
		for _, s := range sealedSegments(t, e, "s") {
			if s.Placements != p {
				t.Fatalf("at %v segment %d is %v, want %v", clk.Now(), s.Base, s.Placements, p)
			}
		}
	}

	run(0, 0) // young: nothing to do
	everywhere(tiers.Of(tiers.Hot, tiers.Warm))
	wantServed(t, e, "s", want)

	clk.Set(t0.Add(2 * time.Hour))
	run(0, 0) // memory is the hot tier's: no migrator action evicts
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	everywhere(tiers.Of(tiers.Warm)) // the hot tier's pass evicted at hot.max_age
	wantServed(t, e, "s", want)
	run(0, 0)

	clk.Set(t0.Add(25 * time.Hour))
	run(policy.Upload, n)
	everywhere(tiers.Of(tiers.Warm, tiers.Cold))
	run(policy.DropWarm, n)
	everywhere(tiers.Of(tiers.Cold))
	run(0, 0)
	wantServed(t, e, "s", want)
	if files := warmFiles(t, dir); len(files) != 0 {
		t.Fatalf("warm files left after drop-warm: %v", files)
	}
	if keys := listObjects(t, storeURL); len(keys) != n {
		t.Fatalf("%d objects for %d segments", len(keys), n)
	}

	clk.Set(t0.Add(7*24*time.Hour + time.Minute))
	run(policy.Tombstone, n)
	wantExpired(t, e, "s", tiers.AllRecords(), 0, 300)
	wantVerifyClean(t, e)
	run(0, 0) // the delete delay has not passed
	if keys := listObjects(t, storeURL); len(keys) != n {
		t.Fatalf("objects removed before the delete delay: %d left", len(keys))
	}

	clk.Advance(2 * time.Hour)
	run(policy.DeleteCold, n)
	run(0, 0)
	if keys := listObjects(t, storeURL); len(keys) != 0 {
		t.Fatalf("objects left after deletion: %v", keys)
	}
	if n := countFiles(t, storeDir); n != 0 {
		t.Fatalf("%d files left in the cold store directory", n)
	}
	if segs := sealedSegments(t, e, "s"); len(segs) != 0 {
		t.Fatalf("segments left after deletion: %+v", segs)
	}
	wantExpired(t, e, "s", tiers.AllRecords(), 0, 300)
	if r, err := e.Retention(ctx, "s"); err != nil || r.First != 300 || r.Next != 300 {
		t.Fatalf("retention after deleting everything: %+v %v", r, err)
	}
	wantVerifyClean(t, e)
	res, err := e.Append(ctx, "s", batch(1, 0))
	if err != nil || res.First != 300 {
		t.Fatalf("append after deleting everything: offset %d (%v), want 300", res.First, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "catalog.db")); err != nil {
		t.Fatal(err)
	}
}
