package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// Streams lists every stream ordered by name (as bytes), with its totals.
func (c *Catalog) Streams(ctx context.Context) ([]catalog.StreamInfo, error) {
	var out []catalog.StreamInfo
	err := c.read(ctx, "streams", func(ctx context.Context, q *pgxpool.Pool) error {
		rows, err := q.Query(ctx, `SELECT `+streamCols+` FROM catalog_streams s ORDER BY s.stream`)
		if err != nil {
			return err
		}
		out, err = collect(rows, (*streamRow).dest, (*streamRow).info)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Segment returns the segment (stream, base) as stored; a missing one
// wraps tiers.ErrSegmentNotFound.
func (c *Catalog) Segment(ctx context.Context, stream string, base uint64) (tiers.SegmentMeta, error) {
	var m tiers.SegmentMeta
	err := c.read(ctx, "segment", func(ctx context.Context, q *pgxpool.Pool) error {
		var ok bool
		var err error
		m, ok, err = getSegment(ctx, q, stream, base, "")
		if err == nil && !ok {
			err = fmt.Errorf("pgcatalog: segment %s/%d: %w", stream, base, tiers.ErrSegmentNotFound)
		}
		return err
	})
	if err != nil {
		return tiers.SegmentMeta{}, err
	}
	return m, nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// getSegment reads segment (stream, base), locked as lock says ("", "FOR
// UPDATE", "FOR SHARE"); ok is false when there is none.
func getSegment(ctx context.Context, q querier, stream string, base uint64, lock string) (tiers.SegmentMeta, bool, error) {
	if base > maxOffset {
		return tiers.SegmentMeta{}, false, nil
	}
	var r segRow
	err := q.QueryRow(ctx, `SELECT `+segCols+` FROM catalog_segments g WHERE g.stream = $1 AND g.base = $2 `+lock,
		stream, int64(base)).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return tiers.SegmentMeta{}, false, nil
	}
	if err != nil {
		return tiers.SegmentMeta{}, false, err
	}
	m, err := r.meta()
	return m, err == nil, err
}

// streamSegments runs query, one statement selecting streamCols and then
// segCols of the stream's row LEFT JOINed with some of its segments by
// base, and decodes its answer. An unknown stream wraps
// tiers.ErrStreamNotFound.
func streamSegments(ctx context.Context, q querier, stream, query string, args ...any) (catalog.StreamInfo, []tiers.SegmentMeta, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return catalog.StreamInfo{}, nil, err
	}
	defer rows.Close()
	var info catalog.StreamInfo
	found := false
	segs := []tiers.SegmentMeta{}
	for rows.Next() {
		var sr streamRow
		var gr segRow
		if err := rows.Scan(append(sr.dest(), gr.dest()...)...); err != nil {
			return catalog.StreamInfo{}, nil, err
		}
		if !found {
			if info, err = sr.info(); err != nil {
				return catalog.StreamInfo{}, nil, err
			}
			found = true
		}
		if gr.present() {
			m, err := gr.meta()
			if err != nil {
				return catalog.StreamInfo{}, nil, err
			}
			if m.Stream != stream {
				return catalog.StreamInfo{}, nil, damaged("catalog_segments", segKey(m.Stream, m.Base), fmt.Errorf("read as a segment of %q", stream))
			}
			segs = append(segs, m)
		}
	}
	if err := rows.Err(); err != nil {
		return catalog.StreamInfo{}, nil, err
	}
	if !found {
		return catalog.StreamInfo{}, nil, fmt.Errorf("pgcatalog: stream %q: %w", stream, tiers.ErrStreamNotFound)
	}
	return info, segs, nil
}

// allSegments selects a stream and every one of its segments.
const allSegments = `SELECT ` + streamCols + `, ` + segCols + `
	FROM catalog_streams s LEFT JOIN catalog_segments g ON g.stream = s.stream
	WHERE s.stream = $1 ORDER BY g.base`

// Segments returns every segment of a known stream ordered by base,
// tombstoned ones included.
func (c *Catalog) Segments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error) {
	var segs []tiers.SegmentMeta
	err := c.read(ctx, "segments", func(ctx context.Context, q *pgxpool.Pool) (err error) {
		_, segs, err = streamSegments(ctx, q, stream, allSegments, stream)
		return err
	})
	if err != nil {
		return nil, err
	}
	return segs, nil
}

// Locate returns the segments of stream holding any offset of [from, to],
// ordered by base, and the stream's retention watermark, from one
// snapshot. Segments never overlap, so the one holding from is the last
// starting at or before it: two index range scans whose cost follows the
// answer.
func (c *Catalog) Locate(ctx context.Context, stream string, from, to uint64) ([]tiers.SegmentMeta, uint64, error) {
	var segs []tiers.SegmentMeta
	var info catalog.StreamInfo
	err := c.read(ctx, "locate", func(ctx context.Context, q *pgxpool.Pool) (err error) {
		info, segs, err = streamSegments(ctx, q, stream, `SELECT `+streamCols+`, `+segCols+`
			FROM catalog_streams s LEFT JOIN (
				(SELECT * FROM catalog_segments WHERE stream = $1 AND base <= $2 ORDER BY base DESC LIMIT 1)
				UNION ALL
				(SELECT * FROM catalog_segments WHERE stream = $1 AND base > $2 AND base <= $3 ORDER BY base)
			) g ON g.last_offset >= $2::bigint AND $2::bigint <= $3::bigint
			WHERE s.stream = $1 ORDER BY g.base`,
			stream, clampOffset(from), clampOffset(to))
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if from > to {
		segs = []tiers.SegmentMeta{}
	}
	return segs, info.RetainedFrom, nil
}

// clampOffset maps an offset to a bigint argument: past maxOffset no
// segment holds one (their Last stays below it), so maxOffset selects the
// same.
func clampOffset(o uint64) int64 { return int64(min(o, maxOffset)) }

// Retained returns the stream's watermark, its next offset and the live
// segment starting at the watermark (ok), from one snapshot.
func (c *Catalog) Retained(ctx context.Context, stream string) (from, next uint64, first tiers.SegmentMeta, ok bool, err error) {
	err = c.read(ctx, "retained", func(ctx context.Context, q *pgxpool.Pool) error {
		info, segs, err := streamSegments(ctx, q, stream, `SELECT `+streamCols+`, `+segCols+`
			FROM catalog_streams s LEFT JOIN catalog_segments g ON g.stream = s.stream AND g.base = s.retained_from
			WHERE s.stream = $1`, stream)
		if err != nil {
			return err
		}
		from, next = info.RetainedFrom, info.NextOffset
		first, ok = tiers.SegmentMeta{}, false
		if len(segs) == 1 {
			first, ok = segs[0], segs[0].Tombstoned.IsZero()
		}
		return nil
	})
	if err != nil {
		return 0, 0, tiers.SegmentMeta{}, false, err
	}
	return from, next, first, ok, nil
}

// Coverage checks that every retained offset is held by exactly one
// segment, as the bbolt Catalog's Coverage does, from one snapshot.
func (c *Catalog) Coverage(ctx context.Context, stream string) (catalog.Coverage, error) {
	var info catalog.StreamInfo
	var segs []tiers.SegmentMeta
	err := c.read(ctx, "coverage", func(ctx context.Context, q *pgxpool.Pool) (err error) {
		info, segs, err = streamSegments(ctx, q, stream, allSegments, stream)
		return err
	})
	if err != nil {
		return catalog.Coverage{}, err
	}
	cv := catalog.Coverage{First: info.RetainedFrom, Next: info.NextOffset, Gaps: [][2]uint64{}, Overlaps: [][2]uint64{}}
	covered := cv.First // one past the highest offset covered so far
	for _, m := range segs {
		tomb := !m.Tombstoned.IsZero()
		if tomb {
			cv.Tombstoned = append(cv.Tombstoned, m)
		}
		if tomb != (m.Last < cv.First) {
			cv.Misplaced = append(cv.Misplaced, m)
		}
		if m.Last < cv.First {
			continue
		}
		if m.Base > covered {
			cv.Gaps = append(cv.Gaps, [2]uint64{covered, m.Base})
		} else if m.Base < covered && m.Base >= cv.First {
			cv.Overlaps = appendRange(cv.Overlaps, m.Base, min(covered, m.Last+1))
		}
		covered = max(covered, m.Last+1)
	}
	if covered > cv.Next {
		return catalog.Coverage{}, damaged("catalog_streams", fmt.Sprintf("(%s)", stream),
			fmt.Errorf("segments reach offset %d past the next offset %d", covered-1, cv.Next))
	}
	if covered < cv.Next {
		cv.Gaps = append(cv.Gaps, [2]uint64{covered, cv.Next})
	}
	return cv, nil
}

// appendRange appends [from, to) to rs, merging it into the last range when
// they touch.
func appendRange(rs [][2]uint64, from, to uint64) [][2]uint64 {
	if n := len(rs); n > 0 && rs[n-1][1] >= from {
		rs[n-1][1] = max(rs[n-1][1], to)
		return rs
	}
	return append(rs, [2]uint64{from, to})
}

// PutSegment registers m, creating its stream when new, or replaces the
// segment with the same (Stream, Base), with the bbolt Catalog's checks
// (catalog.CheckSegment, the retention watermark, overlaps), and Last
// below 2^63-1 (offsets are bigint). It is PutSegmentTx in a transaction
// of its own.
func (c *Catalog) PutSegment(ctx context.Context, m tiers.SegmentMeta) error {
	if err := validForPut(&m); err != nil {
		return err
	}
	return c.write(ctx, "put_segment", func(ctx context.Context, tx pgx.Tx) error {
		return c.putTx(ctx, tx, &m)
	})
}

// PutSegmentTx is PutSegment inside the caller's transaction tx, so that a
// segment's registration commits or rolls back with the caller's other
// changes (the compactor releases the journal ranges the segment replaces
// in the same transaction). It runs the same checks and makes the same
// changes; a refusal (ErrInvalidSegment, ErrOverlap) changes nothing and
// leaves tx usable. It locks the stream's catalog_streams row until tx
// ends. tx should be READ COMMITTED (pgx's default); under REPEATABLE READ
// or SERIALIZABLE a concurrent writer of the same stream makes it fail
// with a serialization failure (SQLSTATE 40001) for the caller to retry.
// Unlike the Catalog's own calls it retries nothing, and a failed
// statement aborts tx.
func (c *Catalog) PutSegmentTx(ctx context.Context, tx pgx.Tx, m tiers.SegmentMeta) error {
	if err := validForPut(&m); err != nil {
		return err
	}
	done, err := c.enter(ctx, "put_segment_tx")
	if err != nil {
		return err
	}
	defer done()
	start := time.Now()
	if err = c.putTx(ctx, tx, &m); err != nil {
		err = wrap(ctx, "put_segment_tx", err)
	}
	c.observe("put_segment_tx", start, err)
	return err
}

// validForPut drops hot residency from m, truncates its times as stored,
// and checks what PutSegment checks before its transaction.
func validForPut(m *tiers.SegmentMeta) error {
	if err := tiers.ValidateStreamName(m.Stream); err != nil {
		return fmt.Errorf("pgcatalog: put segment: %w", err)
	}
	m.Placements = m.Placements.Without(tiers.Hot)
	m.SealedAt, m.Tombstoned = pgTime(m.SealedAt), pgTime(m.Tombstoned)
	if err := catalog.CheckSegment(m); err != nil {
		return fmt.Errorf("%w: %s/%d: %v", catalog.ErrInvalidSegment, m.Stream, m.Base, err)
	}
	if m.Last >= maxOffset {
		return fmt.Errorf("%w: %s/%d: last offset %d past the PostgreSQL catalog's %d", catalog.ErrInvalidSegment, m.Stream, m.Base, m.Last, int64(maxOffset-1))
	}
	return nil
}

// putTx is PutSegment inside tx for a segment that passed validForPut.
func (c *Catalog) putTx(ctx context.Context, tx pgx.Tx, m *tiers.SegmentMeta) error {
	if _, err := tx.Exec(ctx, `INSERT INTO catalog_streams (stream, created_at) VALUES ($1, $2) ON CONFLICT (stream) DO NOTHING`,
		m.Stream, c.stamp()); err != nil {
		return err
	}
	s, ok, err := lockStream(ctx, tx, m.Stream)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pgcatalog: stream %q missing right after its insert", m.Stream)
	}
	if m.Base < s.RetainedFrom {
		return fmt.Errorf("%w: %s/%d: offsets below %d were deleted by retention", catalog.ErrInvalidSegment, m.Stream, m.Base, s.RetainedFrom)
	}
	// Stored segments never overlap: only the nearest on each side of
	// m.Base can intersect m.
	rows, err := tx.Query(ctx, `
		(SELECT `+segCols+` FROM catalog_segments g WHERE g.stream = $1 AND g.base < $2 ORDER BY g.base DESC LIMIT 1)
		UNION ALL
		(SELECT `+segCols+` FROM catalog_segments g WHERE g.stream = $1 AND g.base = $2)
		UNION ALL
		(SELECT `+segCols+` FROM catalog_segments g WHERE g.stream = $1 AND g.base > $2 ORDER BY g.base LIMIT 1)`,
		m.Stream, int64(m.Base))
	if err != nil {
		return err
	}
	near, err := collect(rows, (*segRow).dest, (*segRow).meta)
	if err != nil {
		return err
	}
	var old tiers.SegmentMeta
	replacing := false
	for _, n := range near {
		switch {
		case n.Base == m.Base:
			old, replacing = n, true
		case n.Base < m.Base && n.Last >= m.Base, n.Base > m.Base && n.Base <= m.Last:
			return fmt.Errorf("%w: %s [%d, %d] intersects [%d, %d]", catalog.ErrOverlap, m.Stream, m.Base, m.Last, n.Base, n.Last)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO catalog_segments
		(stream, base, last_offset, count, bytes, min_ts, max_ts, sealed_at, digest, placements, cold_bytes, tombstoned)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (stream, base) DO UPDATE SET
			last_offset = EXCLUDED.last_offset, count = EXCLUDED.count, bytes = EXCLUDED.bytes,
			min_ts = EXCLUDED.min_ts, max_ts = EXCLUDED.max_ts, sealed_at = EXCLUDED.sealed_at,
			digest = EXCLUDED.digest, placements = EXCLUDED.placements,
			cold_bytes = EXCLUDED.cold_bytes, tombstoned = EXCLUDED.tombstoned`, segArgs(m)...); err != nil {
		return err
	}
	if replacing {
		if err := subtract(&s, &old); err != nil {
			return err
		}
	}
	if s.Bytes > maxOffset-m.Bytes {
		return fmt.Errorf("%w: %s/%d: the stream's byte total would overflow", catalog.ErrInvalidSegment, m.Stream, m.Base)
	}
	s.Segments++
	s.Records += m.Count
	s.Bytes += m.Bytes
	s.NextOffset = max(s.NextOffset, m.Last+1)
	return storeTotals(ctx, tx, &s)
}

// lockStream reads a stream's row FOR UPDATE; ok is false for an unknown
// stream.
func lockStream(ctx context.Context, tx pgx.Tx, name string) (catalog.StreamInfo, bool, error) {
	var r streamRow
	err := tx.QueryRow(ctx, `SELECT `+streamCols+` FROM catalog_streams s WHERE s.stream = $1 FOR UPDATE`, name).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.StreamInfo{}, false, nil
	}
	if err != nil {
		return catalog.StreamInfo{}, false, err
	}
	info, err := r.info()
	return info, err == nil, err
}

// storeTotals writes a stream's totals and watermarks back.
func storeTotals(ctx context.Context, tx pgx.Tx, s *catalog.StreamInfo) error {
	_, err := tx.Exec(ctx, `UPDATE catalog_streams SET segments = $2, records = $3, bytes = $4, next_offset = $5, retained_from = $6
		WHERE stream = $1`, s.Name, int64(s.Segments), int64(s.Records), s.Bytes, int64(s.NextOffset), int64(s.RetainedFrom))
	return err
}

// subtract takes segment m out of its stream's totals; totals smaller than
// one of their segments are damage.
func subtract(s *catalog.StreamInfo, m *tiers.SegmentMeta) error {
	if s.Segments == 0 || s.Records < m.Count || s.Bytes < m.Bytes {
		return damaged("catalog_streams", fmt.Sprintf("(%s)", s.Name), fmt.Errorf("totals below those of its segment %d", m.Base))
	}
	s.Segments--
	s.Records -= m.Count
	s.Bytes -= m.Bytes
	return nil
}

// UpdateSegment applies fn to the stored segment and stores the result in
// one transaction; only Placements and ColdBytes may change. fn runs
// inside the transaction, with the segment's row locked, and may run
// again if the transaction is retried.
func (c *Catalog) UpdateSegment(ctx context.Context, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error) {
	return c.updateSegment(ctx, "update_segment", stream, base, false, fn)
}

// CommitMove is a move's commit: fn applied as by UpdateSegment, the
// segment's intent cleared and its last failure forgotten, all in one
// transaction or none of it. A segment without an intent wraps
// catalog.ErrNoIntent.
func (c *Catalog) CommitMove(ctx context.Context, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error) {
	return c.updateSegment(ctx, "commit_move", stream, base, true, fn)
}

func (c *Catalog) updateSegment(ctx context.Context, op, stream string, base uint64, commit bool, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error) {
	var out tiers.SegmentMeta
	err := c.write(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		old, ok, err := getSegment(ctx, tx, stream, base, "FOR UPDATE")
		if err != nil {
			return err
		}
		if commit {
			has, err := lockIntent(ctx, tx, stream, base)
			if err != nil {
				return err
			}
			if !has {
				return fmt.Errorf("%w: %s/%d", catalog.ErrNoIntent, stream, base)
			}
		}
		if !ok {
			return fmt.Errorf("pgcatalog: segment %s/%d: %w", stream, base, tiers.ErrSegmentNotFound)
		}
		m := old
		if err := fn(&m); err != nil {
			return err
		}
		m.Placements = m.Placements.Without(tiers.Hot)
		if !catalog.SameRecords(&m, &old) || !m.Tombstoned.Equal(old.Tombstoned) || m.Tombstoned.IsZero() != old.Tombstoned.IsZero() {
			return fmt.Errorf("%w: %s/%d: only placements and cold bytes may change", catalog.ErrInvalidSegment, stream, base)
		}
		out = old
		if m.Placements != old.Placements || m.ColdBytes != old.ColdBytes {
			if err := catalog.CheckSegment(&m); err != nil {
				return fmt.Errorf("%w: %s/%d: %v", catalog.ErrInvalidSegment, stream, base, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE catalog_segments SET placements = $3, cold_bytes = $4 WHERE stream = $1 AND base = $2`,
				stream, int64(base), placementNames(m.Placements), m.ColdBytes); err != nil {
				return err
			}
			out = m
		}
		if commit {
			return clearSegment(ctx, tx, stream, base)
		}
		return nil
	})
	if err != nil {
		return tiers.SegmentMeta{}, err
	}
	return out, nil
}
