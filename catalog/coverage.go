package catalog

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

// Coverage is what verify needs to know of one stream's offsets.
type Coverage struct {
	// First is the stream's retention watermark, Next its next offset: the
	// retained, persisted offsets are [First, Next).
	First, Next uint64
	// Gaps are the ranges [from, to) of offsets in [First, Next) that no
	// segment holds, live or tombstoned: records missing that retention
	// does not explain. Overlaps are ranges held by more than one segment.
	// Each range is reported once, in offset order.
	Gaps, Overlaps [][2]uint64
	// Misplaced are segments whose state contradicts the watermark: live
	// below it (its records are served, but the catalog says they expired),
	// or tombstoned at or above it (a tombstone out of offset order).
	Misplaced []tiers.SegmentMeta
	// Tombstoned are the stream's tombstoned segments, for verify to check
	// that the policy still justifies their deletion.
	Tombstoned []tiers.SegmentMeta
}

// Coverage checks, for verify, that the stream's retained offsets
// [RetainedFrom, NextOffset) are each held by exactly one segment, and lists
// what contradicts the retention watermark. An unknown stream wraps
// tiers.ErrStreamNotFound.
func (c *Catalog) Coverage(ctx context.Context, stream string) (Coverage, error) {
	cv := Coverage{Gaps: [][2]uint64{}, Overlaps: [][2]uint64{}}
	err := c.view(ctx, "coverage", func(tx *bolt.Tx) error {
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
		cv.First, cv.Next = s.RetainedFrom, s.NextOffset
		covered := cv.First // one past the highest offset covered so far
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
			tomb := !m.Tombstoned.IsZero()
			if tomb {
				cv.Tombstoned = append(cv.Tombstoned, m)
			}
			if tomb != (m.Last < cv.First) {
				cv.Misplaced = append(cv.Misplaced, m)
			}
			if m.Last < cv.First {
				continue // expired, or misplaced above
			}
			if m.Base > covered {
				cv.Gaps = append(cv.Gaps, [2]uint64{covered, m.Base})
			} else if m.Base < covered && m.Base >= cv.First {
				cv.Overlaps = appendRange(cv.Overlaps, m.Base, min(covered, m.Last+1))
			}
			covered = max(covered, m.Last+1)
		}
		if covered > cv.Next {
			return c.corrupt(fmt.Errorf("stream %q: segments reach offset %d past its next offset %d", stream, covered-1, cv.Next))
		}
		if covered < cv.Next {
			cv.Gaps = append(cv.Gaps, [2]uint64{covered, cv.Next})
		}
		return nil
	})
	if err != nil {
		return Coverage{}, err
	}
	return cv, nil
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
