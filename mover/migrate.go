package mover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// This file makes the Mover the migrator's executor (migrator.Executor):
// it hands the planner every durable segment and performs each planned
// action with the move protocol of docs/architecture.md. Every action is
// safe to repeat after a crash at any point, and Open finishes or rolls
// back what a crash interrupted (Recover).

// PlanInput returns every durable segment of stream (of every stream when
// stream is ""), as the planner sees it: the catalog entry, Hot added when
// the segment is also resident in memory, and InFlight while a move of it
// runs. Segments only in memory (sealed, not yet persisted) are the
// flusher's, not the planner's, and are left out.
func (mv *Mover) PlanInput(ctx context.Context, stream string) ([]policy.Segment, error) {
	names := []string{stream}
	if stream == "" {
		cs, err := mv.cat.Streams(ctx)
		if err != nil {
			return nil, fmt.Errorf("engine: plan input: %w", err)
		}
		names = names[:0]
		for _, s := range cs {
			names = append(names, s.Name)
		}
	} else if err := tiers.ValidateStreamName(stream); err != nil {
		return nil, err
	}
	var out []policy.Segment
	for _, name := range names {
		metas, err := mv.cat.Segments(ctx, name)
		if errors.Is(err, tiers.ErrStreamNotFound) {
			if _, known := mv.resident(name); stream != "" && known {
				continue // a stream with nothing persisted yet
			}
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("engine: plan input: %w", err)
		}
		bases, _ := mv.resident(name)
		for _, m := range metas {
			if slices.Contains(bases, m.Base) {
				m.Placements = m.Placements.With(tiers.Hot)
			}
			out = append(out, policy.Segment{SegmentMeta: m, InFlight: mv.Busy(name, m.Base)})
		}
	}
	return out, nil
}

// Execute performs one planned action (migrator.Executor). A failure is
// recorded as the segment's last error in the catalog, where explain finds
// it after a restart too.
func (mv *Mover) Execute(ctx context.Context, a policy.Action) error {
	if err := tiers.ValidateStreamName(a.Stream); err != nil {
		return err
	}
	var err error
	switch a.Kind {
	case policy.Upload:
		_, err = mv.Offload(ctx, a.Stream, a.Base, true)
		return err // Offload records its own failures
	case policy.DropWarm:
		err = mv.dropWarm(ctx, a.Stream, a.Base)
	case policy.DeleteWarm, policy.Tombstone:
		by := byColdAge
		if a.Kind == policy.DeleteWarm {
			by = byWarm
		}
		var done []tiers.SegmentMeta
		done, err = mv.tombstone(ctx, a.Stream, a.Base, by)
		if errors.Is(err, tiers.ErrSegmentNotFound) {
			return nil // deleted already: a repeated action
		}
		if err == nil && a.Kind == policy.DeleteWarm {
			// No cold store, so nothing to wait for: a reader that located
			// a segment before the tombstone keeps its warm mapping. The
			// live segments below it were tombstoned with it (oldest
			// first) and go now too.
			for _, m := range done {
				if m.Base != a.Base {
					if err = mv.deleteSegment(ctx, a.Stream, m.Base, false); err != nil {
						break
					}
				}
			}
			if err == nil {
				err = mv.deleteSegment(ctx, a.Stream, a.Base, false)
			}
		}
	case policy.DeleteCold:
		err = mv.deleteSegment(ctx, a.Stream, a.Base, true)
	default:
		// EvictHot among them: memory is the hot tier's alone. Nothing
		// was tried, so there is no failure to record.
		return fmt.Errorf("engine: %v is not a move", a.Kind)
	}
	switch {
	case err == nil:
		// A success ends the segment's failure history (explain shows it
		// until then); look before writing, it is rarely there.
		if _, had, lerr := mv.cat.LastError(ctx, a.Stream, a.Base); lerr == nil && had {
			if cerr := mv.cat.ClearFailure(ctx, a.Stream, a.Base); cerr != nil {
				mv.log.Warn("clear move failure", "stream", a.Stream, "base", a.Base, "err", cerr)
			}
		}
	case !errors.Is(err, tiers.ErrSegmentNotFound):
		mv.recordOutcome(ctx, a.Stream, a.Base, fmt.Sprintf("%s: %v", a.Kind, err), err)
	}
	return err
}

