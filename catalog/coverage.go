package catalog

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Coverage checks, for verify, that the stream's retained offsets
// [first, next) are covered by live (not tombstoned) segments exactly once.
// next is the stream's NextOffset; first is the base of the lowest live
// segment after any run of tombstoned segments at the low end (deletion by
// retention goes oldest first), or next when no segment is live. gaps and
// overlaps are half-open ranges [from, to) of offsets in [first, next)
// covered by no live segment, or by more than one; a tombstoned segment above
// a live one counts as a gap. Every range is reported once, in offset order.
// An unknown stream wraps tiers.ErrStreamNotFound.
func (c *Catalog) Coverage(ctx context.Context, stream string) (first, next uint64, gaps, overlaps [][2]uint64, err error) {
	gaps, overlaps = [][2]uint64{}, [][2]uint64{}
	err = c.view(ctx, "coverage", func(tx *bolt.Tx) error {
		segs, err := c.segmentBucket(tx, stream)
		if err != nil {
			return err
		}
		s, ok, err := c.loadStream(tx, stream)
		if err != nil {
			return err
		}
		if !ok {
			return c.corrupt(fmt.Errorf("stream %q has segments but no stream value", stream))
		}
		next = s.NextOffset
		first = next
		started := false
		var covered uint64 // one past the highest offset covered so far
		cur := segs.Cursor()
		n := 0
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			m, err := c.decodeAt(stream, k, v)
			if err != nil {
				return err
			}
			if !m.Tombstoned.IsZero() {
				continue // before the first live segment: expired; after: a gap found below
			}
			if !started {
				started, first, covered = true, m.Base, m.Base
			}
			if m.Base > covered {
				gaps = append(gaps, [2]uint64{covered, m.Base})
			} else if m.Base < covered {
				overlaps = appendRange(overlaps, m.Base, min(covered, m.Last+1))
			}
			covered = max(covered, m.Last+1)
		}
		if !started {
			return nil
		}
		if covered > next {
			return c.corrupt(fmt.Errorf("stream %q: segments reach offset %d past its next offset %d", stream, covered-1, next))
		}
		if covered < next {
			gaps = append(gaps, [2]uint64{covered, next})
		}
		return nil
	})
	if err != nil {
		return 0, 0, nil, nil, err
	}
	return first, next, gaps, overlaps, nil
}

// appendRange appends [from, to) to rs, merging it into the last range when
// they touch, so an offset covered three times is reported once.
func appendRange(rs [][2]uint64, from, to uint64) [][2]uint64 {
	if n := len(rs); n > 0 && rs[n-1][1] >= from {
		rs[n-1][1] = max(rs[n-1][1], to)
		return rs
	}
	return append(rs, [2]uint64{from, to})
}
