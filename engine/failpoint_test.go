package engine

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

type fpCase struct {
	name string
	fp   string
	cold bool // the engine has a cold store
	// old: the target is the first of the old segments (deleted by the
	// end), else the first of the young ones (kept).
	old bool
	// prep brings the target to where the action starts, with nothing armed.
	prep func(t *testing.T, e *Engine, clk *clock, base uint64)
	act  func(e *Engine, base uint64) error
}

func act(kind policy.ActionKind) func(*Engine, uint64) error {
	return func(e *Engine, base uint64) error { return execute(e, kind, "s", base) }
}

func offloadMove(e *Engine, base uint64) error {
	_, err := e.Offload(context.Background(), "s", base, false)
	return err
}

func prepUpload(t *testing.T, e *Engine, clk *clock, base uint64) {
	mustExecute(t, e, policy.Upload, "s", base)
}

// Times of the failpoint scenario: old segments seal at t0, young ones at
// t0+3d. At moveAt the young are due for upload (warm.max_age 24h); at
// deleteAt the old are due for deletion (cold.max_age 7d), the young not.
var (
	youngAt  = t0.Add(72 * time.Hour)
	moveAt   = youngAt.Add(25 * time.Hour)
	deleteAt = t0.Add(8 * 24 * time.Hour)
)

// TestFailpointsConverge interrupts each step of the move and delete
// protocols with an injected failure, restarts the engine (start-up
// settles what was left) and runs the plan until nothing is planned: every
// record is then served exactly once or reported expired, each cold segment
// has exactly one object, no warm file is left for a segment not placed
// warm, no intent is left, and verify is clean.
func TestFailpointsConverge(t *testing.T) {
	cases := []fpCase{
		{name: "upload/after-write", fp: failpoint.MoveAfterWrite, cold: true, act: act(policy.Upload)},
		{name: "upload/after-verify", fp: failpoint.MoveAfterVerify, cold: true, act: act(policy.Upload)},
		{name: "upload/after-commit", fp: failpoint.MoveAfterCommit, cold: true, act: act(policy.Upload)},
		{name: "offload/after-write", fp: failpoint.MoveAfterWrite, cold: true, act: offloadMove},
		{name: "offload/after-verify", fp: failpoint.MoveAfterVerify, cold: true, act: offloadMove},
		{name: "offload/after-commit", fp: failpoint.MoveAfterCommit, cold: true, act: offloadMove},
		{name: "offload/after-remove", fp: failpoint.MoveAfterRemove, cold: true, act: offloadMove},
		{name: "drop-warm/after-commit", fp: failpoint.MoveAfterCommit, cold: true, prep: prepUpload, act: act(policy.DropWarm)},
		{name: "drop-warm/after-remove", fp: failpoint.MoveAfterRemove, cold: true, prep: prepUpload, act: act(policy.DropWarm)},
		{name: "tombstone/after-tombstone", fp: failpoint.DeleteAfterTombstone, cold: true, old: true, prep: prepUpload, act: act(policy.Tombstone)},
		{name: "delete-cold/after-remove", fp: failpoint.DeleteAfterRemove, cold: true, old: true,
			prep: func(t *testing.T, e *Engine, clk *clock, base uint64) {
				mustExecute(t, e, policy.Upload, "s", base) // warm and cold: both go
				mustExecute(t, e, policy.Tombstone, "s", base)
				clk.Advance(2 * time.Hour)
			},
			act: act(policy.DeleteCold)},
		{name: "delete-cold-of-cold-only/after-remove", fp: failpoint.DeleteAfterRemove, cold: true, old: true,
			prep: func(t *testing.T, e *Engine, clk *clock, base uint64) {
				mustExecute(t, e, policy.Upload, "s", base)
				mustExecute(t, e, policy.DropWarm, "s", base)
				mustExecute(t, e, policy.Tombstone, "s", base)
				clk.Advance(2 * time.Hour)
			},
			act: act(policy.DeleteCold)},
		{name: "delete-cold-after-failed-upload/after-remove", fp: failpoint.DeleteAfterRemove, cold: true, old: true,
			prep: func(t *testing.T, e *Engine, clk *clock, base uint64) {
				// An upload that wrote its object and failed, never retried:
				// its intent is superseded by the deletion, its object removed.
				if err := failpoint.Enable(failpoint.MoveAfterWrite, "error"); err != nil {
					t.Fatal(err)
				}
				err := execute(e, policy.Upload, "s", base)
				failpoint.Disable(failpoint.MoveAfterWrite)
				if !errors.Is(err, failpoint.ErrInjected) {
					t.Fatalf("upload with %s armed: %v", failpoint.MoveAfterWrite, err)
				}
				mustExecute(t, e, policy.Tombstone, "s", base)
				clk.Advance(2 * time.Hour)
			},
			act: act(policy.DeleteCold)},
		{name: "delete-warm/after-tombstone", fp: failpoint.DeleteAfterTombstone, old: true, act: act(policy.DeleteWarm)},
		{name: "delete-warm/after-remove", fp: failpoint.DeleteAfterRemove, old: true, act: act(policy.DeleteWarm)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runFailpointCase(t, c) })
	}
}

