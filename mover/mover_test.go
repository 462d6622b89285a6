package mover

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
	"github.com/tierd/tierd/warm"
)

// The tests here run the move protocol with no hot tier: a real bbolt
// catalog, a real warm store and a real file-backed cold store, segments
// written to warm and committed to the catalog as the engine's persister
// would.

// t0 is when the tests' segments seal.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// clock is a clock the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is a mover over real stores in a temporary directory.
type fixture struct {
	dir     string
	coldDir string
	clk     *clock
	cfg     *policy.Config
	cat     *catalog.Catalog
	warm    *warm.Store
	cold    *cold.Tier // nil without a cold store
	mv      *Mover
}

// newFixture opens the stores; withCold adds a file cold store and a
// configuration that uploads at 1d and deletes at 7d (without, deletes
// from warm at 7d).
func newFixture(t *testing.T, withCold bool) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), clk: &clock{now: t0}}
	cfg := policy.Default()
	cfg.Cold.Store = policy.StoreNone
	cfg.Cold.DeleteDelay = time.Hour
	cfg.Policies = []policy.Policy{{Name: "test", Streams: []string{"*"}, HotMaxAge: time.Hour, WarmMaxAge: 7 * 24 * time.Hour}}
	var err error
	if f.cat, err = catalog.Open(filepath.Join(f.dir, "catalog.db"), catalog.Options{Now: f.clk.Now}); err != nil {
		t.Fatal(err)
	}
	if f.warm, err = warm.Open(filepath.Join(f.dir, "warm"), warm.Options{}); err != nil {
		t.Fatal(err)
	}
	if withCold {
		f.coldDir = filepath.Join(f.dir, "cold")
		storeURL := (&url.URL{Scheme: "file", Path: f.coldDir}).String()
		cfg.Cold.Store = storeURL
		cfg.Policies[0].WarmMaxAge = 24 * time.Hour
		cfg.Policies[0].ColdMaxAge = 7 * 24 * time.Hour
		b, err := objstore.Open(context.Background(), storeURL, objstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if f.cold, err = cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir(), RowGroupRows: 64}); err != nil {
			t.Fatal(err)
		}
	}
	f.cfg = &cfg
	f.mv = f.newMover()
	t.Cleanup(func() {
		f.warm.Close()
		f.cat.Close()
		if f.cold != nil {
			f.cold.Close()
		}
	})
	return f
}

// newMover returns a mover over the fixture's stores, as after a restart.
func (f *fixture) newMover() *Mover {
	o := Options{Catalog: f.cat, Warm: f.warm, Config: f.cfg, Now: f.clk.Now}
	if f.cold != nil {
		o.Cold = f.cold
	}
	return New(o)
}

