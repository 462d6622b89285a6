package catalog

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

// PutSegment inserts m, or replaces the segment with the same (Stream, Base),
// creating the stream if needed. tiers.Hot is dropped from m.Placements (hot
// residency is not stored). It fails with ErrInvalidSegment unless Base <=
// Last < MaxUint64, Count == Last-Base+1 (offsets are dense), Bytes >= 0,
// ColdBytes >= 0 (and > 0 only with a cold placement), MinTS <= MaxTS, warm
// or cold is among the placements, SealedAt is set and a Tombstoned time is
// not before it, and Base is not below the stream's retention watermark
// (those offsets were deleted by retention and must stay deleted); and with
// ErrOverlap if the offsets intersect a different segment of the stream. On
// success the stream's NextOffset is at least Last+1.
func (c *Catalog) PutSegment(ctx context.Context, m tiers.SegmentMeta) error {
	if err := validForPut(&m); err != nil {
		return err
	}
	return c.update(ctx, "put_segment", func(tx *bolt.Tx) error {
		return c.putTx(tx, &m)
	})
}

// validForPut drops hot residency from m and checks what PutSegment checks
// before its transaction.
func validForPut(m *tiers.SegmentMeta) error {
	if err := tiers.ValidateStreamName(m.Stream); err != nil {
		return fmt.Errorf("catalog: put segment: %w", err)
	}
	m.Placements = m.Placements.Without(tiers.Hot)
	if err := checkSegment(m); err != nil {
		return fmt.Errorf("%w: %s/%d: %v", ErrInvalidSegment, m.Stream, m.Base, err)
	}
	return nil
}

// putTx is PutSegment inside tx, for a segment that passed validForPut.
func (c *Catalog) putTx(tx *bolt.Tx, m *tiers.SegmentMeta) error {
	s, segs, err := c.ensureStreamTx(tx, m.Stream)
	if err != nil {
		return err
	}
	if m.Base < s.RetainedFrom {
		return fmt.Errorf("%w: %s/%d: offsets below %d were deleted by retention", ErrInvalidSegment, m.Stream, m.Base, s.RetainedFrom)
	}
	old, replacing, err := c.checkOverlap(segs, m)
	if err != nil {
		return err
	}
	if err := segs.Put(segmentKey(m.Base), encodeSegment(m)); err != nil {
		return err
	}
	if replacing {
		if err := c.subtract(&s, &old); err != nil {
			return err
		}
	}
	s.Segments++
	s.Records += m.Count
	s.Bytes += uint64(m.Bytes)
	s.NextOffset = max(s.NextOffset, m.Last+1)
	return storeStream(tx, m.Stream, &s)
}

// checkOverlap returns the segment m replaces, if any, or ErrOverlap when m
// intersects one of its neighbours. Stored segments never overlap, so only
// the nearest segment on each side of m.Base can.
func (c *Catalog) checkOverlap(segs *bolt.Bucket, m *tiers.SegmentMeta) (old tiers.SegmentMeta, replacing bool, err error) {
	key := segmentKey(m.Base)
	cur := segs.Cursor()
	k, v := cur.Seek(key)
	if k != nil && bytes.Equal(k, key) {
		if old, err = c.decodeAt(m.Stream, k, v); err != nil {
			return old, false, err
		}
		replacing = true
		k, v = cur.Next()
	}
	if k != nil {
		next, err := c.decodeAt(m.Stream, k, v)
		if err != nil {
			return old, false, err
		}
		if next.Base <= m.Last {
			return old, false, overlapError(m, &next)
		}
	}
	pk, pv := cur.Seek(key)
	if pk == nil {
		pk, pv = cur.Last()
	} else {
		pk, pv = cur.Prev()
	}
	if pk != nil {
		prev, err := c.decodeAt(m.Stream, pk, pv)
		if err != nil {
			return old, false, err
		}
		if prev.Base < m.Base && prev.Last >= m.Base {
			return old, false, overlapError(m, &prev)
		}
	}
	return old, replacing, nil
}

func overlapError(m, other *tiers.SegmentMeta) error {
	return fmt.Errorf("%w: %s [%d, %d] intersects [%d, %d]", ErrOverlap, m.Stream, m.Base, m.Last, other.Base, other.Last)
}

