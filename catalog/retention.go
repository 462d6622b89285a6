package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

// Deletion by retention and the watermark that records it.
//
// Each stream's value holds RetainedFrom, the retention watermark: offsets
// below it were deleted by retention (or are tombstoned, their copies about
// to go); from it up to NextOffset, every offset is held by a catalogued
// segment. Tombstone is the only way a segment becomes tombstoned, and it
// tombstones in offset order (the segment asked for and every live one
// below it, each checked by the caller's justification, in one
// transaction), so the watermark only moves up past tombstoned segments;
// CommitDelete only forgets segments below it. A read that finds no
// segment for an offset therefore knows which case it is in: below the
// watermark the records expired (410); at or above it they are missing,
// which is damage, never silence.

// Errors of deletion by retention; check them with errors.Is.
var (
	// ErrNotTombstoned refuses to forget, as a deletion by retention, a
	// segment that is live or above the retention watermark.
	ErrNotTombstoned = errors.New("catalog: segment is not tombstoned below the retention watermark")
	// ErrRetainedGap reports offsets at or above a stream's retention
	// watermark that no catalogued segment holds: records are missing, and
	// retention does not explain it. It comes wrapped in a
	// *tiers.CorruptionError.
	ErrRetainedGap = errors.New("catalog: retained offsets held by no segment")
	// ErrUnjustified is what a Tombstone justification returns to refuse a
	// segment; Tombstone returns it wrapped and changes nothing.
	ErrUnjustified = errors.New("catalog: deletion not justified")
)

// Tombstone starts the deletion by retention of segment (stream, base): in
// one transaction it sets Tombstoned to at on it and on every live segment
// between the stream's retention watermark and it (retention deletes
// oldest first), and moves the watermark past it, after writing the
// stream's retention marker when the catalog keeps them. justify is called
// for each segment to be tombstoned, lowest first, inside the transaction
// (it must be quick and must not call the Catalog): an error from it, or a
// gap in the offsets above the watermark (a *tiers.CorruptionError wrapping
// ErrRetainedGap), changes nothing and is returned. A segment already
// tombstoned and below the watermark is a repeated call: nothing changes.
// It returns the segments it tombstoned.
func (c *Catalog) Tombstone(ctx context.Context, stream string, base uint64, at time.Time, justify func(*tiers.SegmentMeta) error) ([]tiers.SegmentMeta, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return nil, fmt.Errorf("catalog: tombstone: %w", err)
	}
	var done []tiers.SegmentMeta
	err := c.update(ctx, "tombstone", func(tx *bolt.Tx) error {
		done = done[:0]
		target, err := c.getTx(tx, stream, base)
		if err != nil {
			return err
		}
		s, ok, err := c.loadStream(tx, stream)
		if err != nil {
			return err
		}
		if !ok {
			return c.corrupt(fmt.Errorf("segment %s/%d has no stream value", stream, base))
		}
		if target.Last < s.RetainedFrom && !target.Tombstoned.IsZero() {
			return nil // tombstoned already
		}
		segs := tx.Bucket([]byte(bucketSegments)).Bucket([]byte(stream))
		cur := segs.Cursor()
		// Segments below the watermark are tombstoned or gone; the one the
		// caller names may be a live one left there (a catalog of an older
		// build), which is tombstoned alone.
		from := min(s.RetainedFrom, target.Base)
		expect := from
		k, v := cur.Seek(segmentKey(from))
		for ; k != nil; k, v = cur.Next() {
			m, err := c.decodeAt(stream, k, v)
			if err != nil {
				return err
			}
			if m.Base > target.Base {
				break
			}
			if m.Base >= s.RetainedFrom && m.Base != expect {
				return c.corrupt(fmt.Errorf("%w: offsets [%d, %d) of stream %s, above its retention watermark %d", ErrRetainedGap, expect, m.Base, stream, s.RetainedFrom))
			}
			expect = m.Last + 1
			if !m.Tombstoned.IsZero() || m.Base < s.RetainedFrom && m.Base != target.Base {
				continue
			}
			if err := justify(&m); err != nil {
				return fmt.Errorf("catalog: tombstone %s/%d: %w", stream, m.Base, err)
			}
			m.Tombstoned = at
			if err := checkSegment(&m); err != nil {
				return fmt.Errorf("%w: %s/%d: %v", ErrInvalidSegment, stream, m.Base, err)
			}
			if err := segs.Put(bytes.Clone(k), encodeSegment(&m)); err != nil {
				return err
			}
			done = append(done, m)
		}
		if w := target.Last + 1; w > s.RetainedFrom {
			s.RetainedFrom = w
			if err := c.writeMarkerTx(stream, w); err != nil {
				return err
			}
		}
		return storeStream(tx, stream, &s)
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}

// writeMarkerTx writes stream's retention marker ahead of a commit that
// moves the watermark to from; the marker never moves backwards.
func (c *Catalog) writeMarkerTx(stream string, from uint64) error {
	if c.retentionDir == "" {
		return nil
	}
	if cur, ok, err := readMarker(c.retentionDir, stream); err == nil && ok && cur >= from {
		return nil
	}
	return writeMarker(c.retentionDir, stream, from)
}

// syncMarkers brings every stream's retention marker up to the catalog's
// watermark at open: a catalog from an older build has none, and a marker
// lost or damaged since is written again. A marker ahead of the catalog is
// left as it is (a tombstone whose commit did not happen, to be redone). A
// marker that cannot be written is logged, not fatal: the catalog is right,
// and the next tombstone of the stream writes it again or fails.
func (c *Catalog) syncMarkers() error {
	if c.retentionDir == "" {
		return nil
	}
	streams, err := c.Streams(context.Background())
	if err != nil {
		return err
	}
	for _, s := range streams {
		if s.RetainedFrom == 0 {
			continue
		}
		cur, ok, err := readMarker(c.retentionDir, s.Name)
		if err != nil {
			c.log.Warn("rewriting a damaged retention marker from the catalog", "stream", s.Name, "err", err)
		}
		if ok && cur >= s.RetainedFrom {
			if cur > s.RetainedFrom {
				c.log.Warn("retention marker ahead of the catalog: a tombstone was not committed; the migrator redoes it", "stream", s.Name, "marker", cur, "catalog", s.RetainedFrom)
			}
			continue
		}
		if err := writeMarker(c.retentionDir, s.Name, s.RetainedFrom); err != nil {
			c.log.Error("retention marker behind the catalog: a rebuild now would not know all retention deleted", "stream", s.Name, "err", err)
		}
	}
	return nil
}
