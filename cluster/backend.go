package cluster

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// AppendAs checks stream and recs as engine.Engine.AppendAs does (the same
// errors, before anything is sent: tiers.ErrInvalidStreamName,
// tiers.ErrInvalidRecord, tiers.ErrKeyTooLarge, tiers.ErrRecordTooLarge),
// then sequences the batch through the shared journal: it returns once the
// batch's journal object is in the store and its offsets are committed in
// PostgreSQL. A retry of an idempotent producer's last batch answers the
// first attempt's offsets with Duplicate set. Outages wrap
// tiers.ErrStorageUnavailable; a full pending queue tiers.ErrBackpressure;
// after Close tiers.ErrClosed.
func (n *Node) AppendAs(ctx context.Context, stream string, p tiers.Producer, recs []tiers.Record) (engine.AppendResult, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return engine.AppendResult{}, err
	}
	if len(recs) == 0 {
		return engine.AppendResult{}, fmt.Errorf("%w: empty batch", tiers.ErrInvalidRecord)
	}
	for i := range recs {
		if err := recs[i].Validate(n.maxRecordBytes()); err != nil {
			return engine.AppendResult{}, fmt.Errorf("record %d: %w", i, err)
		}
	}
	if n.closed.Load() {
		return engine.AppendResult{}, errClosed
	}
	first, dup, err := n.parts.seq.Append(ctx, stream, p, recs)
	if err != nil {
		return engine.AppendResult{}, err
	}
	return engine.AppendResult{First: first, Last: first + uint64(len(recs)) - 1, Count: len(recs), Duplicate: dup}, nil
}

// maxRecordBytes is the cap on a record's value, the configuration's.
func (n *Node) maxRecordBytes() int {
	if m := int(n.opts.Config.MaxRecordBytes); m > 0 {
		return m
	}
	return tiers.DefaultMaxRecordBytes
}

// Read returns the records of stream matching q in offset order, from any
// node's commits: the reader's answer (see the package doc). An unknown
// stream yields tiers.ErrStreamNotFound first and only.
func (n *Node) Read(ctx context.Context, stream string, q tiers.Query) iter.Seq2[engine.Item, error] {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return func(yield func(engine.Item, error) bool) { yield(engine.Item{}, err) }
	}
	return n.parts.rd.Read(ctx, stream, q)
}

// WaitFor blocks until stream holds a record at offset or above, committed
// by any node, or ctx is done. An unknown stream is waited for too.
func (n *Node) WaitFor(ctx context.Context, stream string, offset uint64) error {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return err
	}
	return n.parts.rd.WaitFor(ctx, stream, offset)
}

// nextOffset is cluster_streams' next offset of stream: the sequencer's,
// one past the highest acknowledged offset. An unknown stream wraps
// tiers.ErrStreamNotFound.
func (n *Node) nextOffset(ctx context.Context, q querier, stream string) (uint64, error) {
	var next int64
	ctx, cancel := bounded(ctx)
	defer cancel()
	err := q.QueryRow(ctx, `SELECT next_offset FROM cluster_streams WHERE stream = $1`, stream).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", tiers.ErrStreamNotFound, stream)
	}
	if err != nil {
		return 0, pgErr("read the next offset of "+stream, err)
	}
	return uint64(next), nil
}

// Retention reports the retained range of stream: First is the catalog's
// retention watermark (0 while retention deleted nothing), Next the offset
// the next record will get. An unknown stream is tiers.ErrStreamNotFound.
func (n *Node) Retention(ctx context.Context, stream string) (engine.Retention, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return engine.Retention{}, err
	}
	next, err := n.nextOffset(ctx, n.pool, stream)
	if err != nil {
		return engine.Retention{}, err
	}
	r := engine.Retention{Next: next}
	from, _, m, ok, err := n.cat.Retained(ctx, stream)
	switch {
	case errors.Is(err, tiers.ErrStreamNotFound):
		// Nothing compacted yet: every offset is in the journal.
	case err != nil:
		return engine.Retention{}, err
	default:
		r.First = from
		if ok {
			r.FirstTS, r.HasFirstTS = m.MinTS, true
		}
	}
	if !r.HasFirstTS && r.First < next {
		// The first retained record is in the journal's first range.
		var ts int64
		qctx, cancel := bounded(ctx)
		err := n.pool.QueryRow(qctx, `SELECT min_ts FROM journal_ranges WHERE stream = $1 AND first_offset = $2`,
			stream, int64(r.First)).Scan(&ts)
		cancel()
		if err == nil {
			r.FirstTS, r.HasFirstTS = ts, true
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return engine.Retention{}, pgErr("read the first range of "+stream, err)
		}
	}
	return r, nil
}

// Describe is a catalog segment as the segments listing shows it: as
// stored (this node's memory holds blocks, not segments: no hot overlay).
func (n *Node) Describe(m tiers.SegmentMeta) engine.SegmentInfo {
	return engine.SegmentInfo{SegmentMeta: m}
}

// Offload answers a catalog segment as it is: every segment of cluster mode
// is born cold (Parquet), so there is nothing to move, and keepWarm has no
// meaning (the journal ranges were released by the compaction that made
// it). Offsets still in the journal are engine.ErrNotPersisted: compaction
// makes them a segment (Seal does it now).
func (n *Node) Offload(ctx context.Context, stream string, base uint64, keepWarm bool) (tiers.SegmentMeta, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return tiers.SegmentMeta{}, err
	}
	m, err := n.cat.Segment(ctx, stream, base)
	if err == nil {
		if !m.Tombstoned.IsZero() {
			return tiers.SegmentMeta{}, fmt.Errorf("%w: segment %s/%d is tombstoned by retention", tiers.ErrSegmentNotFound, stream, base)
		}
		return m, nil
	}
	if !errors.Is(err, tiers.ErrSegmentNotFound) && !errors.Is(err, tiers.ErrStreamNotFound) {
		return tiers.SegmentMeta{}, err
	}
	next, nerr := n.nextOffset(ctx, n.pool, stream)
	if nerr != nil {
		return tiers.SegmentMeta{}, nerr
	}
	var held bool
	if base < next {
		qctx, cancel := bounded(ctx)
		qerr := n.pool.QueryRow(qctx, `SELECT EXISTS (SELECT 1 FROM journal_ranges WHERE stream = $1 AND first_offset = $2)`,
			stream, int64(base)).Scan(&held)
		cancel()
		if qerr != nil {
			return tiers.SegmentMeta{}, pgErr("look up a journal range", qerr)
		}
	}
	if held {
		return tiers.SegmentMeta{}, fmt.Errorf("%w: offsets from %d of stream %s are in the shared journal, not yet compacted into a segment; compaction makes them a cold segment (POST /v1/streams/%s/seal does it now)",
			engine.ErrNotPersisted, base, stream, stream)
	}
	return tiers.SegmentMeta{}, fmt.Errorf("%w: no segment of stream %s starts at %d", tiers.ErrSegmentNotFound, stream, base)
}
