package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/tierd/tierd/tiers"
)

// errNotRewritable: the segment changed (tombstoned, no longer cold, or
// another segment now) between the table's read of the catalog and the
// rewrite; the next sync sees the catalog as it is.
var errNotRewritable = errors.New("engine: segment is no longer the retained cold segment to rewrite")

// rewriteCold rewrites segment m's format-1 cold object in the current
// format (cold.Tier.Rewrite), under the segment's move lock and only while
// the catalog still has it cold and retained: a rewrite racing retention's
// deletion could otherwise put back an object the deletion removed.
func (e *Engine) rewriteCold(ctx context.Context, m tiers.SegmentMeta) error {
	if e.mover == nil || e.cold == nil {
		return errNotRewritable
	}
	unlock := e.mover.Lock(m.Stream, m.Base)
	defer unlock()
	cur, err := e.catalog.Segment(ctx, m.Stream, m.Base)
	if err != nil {
		return fmt.Errorf("engine: rewrite %s/%d: %w", m.Stream, m.Base, err)
	}
	if !cur.Placements.Has(tiers.Cold) || !cur.Tombstoned.IsZero() || cur.Last != m.Last || cur.Digest != m.Digest {
		return fmt.Errorf("%w: %s/%d", errNotRewritable, m.Stream, m.Base)
	}
	_, err = e.cold.Rewrite(ctx, cur)
	return err
}
