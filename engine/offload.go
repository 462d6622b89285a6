package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
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

// moveLocks serialises moves of one segment; moves of different segments
// run in parallel.
type moveLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (m *moveLocks) lock(stream string, base uint64) func() {
	k := fmt.Sprintf("%s/%d", stream, base)
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]*sync.Mutex{}
	}
	l := m.locks[k]
	if l == nil {
		l = &sync.Mutex{}
		m.locks[k] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// busy reports whether a move of the segment is running now.
func (m *moveLocks) busy(stream string, base uint64) bool {
	k := fmt.Sprintf("%s/%d", stream, base)
	m.mu.Lock()
	l := m.locks[k]
	m.mu.Unlock()
	if l == nil {
		return false
	}
	if l.TryLock() {
		l.Unlock()
		return false
	}
	return true
}

// Offload moves one sealed segment to the cold tier now, with the move
// protocol of DESIGN.md: the intent is recorded in the catalog, the warm
// copy is converted to Parquet, uploaded and verified (cold.Tier.Upload),
// then one catalog transaction (CommitMove) adds the cold placement with the
// object's size, drops the warm placement unless keepWarm, and clears the
// intent; last the warm file is removed (readers that hold it keep their
// mapping). A failure is recorded as the segment's last error and changes
// nothing else. Each step is idempotent: running it again finishes an
// interrupted move with exactly one object, and Open finishes or rolls back
// a move a crash left behind (recoverMoves). Offloading a segment that is
// already cold only drops the warm copy if asked.
func (e *Engine) Offload(ctx context.Context, stream string, base uint64, keepWarm bool) (_ tiers.SegmentMeta, err error) {
	if e.cold == nil {
		return tiers.SegmentMeta{}, ErrNoColdTier
	}
	if err := tiers.ValidateStreamName(stream); err != nil {
		return tiers.SegmentMeta{}, err
	}
	defer e.moves.lock(stream, base)()
	m, err := e.catalog.Segment(ctx, stream, base)
	if err != nil {
		if errors.Is(err, tiers.ErrSegmentNotFound) && e.hot.Snapshot(stream).Known {
			return tiers.SegmentMeta{}, e.notPersisted(stream, base)
		}
		return tiers.SegmentMeta{}, err
	}
	committed := false
	defer func() {
		if err != nil && !committed {
			// The move did not happen: whatever step failed is the
			// segment's last error. (After the commit the move is done; a
			// warm file left behind is removed at start-up.)
			if rerr := e.catalog.RecordFailure(context.WithoutCancel(ctx), stream, base, "upload: "+err.Error()); rerr != nil {
				e.opts.Logger.Warn("record move failure", "stream", stream, "base", base, "err", rerr)
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
		if err := e.catalog.PutIntent(ctx, catalog.Intent{Stream: stream, Base: base, Kind: catalog.IntentUpload, Key: cold.ObjectKey(m)}); err != nil {
			return tiers.SegmentMeta{}, fmt.Errorf("engine: record upload intent of %s/%d: %w", stream, base, err)
		}
		size, err := e.upload(ctx, m)
		if err != nil {
			return tiers.SegmentMeta{}, err
		}
		if err := failpoint.Inject(failpoint.MoveAfterVerify); err != nil {
			return tiers.SegmentMeta{}, err
		}
		m, err = e.catalog.CommitMove(ctx, stream, base, func(sm *tiers.SegmentMeta) error {
			sm.ColdBytes = size
			return place(sm)
		})
		if err != nil {
			return tiers.SegmentMeta{}, fmt.Errorf("engine: commit cold placement of %s/%d: %w", stream, base, err)
		}
	case !keepWarm && m.Placements.Has(tiers.Warm):
		if err := e.checkColdCopy(ctx, m); err != nil {
			return tiers.SegmentMeta{}, err
		}
		if m, err = e.catalog.UpdateSegment(ctx, stream, base, place); err != nil {
			return tiers.SegmentMeta{}, fmt.Errorf("engine: drop warm placement of %s/%d: %w", stream, base, err)
		}
	}
	committed = true
	if err := failpoint.Inject(failpoint.MoveAfterCommit); err != nil {
		return m, err
	}
	if !m.Placements.Has(tiers.Warm) {
		if err := e.warm.Remove(stream, base); err != nil && !errors.Is(err, tiers.ErrSegmentNotFound) {
			// The catalog no longer places it warm; start-up removes it.
			e.opts.Logger.Warn("remove offloaded warm file", "stream", stream, "base", base, "err", err)
		}
		if err := failpoint.Inject(failpoint.MoveAfterRemove); err != nil {
			return m, err
		}
	}
	return m, nil
}

// upload converts the segment's warm copy and uploads it.
func (e *Engine) upload(ctx context.Context, m tiers.SegmentMeta) (int64, error) {
	r, err := e.warm.Acquire(m.Stream, m.Base)
	if err != nil {
		return 0, err
	}
	defer r.Release()
	return e.cold.Upload(ctx, m, r.Scan(tiers.AllRecords()))
}

// recoverMoves finishes or rolls back the moves a crash interrupted. An
// upload whose object is in the store and matches the catalog is committed
// (keeping the warm copy: the policy decides when it goes); one whose object
// is missing is rolled back, leaving the segment as it was, to be moved
// again. Intents of other kinds are settled by recoverIntent.
func (e *Engine) recoverMoves(ctx context.Context) error {
	intents, err := e.catalog.Intents(ctx)
	if err != nil {
		return fmt.Errorf("engine: list move intents: %w", err)
	}
	for _, in := range intents {
		if in.Kind != catalog.IntentUpload {
			if err := e.recoverIntent(ctx, in); err != nil {
				return fmt.Errorf("engine: settle %s intent of %s/%d: %w", in.Kind, in.Stream, in.Base, err)
			}
			continue
		}
		m, err := e.catalog.Segment(ctx, in.Stream, in.Base)
		if err != nil {
			return fmt.Errorf("engine: intent for %s/%d: %w", in.Stream, in.Base, err)
		}
		if e.cold == nil {
			e.opts.Logger.Warn("upload intent left with no cold store configured; rolling it back", "stream", in.Stream, "base", in.Base)
			if err := e.catalog.ClearIntent(ctx, in.Stream, in.Base); err != nil {
				return err
			}
			continue
		}
		size, err := e.cold.Check(ctx, m)
		switch {
		case err == nil:
			e.opts.Logger.Info("finishing an upload interrupted after its object was written", "stream", in.Stream, "base", in.Base, "key", in.Key)
			if _, err := e.catalog.CommitMove(ctx, in.Stream, in.Base, func(sm *tiers.SegmentMeta) error {
				sm.Placements = sm.Placements.With(tiers.Cold)
				sm.ColdBytes = size
				return nil
			}); err != nil {
				return fmt.Errorf("engine: finish upload of %s/%d: %w", in.Stream, in.Base, err)
			}
		case errors.Is(err, objstore.ErrNotFound):
			e.opts.Logger.Info("rolling back an upload interrupted before its object was written", "stream", in.Stream, "base", in.Base)
			if err := e.catalog.ClearIntent(ctx, in.Stream, in.Base); err != nil {
				return err
			}
		default:
			// The store is down or the object is not this segment: leave the
			// intent; the next offload of the segment overwrites the object.
			e.opts.Logger.Warn("cannot settle an interrupted upload now", "stream", in.Stream, "base", in.Base, "err", err)
		}
	}
	return nil
}

// notPersisted distinguishes a segment that is still in memory from one that
// does not exist.
func (e *Engine) notPersisted(stream string, base uint64) error {
	sn := e.hot.Snapshot(stream)
	for _, s := range sn.Segments() {
		if s.Base == base {
			return fmt.Errorf("%w: %s/%d", ErrNotPersisted, stream, base)
		}
	}
	return fmt.Errorf("%w: %s/%d", tiers.ErrSegmentNotFound, stream, base)
}