// Segment returns the segment (stream, base). A missing segment, or an
// unknown stream, wraps tiers.ErrSegmentNotFound.
func (c *Catalog) Segment(ctx context.Context, stream string, base uint64) (tiers.SegmentMeta, error) {
	var m tiers.SegmentMeta
	err := c.view(ctx, "segment", func(tx *bolt.Tx) (err error) {
		m, err = c.getTx(tx, stream, base)
		return err
	})
	return m, err
}

// getTx reads one segment inside tx.
func (c *Catalog) getTx(tx *bolt.Tx, stream string, base uint64) (tiers.SegmentMeta, error) {
	segs := tx.Bucket([]byte(bucketSegments)).Bucket([]byte(stream))
	if segs == nil {
		return tiers.SegmentMeta{}, fmt.Errorf("catalog: segment %s/%d: %w (%w)", stream, base, tiers.ErrSegmentNotFound, tiers.ErrStreamNotFound)
	}
	key := segmentKey(base)
	v := segs.Get(key)
	if v == nil {
		return tiers.SegmentMeta{}, fmt.Errorf("catalog: segment %s/%d: %w", stream, base, tiers.ErrSegmentNotFound)
	}
	return c.decodeAt(stream, key, v)
}

// Segments returns every segment of stream ordered by base. An unknown stream
// wraps tiers.ErrStreamNotFound; a known stream without segments yields an
// empty slice.
func (c *Catalog) Segments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error) {
	return c.scan(ctx, "segments", stream, func(*tiers.SegmentMeta) bool { return true })
}