// put writes segment [base, base+n) of stream to warm and commits it to the
// catalog, sealed at sealed.
func (f *fixture) put(t *testing.T, stream string, base uint64, n int, sealed time.Time) tiers.SegmentMeta {
	t.Helper()
	w, err := f.warm.Create(stream, base)
	if err != nil {
		t.Fatal(err)
	}
	w.SetSealedAt(sealed)
	for i := range n {
		r := tiers.Record{Offset: base + uint64(i), TS: sealed.Add(-time.Minute).UnixNano() + int64(i), Key: fmt.Sprintf("k%d", i), Value: []byte(fmt.Sprintf("value %d", i))}
		if err := w.Append(&r); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m.Stream, m.SealedAt, m.Placements = stream, sealed, tiers.Of(tiers.Warm)
	if err := f.cat.PutSegment(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) segment(t *testing.T, stream string, base uint64) tiers.SegmentMeta {
	t.Helper()
	m, err := f.cat.Segment(context.Background(), stream, base)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) warmExists(stream string, base uint64) bool {
	_, err := os.Stat(f.warm.Path(stream, base))
	return err == nil
}

func (f *fixture) coldObjects(t *testing.T) int {
	t.Helper()
	n := 0
	filepath.WalkDir(f.coldDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".parquet" {
			n++
		}
		return nil
	})
	return n
}

// TestOffloadWithoutHotTier: an offload uploads, verifies, commits and
// removes the warm file; repeating it changes nothing; a segment the
// catalog does not have is not found (no hot tier to say it is in memory).
func TestOffloadWithoutHotTier(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	m := f.put(t, "s", 0, 100, t0)
	got, err := f.mv.Offload(ctx, "s", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Placements != tiers.Of(tiers.Cold) || got.ColdBytes <= 0 {
		t.Fatalf("after offload: %v, %d cold bytes; want cold only", got.Placements, got.ColdBytes)
	}
	if f.warmExists("s", 0) {
		t.Fatal("the warm file outlived the offload")
	}
	if size, err := f.cold.Check(ctx, got); err != nil || size != got.ColdBytes {
		t.Fatalf("cold copy: %d bytes, %v; want %d", size, err, got.ColdBytes)
	}
	if _, err := f.mv.Offload(ctx, "s", 0, false); err != nil {
		t.Fatalf("repeated offload: %v", err)
	}
	if n := f.coldObjects(t); n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
	if in, _ := f.cat.Intents(ctx); len(in) != 0 {
		t.Fatalf("intents left: %+v", in)
	}
	if _, err := f.mv.Offload(ctx, "s", m.Last+1, false); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("offload of a missing segment: %v, want ErrSegmentNotFound", err)
	}
	if f.mv.locks.Len() != 0 {
		t.Fatal("the lock table kept finished moves")
	}
}

// TestOffloadWithoutColdTier is ErrNoColdTier, and a failure record for
// nothing.
func TestOffloadWithoutColdTier(t *testing.T) {
	f := newFixture(t, false)
	f.put(t, "s", 0, 10, t0)
	if _, err := f.mv.Offload(context.Background(), "s", 0, false); !errors.Is(err, ErrNoColdTier) {
		t.Fatalf("offload without a cold store: %v", err)
	}
}

// TestRecoverUploads: an upload intent whose object was written is
// committed at start-up (warm kept); one whose object was not is rolled
// back.
func TestRecoverUploads(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	written, notWritten := f.put(t, "s", 0, 50, t0), f.put(t, "s", 50, 50, t0)
	for _, m := range []tiers.SegmentMeta{written, notWritten} {
		if err := f.cat.PutIntent(ctx, catalog.Intent{Stream: "s", Base: m.Base, Kind: catalog.IntentUpload, Key: cold.ObjectKey(m)}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := f.warm.Acquire("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.cold.Upload(ctx, written, r.Scan(tiers.AllRecords()))
	r.Release()
	if err != nil { // then the crash
		t.Fatal(err)
	}
	if err := f.newMover().Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if in, _ := f.cat.Intents(ctx); len(in) != 0 {
		t.Fatalf("intents left after recovery: %+v", in)
	}
	if m := f.segment(t, "s", 0); m.Placements != tiers.Of(tiers.Warm, tiers.Cold) || m.ColdBytes <= 0 {
		t.Fatalf("interrupted upload with its object: %v", m.Placements)
	}
	if m := f.segment(t, "s", 50); m.Placements != tiers.Of(tiers.Warm) {
		t.Fatalf("interrupted upload without its object: %v", m.Placements)
	}
}

// interruptDrop copies segment s/base to cold, then drops its warm copy
// with the failpoint move/after-commit armed: the drop stops after its
// catalog commit, before the file goes.
func (f *fixture) interruptDrop(t *testing.T, base uint64) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.mv.Offload(ctx, "s", base, true); err != nil {
		t.Fatal(err)
	}
	if err := failpoint.Enable(failpoint.MoveAfterCommit, "error"); err != nil {
		t.Fatal(err)
	}
	err := f.mv.Execute(ctx, policy.Action{Kind: policy.DropWarm, Stream: "s", Base: base})
	failpoint.Disable(failpoint.MoveAfterCommit)
	if !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("drop-warm with the failpoint: %v", err)
	}
}

// TestDropWarmCrashAfterCommit: a warm drop interrupted after its commit
// (failpoint move/after-commit) leaves its intent and file; recovery at
// start-up removes the file and clears the intent; RecoverWarm then finds
// nothing to remove.
func TestDropWarmCrashAfterCommit(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	f.put(t, "s", 0, 50, t0)
	f.interruptDrop(t, 0)
	if !f.warmExists("s", 0) {
		t.Fatal("the failpoint did not stop the drop before the file went")
	}
	if in, _, _ := f.cat.Intent(ctx, "s", 0); in.Kind != catalog.IntentDropWarm {
		t.Fatalf("intent after the interrupted drop: %+v", in)
	}
	mv := f.newMover()
	if err := mv.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if f.warmExists("s", 0) {
		t.Fatal("recovery left the dropped warm file")
	}
	if in, _ := f.cat.Intents(ctx); len(in) != 0 {
		t.Fatalf("intents left: %+v", in)
	}
	if _, had, _ := f.cat.LastError(ctx, "s", 0); had {
		t.Fatal("the finished drop left a failure record")
	}
	next, err := mv.RecoverWarm(ctx)
	if err != nil || next["s"] != 50 {
		t.Fatalf("RecoverWarm: %v %v", next, err)
	}
}

// TestRetentionLifecycle: with the clock past cold.max_age, a tombstone
// then (after cold.delete_delay) delete-cold removes the object and the
// catalog entry; before the delay, the removal is refused, recorded, and
// deletes nothing.
func TestRetentionLifecycle(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	f.put(t, "s", 0, 50, t0)
	f.put(t, "s", 50, 50, t0)
	if _, err := f.mv.Offload(ctx, "s", 0, false); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(8 * 24 * time.Hour)
	if err := f.mv.Execute(ctx, policy.Action{Kind: policy.Tombstone, Stream: "s", Base: 0}); err != nil {
		t.Fatal(err)
	}
	err := f.mv.Execute(ctx, policy.Action{Kind: policy.DeleteCold, Stream: "s", Base: 0})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("delete-cold before cold.delete_delay: %v, want ErrRefused", err)
	}
	if fl, had, _ := f.cat.LastError(ctx, "s", 0); !had || !fl.Refused {
		t.Fatalf("the refusal is not recorded: %+v %v", fl, had)
	}
	if n := f.coldObjects(t); n != 1 {
		t.Fatalf("a refused deletion removed the object (%d left)", n)
	}
	f.clk.Advance(2 * time.Hour)
	if err := f.mv.Execute(ctx, policy.Action{Kind: policy.DeleteCold, Stream: "s", Base: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cat.Segment(ctx, "s", 0); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("deleted segment still catalogued: %v", err)
	}
	if n := f.coldObjects(t); n != 0 {
		t.Fatalf("%d objects left after the deletion", n)
	}
	if _, had, _ := f.cat.LastError(ctx, "s", 0); had {
		t.Fatal("the deleted segment kept its failure record")
	}
	if m := f.segment(t, "s", 50); !m.Tombstoned.IsZero() || !f.warmExists("s", 50) {
		t.Fatal("the segment above the deleted one was touched")
	}
}

// TestPlanInputWithoutHotTier lists the catalogued segments, none hot, and
// marks one in flight while its move lock is held.
func TestPlanInputWithoutHotTier(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	f.put(t, "a", 0, 10, t0)
	f.put(t, "b", 0, 10, t0)
	unlock := f.mv.Lock("b", 0)
	segs, err := f.mv.PlanInput(ctx, "")
	unlock()
	if err != nil || len(segs) != 2 {
		t.Fatalf("plan input: %+v %v", segs, err)
	}
	for _, s := range segs {
		if s.Placements.Has(tiers.Hot) || s.InFlight != (s.Stream == "b") {
			t.Fatalf("segment %s/%d: %v in flight %v", s.Stream, s.Base, s.Placements, s.InFlight)
		}
	}
	if _, err := f.mv.PlanInput(ctx, "nosuch"); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("plan input of an unknown stream: %v", err)
	}
}

// wantRefused executes a and checks the refusal: an error wrapping
// ErrRefused that says why, the segment and its files as they were, and
// the refusal recorded as such.
func (f *fixture) wantRefused(t *testing.T, mv *Mover, a policy.Action, why string) {
	t.Helper()
	ctx := context.Background()
	before, _ := f.cat.Segment(ctx, a.Stream, a.Base)
	warmBefore, objsBefore := f.warmExists(a.Stream, a.Base), f.coldObjects(t)
	err := mv.Execute(ctx, a)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), why) {
		t.Fatalf("%v: %v, want a refusal saying %q", a.Kind, err, why)
	}
	after, _ := f.cat.Segment(ctx, a.Stream, a.Base)
	if after.Placements != before.Placements || !after.Tombstoned.Equal(before.Tombstoned) ||
		f.warmExists(a.Stream, a.Base) != warmBefore || f.coldObjects(t) != objsBefore {
		t.Fatalf("%v was refused, yet the segment changed: %+v -> %+v", a.Kind, before, after)
	}
	if fl, had, _ := f.cat.LastError(ctx, a.Stream, a.Base); !had || !fl.Refused || !strings.Contains(fl.Err, why) {
		t.Fatalf("%v: record %+v (%v), want the refusal", a.Kind, fl, had)
	}
}

