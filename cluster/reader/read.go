package reader

import (
	"context"
	"errors"
	"fmt"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/tiers"
)

// ErrJournalGap is the cause of a *tiers.CorruptionError for offsets below
// the stream's next offset that no journal range holds, at or above the
// first live one: the sequencer writes ranges densely and compaction only
// removes the oldest, so a gap is damage.
var ErrJournalGap = errors.New("reader: journal ranges do not cover the stream's offsets")

// journalPath names PostgreSQL's journal ranges in errors.
const journalPath = "postgres:journal_ranges"

// rangeRow is one journal_ranges row: a block of a journal object holding
// offsets [first, last] of the stream.
type rangeRow struct {
	first, last  uint64
	key          string
	off, n       int64
	minTS, maxTS int64
}

// read is one Read in progress.
type read struct {
	r      *Reader
	stream string
	q      tiers.Query
	end    uint64 // the last offset to serve: q.To or the stream's last
	yield  func(Item, error) bool
	pos    uint64 // the next offset to account for
	n      int    // records yielded
	// replanned is set, with replannedAt, when a vanished journal object
	// made the read plan again at that offset: a second time there is an
	// error, not a loop.
	replanned   bool
	replannedAt uint64
}

// run accounts for every offset in [q.From, end], planning a page at a
// time: the catalog's segments below the first live journal range, the
// journal ranges from there.
func (rd *read) run(ctx context.Context) {
	rd.pos = rd.q.From
	for rd.pos <= rd.end {
		if err := ctx.Err(); err != nil {
			rd.yield(Item{}, err)
			return
		}
		first, hasJournal, rows, err := rd.plan(ctx)
		if err != nil {
			rd.yield(Item{}, err)
			return
		}
		if !hasJournal || rd.pos < first {
			// Listing the journal before the catalog is what makes this
			// safe beside compaction: every offset below the first live
			// range at the time of the listing was committed to a
			// segment by then.
			to := rd.end
			if hasJournal {
				to = min(to, first-1)
			}
			if !rd.segments(ctx, rd.pos, to) {
				return
			}
			rd.pos = to + 1
			if rd.pos > rd.end {
				return
			}
		}
		stop, err := rd.ranges(ctx, rows)
		switch {
		case errors.Is(err, errVanished) && !(rd.replanned && rd.replannedAt == rd.pos):
			// Compacted and collected since the listing: the catalog
			// has the offsets now.
			rd.r.opts.Logger.Info("journal object gone since the read was planned; planning again", "stream", rd.stream, "offset", rd.pos, "err", err)
			rd.replanned, rd.replannedAt = true, rd.pos
			continue
		case err != nil:
			rd.yield(Item{}, err)
			return
		case stop:
			return
		}
		if len(rows) < rd.r.opts.PlanRows && rd.pos <= rd.end {
			rd.yield(Item{}, rd.gap(rd.pos, rd.end+1))
			return
		}
	}
}

// gap is the error for offsets [from, to) no journal range holds.
func (rd *read) gap(from, to uint64) error {
	return &tiers.CorruptionError{Path: journalPath, Offset: -1, Err: fmt.Errorf(
		"%w: offsets [%d, %d) of stream %s are below its next offset and at or above its first journal range, but no range holds them; run tierctl verify",
		ErrJournalGap, from, to, rd.stream)}
}