// dropWarm removes the warm copy of a segment whose cold copy is committed:
// intent, then the placement change committed, then the file removed (a
// reader holding it keeps its mapping), then the intent cleared. A crash
// after the commit leaves a file the catalog no longer places warm, which
// Open removes.
func (mv *Mover) dropWarm(ctx context.Context, stream string, base uint64) error {
	defer mv.Lock(stream, base)()
	m, err := mv.cat.Segment(ctx, stream, base)
	if err != nil {
		return err
	}
	if !m.Placements.Has(tiers.Warm) {
		return nil // done already
	}
	if !m.Placements.Has(tiers.Cold) {
		return fmt.Errorf("engine: drop warm copy of %s/%d: no committed cold copy", stream, base)
	}
	if err := mv.checkColdCopy(ctx, m); err != nil {
		return err
	}
	if err := mv.putIntent(ctx, catalog.Intent{Stream: stream, Base: base, Kind: catalog.IntentDropWarm, Key: mv.warm.Path(stream, base)}); err != nil {
		return err
	}
	if _, err := mv.cat.UpdateSegment(ctx, stream, base, func(sm *tiers.SegmentMeta) error {
		sm.Placements = sm.Placements.Without(tiers.Warm)
		return nil
	}); err != nil {
		return fmt.Errorf("engine: drop warm placement of %s/%d: %w", stream, base, err)
	}
	if err := failpoint.Inject(failpoint.MoveAfterCommit); err != nil {
		return err
	}
	return mv.finishDropWarm(ctx, stream, base)
}

// finishDropWarm removes the warm file of a segment no longer placed warm
// and clears the intent.
func (mv *Mover) finishDropWarm(ctx context.Context, stream string, base uint64) error {
	if err := mv.warm.Remove(stream, base); err != nil && !errors.Is(err, tiers.ErrSegmentNotFound) {
		return fmt.Errorf("engine: remove warm copy of %s/%d: %w", stream, base, err)
	}
	if err := failpoint.Inject(failpoint.MoveAfterRemove); err != nil {
		return err
	}
	if err := mv.cat.ClearIntent(ctx, stream, base); err != nil {
		return err
	}
	// Finished, whether now or by a later Settle or start-up: a success.
	return mv.cat.ClearFailure(ctx, stream, base)
}

