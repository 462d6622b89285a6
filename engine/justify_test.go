package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/mover"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// keepForeverCfg is a configuration that keeps every segment forever, with
// the cold store storeURL ("" for none).
func keepForeverCfg(storeURL string) *policy.Config {
	cfg := testConfig(storeURL, 0, 0, 0)
	return &cfg
}

// justifyFixture is an engine over one stream "s" of several segments,
// every one uploaded to a file:// cold store (or, without one, warm only),
// whose configuration the test changes at will: the engine reads it
// through the pointer at each step, as tierd reads its own at start.
type justifyFixture struct {
	e        *Engine
	clk      *clock
	cfg      *policy.Config
	dir      string
	storeURL string
	segs     []SegmentInfo
}

func newJustifyFixture(t *testing.T, withCold bool) *justifyFixture {
	t.Helper()
	ctx := context.Background()
	f := &justifyFixture{clk: newClock(t0), dir: t.TempDir()}
	if withCold {
		_, f.storeURL = fileStore(t)
	}
	cfg := defaultConfig(f.storeURL)
	f.cfg = &cfg
	f.e = openClockedConfig(t, f.dir, f.storeURL, f.clk, f.cfg)
	t.Cleanup(func() { f.e.Close(ctx) })
	fill(t, f.e, "s", 300)
	if err := f.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.segs = sealedSegments(t, f.e, "s")
	if withCold {
		for _, s := range f.segs {
			mustExecute(t, f.e, policy.Upload, "s", s.Base)
		}
	}
	return f
}

// files lists every warm file and cold object.
func (f *justifyFixture) files(t *testing.T) []string {
	t.Helper()
	out := warmFiles(t, f.dir)
	if f.storeURL != "" {
		out = append(out, listObjects(t, f.storeURL)...)
	}
	return out
}

// wantRefused executes a and checks that it was refused: an error wrapping
// ErrRefused, no file or object removed, the segment as it was, and the
// refusal kept as the segment's last failure and reported by verify.
func (f *justifyFixture) wantRefused(t *testing.T, a policy.Action, why string) {
	t.Helper()
	ctx := context.Background()
	before := f.files(t)
	seg, segErr := f.e.catalog.Segment(ctx, a.Stream, a.Base)
	err := f.e.Execute(ctx, a)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("%v: %v, want a refusal (%s)", a, err, why)
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("%v: refusal %q does not say %q", a, err, why)
	}
	if after := f.files(t); !slices.Equal(after, before) {
		t.Fatalf("%v was refused, yet files changed from %v to %v", a, before, after)
	}
	if now, err := f.e.catalog.Segment(ctx, a.Stream, a.Base); segErr == nil && (err != nil || now.Tombstoned != seg.Tombstoned || now.Placements != seg.Placements) {
		t.Fatalf("%v was refused, yet the segment changed from %+v to %+v (%v)", a, seg, now, err)
	}
	msg, _, _, ok, err := f.e.LastFailure(ctx, a.Stream, a.Base)
	if err != nil || !ok || !strings.Contains(msg, why) {
		t.Fatalf("%v: last failure %q (%v, %v), want the refusal", a, msg, ok, err)
	}
	rep, err := f.e.Verify(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, fd := range rep.Findings {
		found = found || fd.Kind == api.FindingRefused && fd.Base == a.Base && strings.Contains(fd.Message, why)
	}
	if !found {
		t.Fatalf("%v: verify does not report the refusal: %+v", a, rep.Findings)
	}
}

// setConfig gives the engine a mover that justifies against cfg, as if
// the engine had been opened with it.
func (f *justifyFixture) setConfig(cfg *policy.Config) {
	e := f.e
	e.opts.Config = cfg
	e.mover = mover.New(mover.Options{Catalog: e.catalog, Warm: e.warm, Cold: e.cold, Hot: hotView{e}, Config: cfg, Logger: e.opts.Logger, Now: e.opts.Now})
}

func stale(kind policy.ActionKind, base uint64) policy.Action {
	return policy.Action{Kind: kind, Stream: "s", Base: base, Reason: "a stale or damaged plan"}
}

// TestTombstoneJustifies: a tombstone needs a policy with a cold.max_age
// that the segment has passed; anything else is refused and deletes
// nothing.
func TestTombstoneJustifies(t *testing.T) {
	f := newJustifyFixture(t, true)
	b := f.segs[0].Base
	f.clk.Advance(2 * 24 * time.Hour)
	f.wantRefused(t, stale(policy.Tombstone, b), "age 2d < cold.max_age 7d")
	f.clk.Advance(30 * 24 * time.Hour)
	*f.cfg = *keepForeverCfg(f.storeURL)
	f.wantRefused(t, stale(policy.Tombstone, b), "keeps cold segments forever")
	f.setConfig(nil)
	f.wantRefused(t, stale(policy.Tombstone, b), "no retention configuration")
	// Justified, it goes through, and a success clears the refusal.
	f.setConfig(f.cfg)
	*f.cfg = defaultConfig(f.storeURL)
	mustExecute(t, f.e, policy.Tombstone, "s", b)
	if _, _, _, ok, _ := f.e.LastFailure(context.Background(), "s", b); ok {
		t.Fatal("the refusal outlived a justified tombstone")
	}
}