// plan lists, in one statement (one snapshot), the stream's first live
// journal range and a page of ranges from the one holding pos (or from the
// first, when pos is below it) up to end.
func (rd *read) plan(ctx context.Context) (first uint64, ok bool, rows []rangeRow, err error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rs, err := rd.r.opts.Pool.Query(qctx, `
		WITH lo AS (SELECT min(first_offset) AS j FROM journal_ranges WHERE stream = $1)
		SELECT lo.j, r.first_offset, r.last_offset, r.object_key, r.byte_off, r.byte_len, r.min_ts, r.max_ts
		FROM lo LEFT JOIN LATERAL (
			SELECT * FROM journal_ranges
			WHERE stream = $1 AND first_offset <= $3 AND first_offset >= coalesce(
				(SELECT max(first_offset) FROM journal_ranges WHERE stream = $1 AND first_offset <= $2), lo.j)
			ORDER BY first_offset LIMIT $4) r ON true
		ORDER BY r.first_offset`,
		rd.stream, int64(rd.pos), int64(rd.end), rd.r.opts.PlanRows)
	if err != nil {
		return 0, false, nil, pgErr(ctx, "plan a read of "+rd.stream, err)
	}
	defer rs.Close()
	for rs.Next() {
		var j, f, l, off, n, minTS, maxTS *int64
		var key *string
		if err := rs.Scan(&j, &f, &l, &key, &off, &n, &minTS, &maxTS); err != nil {
			return 0, false, nil, pgErr(ctx, "plan a read of "+rd.stream, err)
		}
		if j != nil {
			first, ok = uint64(*j), true
		}
		if f == nil {
			continue // the LEFT JOIN's row when no range is listed
		}
		rows = append(rows, rangeRow{first: uint64(*f), last: uint64(*l), key: *key, off: *off, n: *n, minTS: *minTS, maxTS: *maxTS})
	}
	if err := rs.Err(); err != nil {
		return 0, false, nil, pgErr(ctx, "plan a read of "+rd.stream, err)
	}
	return first, ok, rows, nil
}

// emit yields one record; false when the read must stop (the consumer is
// done or the limit reached).
func (rd *read) emit(rec tiers.Record, src Source) bool {
	if !rd.yield(Item{Record: rec, Source: src}, nil) {
		return false
	}
	rd.n++
	return rd.q.Limit <= 0 || rd.n < rd.q.Limit
}

// segments serves offsets [from, to] from the catalog's segments, every
// offset accounted for as engine.Read does: held by a live segment
// (served), tombstoned or below the watermark (tiers.ErrExpired), or else
// missing (damage). It returns false when the read must stop.
func (rd *read) segments(ctx context.Context, from, to uint64) bool {
	segs, retained, err := rd.r.opts.Catalog.Locate(ctx, rd.stream, from, to)
	if err != nil && !errors.Is(err, tiers.ErrStreamNotFound) {
		rd.yield(Item{}, err)
		return false
	}
	for _, sp := range catalog.Spans(segs, from, to, retained) {
		switch {
		case sp.Expired:
			rd.yield(Item{}, fmt.Errorf("%w: offsets [%d, %d) of stream %s are no longer retained", tiers.ErrExpired, sp.From, sp.To, rd.stream))
			return false
		case sp.Seg == nil:
			rd.yield(Item{}, &tiers.CorruptionError{Path: "catalog", Offset: -1, Err: fmt.Errorf(
				"%w: offsets [%d, %d) of stream %s are at or above its retention watermark %d and below its first journal range, but no segment holds them; run tierctl verify",
				catalog.ErrRetainedGap, sp.From, sp.To, rd.stream, retained)})
			return false
		case !rd.q.OverlapsTime(sp.Seg.MinTS, sp.Seg.MaxTS):
			continue
		}
		if err := ctx.Err(); err != nil {
			rd.yield(Item{}, err)
			return false
		}
		if !rd.segment(ctx, *sp.Seg, sp.From, sp.To-1) {
			return false
		}
	}
	return true
}

// segment serves offsets [from, to] of one live segment from its cold
// object. The object serves only the segment's own offsets, each once, in
// order: anything else is damage.
func (rd *read) segment(ctx context.Context, seg tiers.SegmentMeta, from, to uint64) bool {
	if !seg.Placements.Has(tiers.Cold) || rd.r.opts.Cold == nil {
		rd.yield(Item{}, fmt.Errorf("reader: segment %s/%d has no readable placement (%s)", seg.Stream, seg.Base, seg.Placements))
		return false
	}
	q := rd.q
	q.From, q.To = from, to
	next := from
	for rec, err := range rd.r.opts.Cold.Scan(ctx, seg, q) {
		if err != nil {
			rd.yield(Item{}, err)
			return false
		}
		if rec.Offset < next || rec.Offset > to {
			rd.yield(Item{}, &tiers.CorruptionError{Path: cold.ObjectKey(seg), Offset: -1, Err: fmt.Errorf(
				"cold copy of segment %s/%d [%d, %d] served offset %d after %d", seg.Stream, seg.Base, seg.Base, seg.Last, rec.Offset, next)})
			return false
		}
		next = rec.Offset + 1
		if !rd.emit(rec, ColdSegment) {
			return false
		}
	}
	return true
}