// Settle finishes, while tierd runs, the moves that failed after their
// catalog commit (migrator.Settler; the migrator calls it before each
// run): a warm drop whose placement change is committed but whose file
// removal failed is not planned again (the segment is no longer placed
// warm), so its intent would otherwise wait for a restart. Other intents
// are redone by the plan itself.
//
// It first asks the cold store whether it answers (cold.Tier.CheckStore),
// so that a hung store shows in status within one run even when no move
// is due; its failure is the store's health to report, not Settle's error.
func (mv *Mover) Settle(ctx context.Context) error {
	if mv.cold != nil {
		mv.cold.CheckStore(ctx)
	}
	intents, err := mv.cat.Intents(ctx)
	if err != nil {
		return fmt.Errorf("engine: settle: %w", err)
	}
	var errs []error
	for _, in := range intents {
		if in.Kind != catalog.IntentDropWarm || mv.Busy(in.Stream, in.Base) {
			continue
		}
		if err := mv.settleDropWarm(ctx, in); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (mv *Mover) settleDropWarm(ctx context.Context, in catalog.Intent) error {
	defer mv.Lock(in.Stream, in.Base)()
	cur, ok, err := mv.cat.Intent(ctx, in.Stream, in.Base)
	if err != nil || !ok || cur.Kind != catalog.IntentDropWarm {
		return err // settled meanwhile
	}
	if err := mv.recoverIntent(ctx, cur); err != nil {
		if rerr := mv.cat.RecordFailure(ctx, in.Stream, in.Base, "drop-warm: "+err.Error()); rerr != nil {
			mv.log.Warn("record move failure", "stream", in.Stream, "base", in.Base, "err", rerr)
		}
		return fmt.Errorf("engine: finish warm drop of %s/%d: %w", in.Stream, in.Base, err)
	}
	return nil
}

// putIntent records an intent, replacing a stale one of another kind that a
// failed earlier action left: an upload's, or a warm drop's when deleting
// (the plan has moved on; what that action wrote is at a deterministic
// place that the new one overwrites or removes).
func (mv *Mover) putIntent(ctx context.Context, in catalog.Intent) error {
	err := mv.cat.PutIntent(ctx, in)
	if errors.Is(err, catalog.ErrIntentConflict) {
		old, ok, gerr := mv.cat.Intent(ctx, in.Stream, in.Base)
		if gerr != nil {
			return gerr
		}
		deleting := in.Kind == catalog.IntentDeleteCold || in.Kind == catalog.IntentDeleteWarm
		if ok && (old.Kind == catalog.IntentUpload || deleting && old.Kind == catalog.IntentDropWarm) {
			// A failed upload's object, or a failed drop's file, is at a
			// deterministic place that the new action overwrites or removes.
			mv.log.Info("superseding an unfinished move", "stream", in.Stream, "base", in.Base, "kind", old.Kind, "by", in.Kind)
			if err := mv.cat.ClearIntent(ctx, in.Stream, in.Base); err != nil {
				return err
			}
			err = mv.cat.PutIntent(ctx, in)
		}
	}
	if err != nil {
		return fmt.Errorf("engine: record %s intent of %s/%d: %w", in.Kind, in.Stream, in.Base, err)
	}
	return nil
}

// tombstone is the first step of a deletion by retention: from the commit
// on, reads no longer serve the segment (they answer that its range
// expired), and it leaves memory. The catalog tombstones it with every live
// segment below it (oldest first), each justified by by now (justify.go),
// and moves the stream's retention watermark past it. Its copies go in
// deleteSegment.
func (mv *Mover) tombstone(ctx context.Context, stream string, base uint64, by deleteBy) ([]tiers.SegmentMeta, error) {
	defer mv.Lock(stream, base)()
	now := mv.now()
	overBudget := false
	if by == byWarm {
		var err error
		if overBudget, err = mv.overWarmBudget(ctx); err != nil {
			return nil, fmt.Errorf("engine: tombstone %s/%d: %w", stream, base, err)
		}
	}
	done, err := mv.cat.Tombstone(ctx, stream, base, now, func(m *tiers.SegmentMeta) error {
		return mv.justifyDeletion(m, by, now, overBudget)
	})
	if err != nil {
		return nil, fmt.Errorf("engine: tombstone %s/%d: %w", stream, base, err)
	}
	if n := len(done); n > 0 && mv.hot != nil {
		mv.hot.Evict(stream, done[n-1].Last+1)
	}
	// Tombstoned records are no longer retained: the table drops them at
	// its next sync (Published), as reads answer them expired, and Remove
	// makes sure of it before the object goes.
	if slices.ContainsFunc(done, func(m tiers.SegmentMeta) bool { return m.Placements.Has(tiers.Cold) }) {
		mv.published(stream)
	}
	return done, failpoint.Inject(failpoint.DeleteAfterTombstone)
}

// deleteSegment is the second step of a deletion: justified again
// (justifyRemoval; delay: cold.delete_delay must have passed since the
// tombstone), intent, every copy removed (the cold object, the warm file),
// then the catalog entry, its intent and its last error forgotten in one
// transaction. The stream's next offset and watermark stay, so the range
// reads as expired. Repeating it after a crash at any point finishes it.
func (mv *Mover) deleteSegment(ctx context.Context, stream string, base uint64, delay bool) error {
	defer mv.Lock(stream, base)()
	m, err := mv.cat.Segment(ctx, stream, base)
	if errors.Is(err, tiers.ErrSegmentNotFound) {
		return mv.cat.ClearIntent(ctx, stream, base) // deleted already
	}
	if err != nil {
		return err
	}
	from, _, _, _, err := mv.cat.Retained(ctx, stream)
	if err != nil {
		return err
	}
	if err := mv.justifyRemoval(&m, from, mv.now(), delay); err != nil {
		return err
	}
	kind := catalog.IntentDeleteCold
	if !m.Placements.Has(tiers.Cold) {
		kind = catalog.IntentDeleteWarm
	}
	if err := mv.putIntent(ctx, catalog.Intent{Stream: stream, Base: base, Kind: kind, Key: mv.warm.Path(stream, base)}); err != nil {
		return err
	}
	return mv.finishDelete(ctx, m)
}

// finishDelete removes a tombstoned segment's copies and forgets it. The
// cold object is removed whether or not the placement was committed: an
// upload interrupted before its commit may have left it. With tables, the
// segment leaves its stream's table first: an error there leaves the
// intent and the object, and the deletion is retried later, so a table
// never lists an object that is gone.
func (mv *Mover) finishDelete(ctx context.Context, m tiers.SegmentMeta) error {
	if mv.cold != nil && mv.tbl != nil {
		if err := mv.tbl.Remove(ctx, m.Stream, []tiers.SegmentMeta{m}); err != nil {
			return fmt.Errorf("engine: delete %s/%d: remove it from its table first: %w", m.Stream, m.Base, err)
		}
		if err := failpoint.Inject(failpoint.DeleteAfterTableRemove); err != nil {
			return err
		}
	}
	if mv.cold != nil {
		if err := mv.cold.Delete(ctx, m); err != nil {
			return err
		}
	} else if m.Placements.Has(tiers.Cold) {
		return fmt.Errorf("engine: delete %s/%d: %w to remove its cold copy from", m.Stream, m.Base, ErrNoColdTier)
	}
	if err := mv.warm.Remove(m.Stream, m.Base); err != nil && !errors.Is(err, tiers.ErrSegmentNotFound) {
		return fmt.Errorf("engine: delete %s/%d: %w", m.Stream, m.Base, err)
	}
	if err := failpoint.Inject(failpoint.DeleteAfterRemove); err != nil {
		return err
	}
	if err := mv.cat.CommitDelete(ctx, m.Stream, m.Base); err != nil {
		return fmt.Errorf("engine: forget deleted %s/%d: %w", m.Stream, m.Base, err)
	}
	mv.log.Info("segment deleted by retention", "stream", m.Stream, "base", m.Base, "last", m.Last)
	return nil
}

// recoverIntent settles one non-upload intent a crash left: a drop-warm
// whose commit happened is finished, one whose commit did not is rolled
// back; a deletion is finished. An intent that cannot be settled now (the
// cold store is down) is left for the migrator, which plans the action
// again.
func (mv *Mover) recoverIntent(ctx context.Context, in catalog.Intent) error {
	m, err := mv.cat.Segment(ctx, in.Stream, in.Base)
	if errors.Is(err, tiers.ErrSegmentNotFound) {
		return mv.cat.ClearIntent(ctx, in.Stream, in.Base)
	}
	if err != nil {
		return err
	}
	switch in.Kind {
	case catalog.IntentDropWarm:
		if m.Placements.Has(tiers.Warm) {
			mv.log.Info("rolling back a warm drop interrupted before its commit", "stream", in.Stream, "base", in.Base)
			return mv.cat.ClearIntent(ctx, in.Stream, in.Base)
		}
		mv.log.Info("finishing a warm drop interrupted after its commit", "stream", in.Stream, "base", in.Base)
		return mv.finishDropWarm(ctx, in.Stream, in.Base)
	case catalog.IntentDeleteWarm, catalog.IntentDeleteCold:
		if m.Tombstoned.IsZero() {
			return mv.cat.ClearIntent(ctx, in.Stream, in.Base) // never started
		}
		from, _, _, _, err := mv.cat.Retained(ctx, in.Stream)
		if err != nil {
			return err
		}
		// The deletion was justified when it began; it is finished only if
		// it still is (the policy may have changed, the catalog be damaged).
		if err := mv.justifyRemoval(&m, from, mv.now(), false); err != nil {
			mv.recordOutcome(ctx, in.Stream, in.Base, "finish deletion: "+err.Error(), err)
			return nil
		}
		mv.log.Info("finishing an interrupted deletion", "stream", in.Stream, "base", in.Base)
		if err := mv.finishDelete(ctx, m); err != nil {
			mv.log.Warn("cannot finish an interrupted deletion now; the migrator will", "stream", in.Stream, "base", in.Base, "err", err)
		}
		return nil
	}
	mv.log.Warn("unknown intent kind left as it is", "stream", in.Stream, "base", in.Base, "kind", in.Kind)
	return nil
}

// LastFailure returns the last recorded failure of a move of the segment
// (migrator.Executor). The catalog's record is the one failure history:
// it survives restarts, and whatever finishes a move clears it.
func (mv *Mover) LastFailure(ctx context.Context, stream string, base uint64) (msg string, at time.Time, attempts int, ok bool, err error) {
	f, ok, err := mv.cat.LastError(ctx, stream, base)
	if err != nil || !ok {
		return "", time.Time{}, 0, false, err
	}
	return f.Err, f.At, f.Attempts, true, nil
}

// Failures returns every segment's last failed move, as the catalog records
// them (migrator.Executor): status lists them.
func (mv *Mover) Failures(ctx context.Context) ([]catalog.Failure, error) {
	return mv.cat.Failures(ctx)
}