func runFailpointCase(t *testing.T, c fpCase) {
	ctx := context.Background()
	clk := newClock(t0)
	dir := t.TempDir()
	storeDir, storeURL := "", ""
	var cfg policy.Config
	if c.cold {
		storeDir, storeURL = fileStore(t)
		cfg = testConfig(storeURL, time.Hour, 24*time.Hour, 7*24*time.Hour)
	} else {
		cfg = testConfig("", time.Hour, 7*24*time.Hour, 0)
	}
	e := openClocked(t, dir, storeURL, clk)
	closed := false
	defer func() {
		if !closed {
			e.Close(ctx)
		}
	}()
	fill(t, e, "s", 200)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	old := sealedSegments(t, e, "s")
	clk.Set(youngAt)
	young := fill(t, e, "s", 200)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	youngSegs := sealedSegments(t, e, "s")[len(old):]
	if len(old) < 2 || len(youngSegs) < 2 {
		t.Fatalf("want at least 2 old and 2 young segments, got %d and %d", len(old), len(youngSegs))
	}
	target := youngSegs[0]
	clk.Set(moveAt)
	if c.old {
		target = old[0]
		clk.Set(deleteAt)
	}
	if c.prep != nil {
		c.prep(t, e, clk, target.Base)
	}

	if err := failpoint.Enable(c.fp, "error"); err != nil {
		t.Fatal(err)
	}
	defer failpoint.Disable(c.fp)
	err := c.act(e, target.Base)
	if !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("action with %s armed: %v, want the injected failure", c.fp, err)
	}
	// The crash: stop, disarm, start again.
	closed = true
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	failpoint.Disable(c.fp)
	e = openClocked(t, dir, storeURL, clk)
	closed = false

	if clk.Now().Before(deleteAt) {
		clk.Set(deleteAt)
	}
	settle(t, e, cfg, clk.Now())
	clk.Advance(2 * time.Hour) // past cold.delete_delay
	settle(t, e, cfg, clk.Now())

	// The old segments are gone, the young ones are where the policy says.
	wantTier := tiers.Of(tiers.Warm)
	if c.cold {
		wantTier = tiers.Of(tiers.Cold)
	}
	segs := sealedSegments(t, e, "s")
	if len(segs) != len(youngSegs) {
		t.Fatalf("%d segments listed after convergence, want the %d young ones", len(segs), len(youngSegs))
	}
	for i, s := range segs {
		if s.Base != youngSegs[i].Base || s.Last != youngSegs[i].Last || s.Digest != youngSegs[i].Digest {
			t.Fatalf("segment %d is [%d, %d], want [%d, %d] with the same digest", i, s.Base, s.Last, youngSegs[i].Base, youngSegs[i].Last)
		}
		if s.Placements != wantTier {
			t.Fatalf("segment %d placed %v, want %v", s.Base, s.Placements, wantTier)
		}
	}
	first := youngSegs[0].Base
	wantExpired(t, e, "s", tiers.AllRecords(), 0, first)
	wantServed(t, e, "s", young)
	if r, err := e.Retention(ctx, "s"); err != nil || r.First != first {
		t.Fatalf("retention: %+v %v, want first %d", r, err, first)
	}

	var wantObjects, wantWarm []string
	for _, s := range youngSegs {
		if c.cold {
			wantObjects = append(wantObjects, cold.ObjectKey(s.SegmentMeta))
		} else {
			wantWarm = append(wantWarm, warmName("s", s.Base))
		}
	}
	if c.cold {
		slices.Sort(wantObjects)
		if keys := listObjects(t, storeURL); !slices.Equal(keys, wantObjects) {
			t.Fatalf("objects %v, want exactly %v", keys, wantObjects)
		}
		if n := countFiles(t, storeDir); n != len(wantObjects) {
			t.Fatalf("%d files in the cold store directory for %d objects", n, len(wantObjects))
		}
	}
	if files := warmFiles(t, dir); !slices.Equal(files, wantWarm) {
		t.Fatalf("warm files %v, want %v", files, wantWarm)
	}
	if in, err := e.catalog.Intents(ctx); err != nil || len(in) != 0 {
		t.Fatalf("intents left: %+v %v", in, err)
	}
	rep := wantVerifyClean(t, e)
	if rep.WarmFiles != len(wantWarm) || rep.ColdObjects != len(wantObjects) {
		t.Fatalf("verify looked at %d warm files and %d objects, want %d and %d", rep.WarmFiles, rep.ColdObjects, len(wantWarm), len(wantObjects))
	}
	// Settled means explain shows no error: a move that start-up finished
	// is a success.
	for _, s := range append(old, youngSegs...) {
		if msg, _, _, ok, err := e.LastFailure(ctx, "s", s.Base); ok || err != nil {
			t.Errorf("segment %d keeps a last error after convergence: %q (%v)", s.Base, msg, err)
		}
	}
}
