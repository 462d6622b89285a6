package reader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tierd/tierd/tiers"
)

// Retention says which of a stream's offsets can be read; it mirrors
// engine.Retention.
type Retention struct {
	// First is the lowest retained offset: the stream's retention
	// watermark in the catalog. Offsets below it were deleted by
	// retention.
	First uint64
	// FirstTS is the ts of the record at First (the smallest ts of the
	// segment or journal range starting there), when HasFirstTS.
	FirstTS    int64
	HasFirstTS bool
	// Next is the offset the next record will get (cluster_streams).
	Next uint64
}

// Retention reports the retained range of stream. A stream cluster_streams
// does not have wraps tiers.ErrStreamNotFound.
func (r *Reader) Retention(ctx context.Context, stream string) (Retention, error) {
	var ret Retention
	from, _, m, ok, err := r.opts.Catalog.Retained(ctx, stream)
	switch {
	case errors.Is(err, tiers.ErrStreamNotFound):
		// Nothing compacted yet: the journal holds every offset.
	case err != nil:
		return Retention{}, err
	default:
		ret.First = from
		if ok {
			ret.FirstTS, ret.HasFirstTS = m.MinTS, true
		}
	}
	var next int64
	var firstTS *int64
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	err = r.opts.Pool.QueryRow(qctx, `
		SELECT s.next_offset,
		       (SELECT j.min_ts FROM journal_ranges j WHERE j.stream = s.stream AND j.first_offset = $2)
		FROM cluster_streams s WHERE s.stream = $1`, stream, int64(ret.First)).Scan(&next, &firstTS)
	if errors.Is(err, pgx.ErrNoRows) {
		return Retention{}, fmt.Errorf("%w: %s", tiers.ErrStreamNotFound, stream)
	}
	if err != nil {
		return Retention{}, pgErr(ctx, "stream "+stream, err)
	}
	ret.Next = uint64(next)
	if !ret.HasFirstTS && firstTS != nil {
		ret.FirstTS, ret.HasFirstTS = *firstTS, true
	}
	return ret, nil
}

// fit fits a read to the stream's retained range, the rule of engine's
// fitRetention: a read that names offsets (From without q.FromRetained, or
// To) lying below the first retained offset, or with q.FromRetained a time
// range (Until, when bounded) ending at or before the first retained
// record, fails with tiers.ErrExpired naming the expired range and the
// first retained offset; with q.FromRetained a read starts at the first
// retained offset.
func (r Retention) fit(stream string, q *tiers.Query) error {
	if r.First == 0 {
		return nil
	}
	gone := func(from, to uint64) error {
		return fmt.Errorf("%w: offsets [%d, %d) of stream %s were deleted by retention; the first retained offset is %d",
			tiers.ErrExpired, from, to, stream, r.First)
	}
	switch {
	case !q.FromRetained && q.From < r.First:
		return gone(q.From, min(q.To, r.First-1)+1)
	case q.To < r.First:
		return gone(q.From, q.To+1)
	case q.FromRetained && q.Until != math.MaxInt64 && r.HasFirstTS && q.Until <= r.FirstTS:
		return fmt.Errorf("%w: records of stream %s before %s were deleted by retention; the first retained record is offset %d at %s",
			tiers.ErrExpired, stream, formatTS(q.Until), r.First, formatTS(r.FirstTS))
	}
	q.From = max(q.From, r.First)
	return nil
}

// formatTS renders Unix ns as the API does.
func formatTS(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