// TestDeletionsJustifyThemselves: a tombstone, a delete-cold and a
// delete-warm that the configuration and the clock do not call for are
// refused when they execute, whatever the plan said.
func TestDeletionsJustifyThemselves(t *testing.T) {
	act := func(kind policy.ActionKind, base uint64) policy.Action {
		return policy.Action{Kind: kind, Stream: "s", Base: base, Reason: "a stale or damaged plan"}
	}
	t.Run("cold", func(t *testing.T) {
		f := newFixture(t, true)
		ctx := context.Background()
		f.put(t, "s", 0, 50, t0)
		f.put(t, "s", 50, 50, t0)
		f.clk.Advance(2 * 24 * time.Hour)
		f.wantRefused(t, f.mv, act(policy.Tombstone, 0), "age 2d < cold.max_age 7d")
		f.wantRefused(t, f.mv, act(policy.DeleteCold, 50), "not tombstoned")
		f.clk.Advance(8 * 24 * time.Hour)
		noConfig := New(Options{Catalog: f.cat, Warm: f.warm, Cold: f.cold, Now: f.clk.Now})
		f.wantRefused(t, noConfig, act(policy.Tombstone, 0), "no retention configuration")
		keep := *f.cfg
		keep.Policies = []policy.Policy{{Name: "keep", Streams: []string{"*"}}}
		*f.cfg, keep = keep, *f.cfg
		f.wantRefused(t, f.mv, act(policy.Tombstone, 0), "keeps cold segments forever")
		*f.cfg = keep
		if err := f.mv.Execute(ctx, act(policy.Tombstone, 0)); err != nil {
			t.Fatal(err)
		}
		if _, had, _ := f.cat.LastError(ctx, "s", 0); had {
			t.Fatal("the refusal outlived a justified tombstone")
		}
		// A tombstone in the future (a clock that jumped, or damage).
		if _, err := f.cat.Tombstone(ctx, "s", 50, f.clk.Now().Add(time.Hour), func(*tiers.SegmentMeta) error { return nil }); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(30 * time.Minute)
		f.wantRefused(t, f.mv, act(policy.DeleteCold, 50), "in the future")
	})
	t.Run("warm", func(t *testing.T) {
		f := newFixture(t, false)
		f.put(t, "s", 0, 50, t0)
		f.clk.Advance(2 * 24 * time.Hour)
		f.wantRefused(t, f.mv, act(policy.DeleteWarm, 0), "local disk within warm.max_bytes")
		f.cfg.Cold.Store = "file:///nonexistent"
		f.clk.Advance(30 * 24 * time.Hour)
		f.wantRefused(t, f.mv, act(policy.DeleteWarm, 0), "with a cold store configured")
		f.cfg.Cold.Store = policy.StoreNone
		if err := f.mv.Execute(context.Background(), act(policy.DeleteWarm, 0)); err != nil {
			t.Fatal(err)
		}
		if f.warmExists("s", 0) {
			t.Fatal("a justified delete-warm left the file")
		}
	})
}

// TestSettleFinishesAWarmDrop: a warm drop whose file removal failed after
// its commit is not planned again; Settle, which the migrator calls before
// each run, finishes it while tierd runs.
func TestSettleFinishesAWarmDrop(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	f.put(t, "s", 0, 50, t0)
	f.interruptDrop(t, 0)
	if fl, had, _ := f.cat.LastError(ctx, "s", 0); !had || fl.Refused {
		t.Fatalf("the failed drop is not recorded: %+v %v", fl, had)
	}
	if err := f.mv.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	if f.warmExists("s", 0) {
		t.Fatal("Settle left the dropped warm file")
	}
	if in, _ := f.cat.Intents(ctx); len(in) != 0 {
		t.Fatalf("intents left after Settle: %+v", in)
	}
	if _, had, _ := f.cat.LastError(ctx, "s", 0); had {
		t.Fatal("the settled drop kept its failure record")
	}
}
