package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

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

// Offload moves one sealed segment to the cold tier now: its warm copy is
// converted to Parquet, uploaded and verified, the cold placement is
// committed to the catalog, and, unless keepWarm, the warm placement is
// dropped in the same catalog transaction and its file removed (readers that
// hold it keep their mapping). Each step is idempotent, so a move
// interrupted anywhere is finished by running it again, ending with exactly
// one object; at start-up a warm file the catalog no longer places warm is
// removed. Offloading a segment that is already cold only drops the warm
// copy if asked.
func (e *Engine) Offload(ctx context.Context, stream string, base uint64, keepWarm bool) (tiers.SegmentMeta, error) {
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
	if !m.Placements.Has(tiers.Cold) {
		if !m.Placements.Has(tiers.Warm) {
			return tiers.SegmentMeta{}, fmt.Errorf("engine: segment %s/%d has no warm copy to offload", stream, base)
		}
		r, err := e.warm.Acquire(stream, base)
		if err != nil {
			return tiers.SegmentMeta{}, err
		}
		q := tiers.AllRecords()
		_, err = e.cold.Upload(ctx, m, r.Scan(q))
		r.Release()
		if err != nil {
			return tiers.SegmentMeta{}, err
		}
	}
	m, err = e.catalog.UpdatePlacements(ctx, stream, base, func(p tiers.Placements) tiers.Placements {
		p = p.With(tiers.Cold)
		if !keepWarm {
			p = p.Without(tiers.Warm)
		}
		return p
	})
	if err != nil {
		return tiers.SegmentMeta{}, fmt.Errorf("engine: commit cold placement of %s/%d: %w", stream, base, err)
	}
	if !keepWarm {
		if err := e.warm.Remove(stream, base); err != nil && !errors.Is(err, tiers.ErrSegmentNotFound) {
			// The catalog no longer places it warm; start-up removes it.
			e.opts.Logger.Warn("remove offloaded warm file", "stream", stream, "base", base, "err", err)
		}
	}
	return m, nil
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