// TestDeleteColdJustifies: removing the copies of a segment needs a
// tombstone that postdates its seal and is not in the future, the segment
// below the retention watermark, cold.delete_delay passed, and a policy
// that still deletes it.
func TestDeleteColdJustifies(t *testing.T) {
	ctx := context.Background()
	f := newJustifyFixture(t, true)
	b0, b1 := f.segs[0].Base, f.segs[1].Base
	f.clk.Advance(8 * 24 * time.Hour)
	// A plan made from a damaged or stale catalog asks to delete a live
	// segment: the one issue 10 saw deleted under keep-forever.
	f.wantRefused(t, stale(policy.DeleteCold, b1), "not tombstoned")
	mustExecute(t, f.e, policy.Tombstone, "s", b0)
	f.wantRefused(t, stale(policy.DeleteCold, b0), "cold.delete_delay")
	f.clk.Advance(2 * time.Hour)
	*f.cfg = *keepForeverCfg(f.storeURL)
	f.wantRefused(t, stale(policy.DeleteCold, b0), "does not delete it")
	// The tombstone the policy no longer justifies is a verify finding in
	// its own right.
	rep, err := f.e.Verify(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Findings, func(fd Finding) bool { return fd.Kind == api.FindingRetention && fd.Base == b0 }) {
		t.Fatalf("verify does not report the unjustified tombstone: %+v", rep.Findings)
	}
	*f.cfg = defaultConfig(f.storeURL)
	// A tombstone in the future (a clock that jumped, or damage) is refused.
	if _, err := f.e.catalog.Tombstone(ctx, "s", b1, f.clk.Now().Add(time.Hour), func(*tiers.SegmentMeta) error { return nil }); err != nil {
		t.Fatal(err)
	}
	f.wantRefused(t, stale(policy.DeleteCold, b1), "in the future")
	// Justified, both go, and the explain and status of a migrator show
	// no failure any more.
	mustExecute(t, f.e, policy.DeleteCold, "s", b0)
	f.clk.Advance(2 * time.Hour)
	mustExecute(t, f.e, policy.DeleteCold, "s", b1)
	if objs := listObjects(t, f.storeURL); len(objs) != len(f.segs)-2 {
		t.Fatalf("%d objects after two deletions of %d", len(objs), len(f.segs))
	}
}

// TestDeleteWarmJustifies: without a cold store, a delete-warm needs the
// configuration (and the engine) to really have none, and the policy's
// warm.max_age passed or local disk over warm.max_bytes.
func TestDeleteWarmJustifies(t *testing.T) {
	f := newJustifyFixture(t, false)
	b := f.segs[0].Base
	f.clk.Advance(2 * 24 * time.Hour)
	f.wantRefused(t, stale(policy.DeleteWarm, b), "local disk within warm.max_bytes")
	// A configuration that names a cold store uploads, never deletes.
	*f.cfg = defaultConfig("file:///nonexistent")
	f.clk.Advance(30 * 24 * time.Hour)
	f.wantRefused(t, stale(policy.DeleteWarm, b), "with a cold store configured")
	*f.cfg = defaultConfig("")
	// Over budget, a young segment may go.
	f.clk.Set(t0.Add(time.Hour))
	f.cfg.Warm.MaxBytes = 1
	mustExecute(t, f.e, policy.DeleteWarm, "s", b)
	wantExpired(t, f.e, "s", tiers.AllRecords(), 0, f.segs[1].Base)
}

