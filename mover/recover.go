package mover

import (
	"context"
	"errors"
	"fmt"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// Recover finishes or rolls back the moves a crash interrupted. An
// upload whose object is in the store and matches the catalog is committed
// (keeping the warm copy: the policy decides when it goes); one whose object
// is missing is rolled back, leaving the segment as it was, to be moved
// again. Intents of other kinds are settled by recoverIntent. The engine
// calls it at start-up, before the hot tier replays the WAL.
func (mv *Mover) Recover(ctx context.Context) error {
	intents, err := mv.cat.Intents(ctx)
	if err != nil {
		return fmt.Errorf("engine: list move intents: %w", err)
	}
	for _, in := range intents {
		if in.Kind != catalog.IntentUpload {
			if err := mv.recoverIntent(ctx, in); err != nil {
				return fmt.Errorf("engine: settle %s intent of %s/%d: %w", in.Kind, in.Stream, in.Base, err)
			}
			continue
		}
		m, err := mv.cat.Segment(ctx, in.Stream, in.Base)
		if err != nil {
			return fmt.Errorf("engine: intent for %s/%d: %w", in.Stream, in.Base, err)
		}
		if mv.cold == nil {
			mv.log.Warn("upload intent left with no cold store configured; rolling it back", "stream", in.Stream, "base", in.Base)
			if err := mv.cat.ClearIntent(ctx, in.Stream, in.Base); err != nil {
				return err
			}
			continue
		}
		size, err := mv.cold.Check(ctx, m)
		switch {
		case err == nil:
			mv.log.Info("finishing an upload interrupted after its object was written", "stream", in.Stream, "base", in.Base, "key", in.Key)
			if _, err := mv.cat.CommitMove(ctx, in.Stream, in.Base, func(sm *tiers.SegmentMeta) error {
				sm.Placements = sm.Placements.With(tiers.Cold)
				sm.ColdBytes = size
				return nil
			}); err != nil {
				return fmt.Errorf("engine: finish upload of %s/%d: %w", in.Stream, in.Base, err)
			}
			mv.published(in.Stream)
		case errors.Is(err, objstore.ErrNotFound):
			mv.log.Info("rolling back an upload interrupted before its object was written", "stream", in.Stream, "base", in.Base)
			if err := mv.cat.ClearIntent(ctx, in.Stream, in.Base); err != nil {
				return err
			}
		default:
			// The store is down or the object is not this segment: leave the
			// intent; the next offload of the segment overwrites the object.
			mv.log.Warn("cannot settle an interrupted upload now", "stream", in.Stream, "base", in.Base, "err", err)
		}
	}
	return nil
}

// RecoverWarm returns each catalogued stream's first unpersisted offset and
// removes warm files at or above it: a crash between writing a segment file
// and committing it to the catalog leaves such a file, and the WAL, which is
// only checkpointed after the commit, still holds its records. It also
// removes warm files of segments the catalog no longer places warm: a crash
// after a move's catalog commit leaves those, and their data is in cold.
func (mv *Mover) RecoverWarm(ctx context.Context) (map[string]uint64, error) {
	streams, err := mv.cat.Streams(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: list streams: %w", err)
	}
	next := make(map[string]uint64, len(streams))
	for _, s := range streams {
		next[s.Name] = s.NextOffset
	}
	files, err := mv.warm.List()
	if err != nil {
		return nil, fmt.Errorf("engine: list warm files: %w", err)
	}
	for _, f := range files {
		n, ok := next[f.Stream]
		if ok && f.Base < n {
			m, err := mv.cat.Segment(ctx, f.Stream, f.Base)
			if err != nil || m.Placements.Has(tiers.Warm) || !m.Placements.Has(tiers.Cold) {
				continue // kept: placed warm, or not ours to judge (verify reports orphans)
			}
			if err := mv.checkColdCopy(ctx, m); err != nil {
				mv.log.Warn("keeping the warm copy of a segment moved to cold: its cold copy cannot be confirmed", "path", f.Path, "err", err)
				continue
			}
			mv.log.Info("removing warm copy of a segment moved to cold", "path", f.Path)
		} else {
			mv.log.Warn("removing uncommitted warm segment; the WAL holds its records", "path", f.Path)
		}
		if err := mv.warm.Remove(f.Stream, f.Base); err != nil {
			return nil, fmt.Errorf("engine: remove uncommitted %s: %w", f.Path, err)
		}
	}
	return next, nil
}