// Locate returns the segments of stream that hold any offset in [from, to]
// (both inclusive), ordered by base, and the stream's retention watermark,
// read in one transaction. It seeks to from rather than scanning, so its
// cost depends on the answer, not on the stream's length. Offsets past the
// last segment are the engine's (the hot active segment). Tombstoned
// segments are returned too, with Tombstoned set, so that the router can
// name the expired range (410). An offset below retainedFrom that no
// segment holds was deleted by retention; one at or above it that no
// segment holds (below NextOffset) is damage. from > to yields no segments;
// an unknown stream wraps tiers.ErrStreamNotFound.
func (c *Catalog) Locate(ctx context.Context, stream string, from, to uint64) (out []tiers.SegmentMeta, retainedFrom uint64, err error) {
	out = []tiers.SegmentMeta{}
	err = c.view(ctx, "locate", func(tx *bolt.Tx) error {
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
		retainedFrom = s.RetainedFrom
		if from > to {
			return nil
		}
		start := segmentKey(from)
		cur := segs.Cursor()
		k, v := cur.Seek(start)
		if k == nil || !bytes.Equal(k, start) {
			// The segment before the first base >= from may still cover from.
			var pk, pv []byte
			if k == nil {
				pk, pv = cur.Last()
			} else {
				pk, pv = cur.Prev()
			}
			if pk != nil {
				m, err := c.decodeAt(stream, pk, pv)
				if err != nil {
					return err
				}
				if m.Last >= from {
					out = append(out, m)
				}
			}
			k, v = cur.Seek(start)
		}
		for ; k != nil; k, v = cur.Next() {
			m, err := c.decodeAt(stream, k, v)
			if err != nil {
				return err
			}
			if m.Base > to {
				break
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, retainedFrom, nil
}

// locateTime returns the segments of stream whose [MinTS, MaxTS] meets
// [since, until) — since inclusive, until exclusive, as in tiers.Query —
// ordered by base. Producer timestamps need not grow with offsets, so this
// reads every segment of the stream. since >= until yields an empty slice;
// an unknown stream wraps tiers.ErrStreamNotFound.
func (c *Catalog) locateTime(ctx context.Context, stream string, since, until int64) ([]tiers.SegmentMeta, error) {
	q := tiers.Query{Since: since, Until: until}
	return c.scan(ctx, "locate_time", stream, func(m *tiers.SegmentMeta) bool {
		return q.OverlapsTime(m.MinTS, m.MaxTS)
	})
}

// scan returns the segments of stream that keep returns true for, by base.
func (c *Catalog) scan(ctx context.Context, op, stream string, keep func(*tiers.SegmentMeta) bool) ([]tiers.SegmentMeta, error) {
	out := []tiers.SegmentMeta{}
	err := c.view(ctx, op, func(tx *bolt.Tx) error {
		segs, err := c.segmentBucket(tx, stream)
		if err != nil {
			return err
		}
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
			if keep(&m) {
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// updatePlacements replaces the placements of segment (stream, base) with
// fn's answer in one transaction and returns the segment as stored. It is
// UpdateSegment for a caller that changes placements only: fn sees the stored
// (durable) placements, tiers.Hot in its answer is dropped, and an answer
// with neither warm nor cold fails with ErrInvalidSegment and changes
// nothing.
func (c *Catalog) updatePlacements(ctx context.Context, stream string, base uint64, fn func(tiers.Placements) tiers.Placements) (tiers.SegmentMeta, error) {
	return c.updateSegment(ctx, "update_placements", stream, base, false, func(m *tiers.SegmentMeta) error {
		m.Placements = fn(m.Placements)
		return nil
	})
}

// UpdateSegment applies fn to the stored segment (stream, base) and stores
// the result in one transaction, so that no other writer slips between the
// read and the write, and returns the segment as stored. fn may change
// Placements, ColdBytes and Tombstoned; a change to any other field fails
// with ErrInvalidSegment, because the records a segment holds never change
// once it is sealed. tiers.Hot in the answer is dropped, and the result must
// pass PutSegment's checks: in particular a segment keeps a warm or cold
// placement until DeleteSegment (or CommitDelete) forgets it. An error from
// fn, or a failed check, changes nothing and is returned (fn's error as is).
// fn runs inside the write transaction: it must be quick and must not call
// the Catalog. A missing segment wraps tiers.ErrSegmentNotFound.
func (c *Catalog) UpdateSegment(ctx context.Context, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error) {
	return c.updateSegment(ctx, "update_segment", stream, base, false, fn)
}

// updateSegment is UpdateSegment accounted as op; with clearIntent it also
// forgets the segment's intent and last failure in the same transaction.
func (c *Catalog) updateSegment(ctx context.Context, op, stream string, base uint64, clearIntent bool, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error) {
	var m tiers.SegmentMeta
	err := c.update(ctx, op, func(tx *bolt.Tx) error {
		if clearIntent {
			if v := getNested(tx, bucketIntents, stream, base); v == nil {
				return fmt.Errorf("%w: %s/%d", ErrNoIntent, stream, base)
			}
		}
		var err error
		if m, err = c.updateTx(tx, stream, base, fn); err != nil {
			return err
		}
		if clearIntent {
			return clearSegmentTx(tx, stream, base)
		}
		return nil
	})
	if err != nil {
		return tiers.SegmentMeta{}, err
	}
	return m, nil
}

// updateTx applies fn to segment (stream, base) inside tx.
func (c *Catalog) updateTx(tx *bolt.Tx, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error) {
	old, err := c.getTx(tx, stream, base)
	if err != nil {
		return tiers.SegmentMeta{}, err
	}
	m := old
	if err := fn(&m); err != nil {
		return tiers.SegmentMeta{}, err
	}
	m.Placements = m.Placements.Without(tiers.Hot)
	if !sameRecords(&m, &old) || !m.Tombstoned.Equal(old.Tombstoned) || m.Tombstoned.IsZero() != old.Tombstoned.IsZero() {
		return tiers.SegmentMeta{}, fmt.Errorf("%w: %s/%d: only placements and cold bytes may change", ErrInvalidSegment, stream, base)
	}
	if m.Placements == old.Placements && m.ColdBytes == old.ColdBytes {
		return old, nil
	}
	if err := checkSegment(&m); err != nil {
		return tiers.SegmentMeta{}, fmt.Errorf("%w: %s/%d: %v", ErrInvalidSegment, stream, base, err)
	}
	if err := tx.Bucket([]byte(bucketSegments)).Bucket([]byte(stream)).Put(segmentKey(base), encodeSegment(&m)); err != nil {
		return tiers.SegmentMeta{}, err
	}
	// Return what a later read returns (times are stored to the nanosecond, in UTC).
	return decodeSegment(stream, base, encodeSegment(&m), false)
}

// sameRecords reports whether a and b describe the same records: every field
// but Placements, ColdBytes and Tombstoned is equal.
func sameRecords(a, b *tiers.SegmentMeta) bool {
	return a.Stream == b.Stream && a.Base == b.Base && a.Last == b.Last && a.Count == b.Count &&
		a.Bytes == b.Bytes && a.MinTS == b.MinTS && a.MaxTS == b.MaxTS &&
		a.SealedAt.Equal(b.SealedAt) && a.Digest == b.Digest
}

// DeleteSegment forgets segment (stream, base) and its last failure, but not
// its intent (CommitDelete forgets both), whatever its state: it is for
// repairs and tests. Forgetting a live segment leaves offsets at or above the
// retention watermark that no segment holds, which reads answer as damage
// and verify reports as a gap; deletion by retention goes through Tombstone
// and CommitDelete. The stream stays, and its NextOffset does not move back.
// A missing segment wraps tiers.ErrSegmentNotFound, which a retrying caller
// may ignore.
func (c *Catalog) DeleteSegment(ctx context.Context, stream string, base uint64) error {
	return c.update(ctx, "delete_segment", func(tx *bolt.Tx) error {
		return c.deleteTx(tx, stream, base, false)
	})
}

// deleteTx is DeleteSegment inside tx; retention requires the segment to be
// tombstoned and below the watermark, so that the deletion leaves no gap.
func (c *Catalog) deleteTx(tx *bolt.Tx, stream string, base uint64, retention bool) error {
	m, err := c.getTx(tx, stream, base)
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
	if retention && (m.Tombstoned.IsZero() || m.Last >= s.RetainedFrom) {
		return fmt.Errorf("%w: %s/%d: not tombstoned below the retention watermark %d (tombstoned %v)", ErrNotTombstoned, stream, base, s.RetainedFrom, m.Tombstoned)
	}
	if err := tx.Bucket([]byte(bucketSegments)).Bucket([]byte(stream)).Delete(segmentKey(base)); err != nil {
		return err
	}
	if err := c.subtract(&s, &m); err != nil {
		return err
	}
	// explain has nothing to show for a forgotten segment. Its intent
	// stays: it may name an object that recovery must still remove.
	if err := deleteNested(tx, bucketErrors, stream, base); err != nil {
		return err
	}
	return storeStream(tx, stream, &s)
}

// subtract takes segment m out of its stream's totals. Totals smaller than
// one of their segments mean the stored stream value is wrong.
func (c *Catalog) subtract(s *streamValue, m *tiers.SegmentMeta) error {
	if s.Segments == 0 || s.Records < m.Count || s.Bytes < uint64(m.Bytes) {
		return c.corrupt(fmt.Errorf("stream %q totals are below those of its segment %d", m.Stream, m.Base))
	}
	s.Segments--
	s.Records -= m.Count
	s.Bytes -= uint64(m.Bytes)
	return nil
}

// decodeAt decodes the value v stored under key k of stream's bucket; a
// failure is a *tiers.CorruptionError naming the segment.
func (c *Catalog) decodeAt(stream string, k, v []byte) (tiers.SegmentMeta, error) {
	base, err := keyBase(k)
	if err != nil {
		return tiers.SegmentMeta{}, c.corrupt(fmt.Errorf("stream %q: %w", stream, err))
	}
	if v == nil {
		return tiers.SegmentMeta{}, c.corrupt(fmt.Errorf("segment %s/%d is a bucket, not a value", stream, base))
	}
	m, err := decodeSegment(stream, base, v, false)
	if err != nil {
		return tiers.SegmentMeta{}, c.corrupt(fmt.Errorf("segment %s/%d: %w", stream, base, err))
	}
	return m, nil
}

// Retained returns the stream's retention watermark (offsets below it were
// deleted by retention), its next offset, and the segment that starts at
// the watermark, when there is one (ok). An unknown stream wraps
// tiers.ErrStreamNotFound.
func (c *Catalog) Retained(ctx context.Context, stream string) (from, next uint64, first tiers.SegmentMeta, ok bool, err error) {
	err = c.view(ctx, "retained", func(tx *bolt.Tx) error {
		segs, err := c.segmentBucket(tx, stream)
		if err != nil {
			return err
		}
		s, found, err := c.loadStream(tx, stream)
		if err != nil {
			return err
		}
		if !found {
			return c.corrupt(fmt.Errorf("stream %q has segments but no stream value", stream))
		}
		from, next = s.RetainedFrom, s.NextOffset
		key := segmentKey(from)
		if v := segs.Get(key); v != nil {
			m, err := c.decodeAt(stream, key, v)
			if err != nil {
				return err
			}
			first, ok = m, m.Tombstoned.IsZero()
		}
		return nil
	})
	return from, next, first, ok, err
}