// TestRefusalIsVisible: a refused step fails the migrator's action, shows
// in status and in explain, and verify reports it, until a later action on
// the segment succeeds.
func TestRefusalIsVisible(t *testing.T) {
	ctx := context.Background()
	f := newJustifyFixture(t, true)
	b := f.segs[0].Base
	f.clk.Advance(8 * 24 * time.Hour)
	// The migrator plans with a policy that deletes at 7 days; the engine
	// was started with one that keeps everything (the plan and the
	// execution disagree, as they do when a plan is made from a damaged
	// catalog).
	planCfg := defaultConfig(f.storeURL)
	*f.cfg = *keepForeverCfg(f.storeURL)
	m, err := migrator.New(f.e, migrator.Options{Config: planCfg, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	before := f.files(t)
	rep, err := m.Run(ctx, "s", false)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, r := range rep.Results {
		if r.Action.Kind == policy.Tombstone && strings.Contains(r.Err, "deletion refused") {
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("migrator run %+v: no refused tombstone", rep.Results)
	}
	if after := f.files(t); !slices.Equal(after, before) {
		t.Fatalf("refused run removed files: %v -> %v", before, after)
	}
	if st := m.Status(ctx); !slices.ContainsFunc(st.Failures, func(sf migrator.SegmentFailure) bool {
		return sf.Base == b && strings.Contains(sf.Err, "deletion refused")
	}) {
		t.Fatalf("status does not show the refusal: %+v", st.Failures)
	}
	ex, err := m.Explain(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if se := ex.Segments[0]; se.Failure == nil || !strings.Contains(se.Failure.Err, "deletion refused") {
		t.Fatalf("explain does not show the refusal: %+v", se)
	}
	vr, err := f.e.Verify(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(vr.Findings, func(fd Finding) bool { return fd.Kind == api.FindingRefused && fd.Base == b }) {
		t.Fatalf("verify does not report the refusal: %+v", vr.Findings)
	}
}

// TestInterruptedDeletionJustifiesAtOpen: a deletion interrupted by a crash
// is finished at start-up only if it is still justified.
func TestInterruptedDeletionJustifiesAtOpen(t *testing.T) {
	ctx := context.Background()
	f := newJustifyFixture(t, true)
	b := f.segs[0].Base
	f.clk.Advance(8 * 24 * time.Hour)
	mustExecute(t, f.e, policy.Tombstone, "s", b)
	f.clk.Advance(2 * time.Hour)
	if err := f.e.catalog.PutIntent(ctx, catalog.Intent{Stream: "s", Base: b, Kind: catalog.IntentDeleteCold, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	f.e.Close(ctx)
	before := f.files(t)
	*f.cfg = *keepForeverCfg(f.storeURL)
	f.e = openClockedConfig(t, f.dir, f.storeURL, f.clk, f.cfg)
	if after := f.files(t); !slices.Equal(after, before) {
		t.Fatalf("start-up finished an unjustified deletion: %v -> %v", before, after)
	}
	if _, ok, _ := f.e.catalog.Intent(ctx, "s", b); !ok {
		t.Fatal("the intent of the unjustified deletion is gone")
	}
	msg, _, _, ok, _ := f.e.LastFailure(ctx, "s", b)
	if !ok || !strings.Contains(msg, "deletion refused") {
		t.Fatalf("last failure %q, want the refusal", msg)
	}
	// With the policy back, the next start finishes it.
	f.e.Close(ctx)
	*f.cfg = defaultConfig(f.storeURL)
	f.e = openClockedConfig(t, f.dir, f.storeURL, f.clk, f.cfg)
	if _, err := f.e.catalog.Segment(ctx, "s", b); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("the justified deletion was not finished at start-up: %v", err)
	}
}

// TestDropWarmNeedsASoundColdCopy: the warm copy of a segment placed cold
// is removed only while its cold object is there and is the segment, by
// drop-warm or at start-up; else it stays, and verify says that it may be
// the only copy.
func TestDropWarmNeedsASoundColdCopy(t *testing.T) {
	ctx := context.Background()
	f := newJustifyFixture(t, true)
	b := f.segs[0].Base
	obj := f.e.cold.Objects(ctx, "s")
	var key string
	for o, err := range obj {
		if err != nil {
			t.Fatal(err)
		}
		if o.Base == b {
			key = o.Key
		}
	}
	storeDir := strings.TrimPrefix(f.storeURL, "file://")
	if err := os.Remove(filepath.Join(storeDir, key)); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(25 * time.Hour)
	f.wantRefused(t, stale(policy.DropWarm, b), "cold copy, the one that would remain, is not sound")

	// A catalog that says the segment moved to cold while its object is
	// gone: start-up keeps the warm file, and verify calls it a lost
	// segment, not an orphan to delete.
	if _, err := f.e.catalog.UpdateSegment(ctx, "s", b, func(m *tiers.SegmentMeta) error { m.Placements = tiers.Of(tiers.Cold); return nil }); err != nil {
		t.Fatal(err)
	}
	f.e.Close(ctx)
	f.e = openClockedConfig(t, f.dir, f.storeURL, f.clk, f.cfg)
	if !slices.Contains(warmFiles(t, f.dir), warmName("s", b)) {
		t.Fatal("start-up removed the warm copy of a segment whose cold copy is gone")
	}
	rep, err := f.e.Verify(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Findings, func(fd Finding) bool {
		return fd.Kind == api.FindingLostSegment && fd.Tier == "warm" && fd.From == b && fd.To == f.segs[0].Last+1
	}) {
		t.Fatalf("verify: %+v; want the warm file reported as a lost segment", rep.Findings)
	}
}
