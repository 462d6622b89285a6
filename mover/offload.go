package mover

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/tiers"
)

// Errors of Offload besides the tiers sentinels.
var (
	// ErrNotPersisted reports a segment that is still active or only in
	// memory: it must be sealed and persisted warm before it can move.
	ErrNotPersisted = errors.New("engine: segment is not sealed and persisted warm yet")
	// ErrNoColdTier reports an offload on an engine without a cold store.
	ErrNoColdTier = errors.New("engine: no cold store configured")
)

// Offload moves one sealed segment to the cold tier now, with the move
// protocol of docs/architecture.md: the intent is recorded in the catalog,
// the warm copy is converted to Parquet, uploaded and verified
// (cold.Tier.Upload), then one catalog transaction (CommitMove) adds the
// cold placement with the object's size, drops the warm placement unless
// keepWarm, and clears the intent; last the warm file is removed (readers
// that hold it keep their mapping). A failure is recorded as the segment's
// last error and changes nothing else. Each step is idempotent: running it
// again finishes an interrupted move with exactly one object, and Open
// finishes or rolls back a move a crash left behind (Recover). Offloading a
// segment that is already cold only drops the warm copy if asked.
func (mv *Mover) Offload(ctx context.Context, stream string, base uint64, keepWarm bool) (_ tiers.SegmentMeta, err error) {
	if mv.cold == nil {
		return tiers.SegmentMeta{}, ErrNoColdTier
	}
	if err := tiers.ValidateStreamName(stream); err != nil {
		return tiers.SegmentMeta{}, err
	}
	defer mv.Lock(stream, base)()
	m, err := mv.cat.Segment(ctx, stream, base)
	if err != nil {
		if _, known := mv.resident(stream); errors.Is(err, tiers.ErrSegmentNotFound) && known {
			return tiers.SegmentMeta{}, mv.notPersisted(stream, base)
		}
		return tiers.SegmentMeta{}, err
	}
	committed := false
	defer func() {
		if err != nil && !committed {
			// The move did not happen: whatever step failed is the
			// segment's last error. (After the commit the move is done; a
			// warm file left behind is removed at start-up.)
			if rerr := mv.cat.RecordFailure(context.WithoutCancel(ctx), stream, base, "upload: "+err.Error()); rerr != nil {
				mv.log.Warn("record move failure", "stream", stream, "base", base, "err", rerr)
			}
		}
	}()
	place := func(sm *tiers.SegmentMeta) error {
		sm.Placements = sm.Placements.With(tiers.Cold)
		if !keepWarm {
			sm.Placements = sm.Placements.Without(tiers.Warm)
		}
		return nil
	}
	switch {
	case !m.Placements.Has(tiers.Cold):
		if !m.Placements.Has(tiers.Warm) {
			return tiers.SegmentMeta{}, fmt.Errorf("engine: segment %s/%d has no warm copy to offload", stream, base)
		}
		if err := mv.cat.PutIntent(ctx, catalog.Intent{Stream: stream, Base: base, Kind: catalog.IntentUpload, Key: cold.ObjectKey(m)}); err != nil {
			return tiers.SegmentMeta{}, fmt.Errorf("engine: record upload intent of %s/%d: %w", stream, base, err)
		}
		size, err := mv.upload(ctx, m)
		if err != nil {
			return tiers.SegmentMeta{}, err
		}
		if err := failpoint.Inject(failpoint.MoveAfterVerify); err != nil {
			return tiers.SegmentMeta{}, err
		}
		m, err = mv.cat.CommitMove(ctx, stream, base, func(sm *tiers.SegmentMeta) error {
			sm.ColdBytes = size
			return place(sm)
		})
		if err != nil {
			return tiers.SegmentMeta{}, fmt.Errorf("engine: commit cold placement of %s/%d: %w", stream, base, err)
		}
		mv.published(stream)
	case !keepWarm && m.Placements.Has(tiers.Warm):
		if err := mv.checkColdCopy(ctx, m); err != nil {
			return tiers.SegmentMeta{}, err
		}
		if m, err = mv.cat.UpdateSegment(ctx, stream, base, place); err != nil {
			return tiers.SegmentMeta{}, fmt.Errorf("engine: drop warm placement of %s/%d: %w", stream, base, err)
		}
	}
	committed = true
	if err := failpoint.Inject(failpoint.MoveAfterCommit); err != nil {
		return m, err
	}
	if !m.Placements.Has(tiers.Warm) {
		if err := mv.warm.Remove(stream, base); err != nil && !errors.Is(err, tiers.ErrSegmentNotFound) {
			// The catalog no longer places it warm; start-up removes it.
			mv.log.Warn("remove offloaded warm file", "stream", stream, "base", base, "err", err)
		}
		if err := failpoint.Inject(failpoint.MoveAfterRemove); err != nil {
			return m, err
		}
	}
	return m, nil
}

// published tells the tables, if any, that a cold placement of stream was
// committed.
func (mv *Mover) published(stream string) {
	if mv.tbl != nil {
		mv.tbl.Published(stream)
	}
}

// upload converts the segment's warm copy and uploads it.
func (mv *Mover) upload(ctx context.Context, m tiers.SegmentMeta) (int64, error) {
	r, err := mv.warm.Acquire(m.Stream, m.Base)
	if err != nil {
		return 0, err
	}
	defer r.Release()
	return mv.cold.Upload(ctx, m, r.Scan(tiers.AllRecords()))
}

// resident asks the hot tier, if any, which segments of stream are in
// memory.
func (mv *Mover) resident(stream string) (bases []uint64, known bool) {
	if mv.hot == nil {
		return nil, false
	}
	return mv.hot.Resident(stream)
}

// notPersisted distinguishes a segment that is still in memory from one that
// does not exist.
func (mv *Mover) notPersisted(stream string, base uint64) error {
	if bases, _ := mv.resident(stream); slices.Contains(bases, base) {
		return fmt.Errorf("%w: %s/%d", ErrNotPersisted, stream, base)
	}
	return fmt.Errorf("%w: %s/%d", tiers.ErrSegmentNotFound, stream, base)
}
