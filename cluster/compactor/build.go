package compactor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/journal"
	"github.com/tierd/tierd/tiers"
)

// span is one journal_ranges row of a job.
type span struct {
	first, last  uint64
	key          string
	off, length  int64
	minTS, maxTS int64
	bytes        int64
}

// built is a job's segment, ready to upload: its metadata (digest and ts
// range computed from the records) and its blocks, checked and spooled to
// a local file so the upload reads them without fetching them again.
type built struct {
	meta   tiers.SegmentMeta
	ranges []span
	spool  *os.File
	maxVal int
}

func (b *built) close() {
	if b.spool != nil {
		b.spool.Close()
		os.Remove(b.spool.Name())
	}
}

// ErrJournalGap reports journal ranges that do not cover a job's offsets
// exactly: a job is never built over a hole.
var ErrJournalGap = errors.New("compactor: journal ranges do not cover the job")

// build reads the job's ranges and their blocks. Every block is checked by
// journal.DecodeBlock against its row (object, position, stream, record
// count) and its ts range against the row's; damage is a
// *tiers.CorruptionError and the job fails.
func (c *Compactor) build(ctx context.Context, j Job) (*built, error) {
	ranges, err := c.ranges(ctx, j)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(c.opts.SpoolDir, "compact-*.blocks")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	b := &built{meta: segmentMeta(j), ranges: ranges, spool: f, maxVal: c.opts.MaxRecordBytes}
	b.meta.MinTS, b.meta.MaxTS = math.MaxInt64, math.MinInt64
	d := tiers.NewDigester()
	w := bufio.NewWriterSize(f, 1<<20)
	for _, r := range ranges {
		block, err := c.fetch(ctx, r)
		if err != nil {
			b.close()
			return nil, err
		}
		blk, err := b.decode(block, r)
		if err != nil {
			b.close()
			return nil, err
		}
		for i := range blk.Records {
			d.Add(&blk.Records[i])
		}
		b.meta.MinTS, b.meta.MaxTS = min(b.meta.MinTS, r.minTS), max(b.meta.MaxTS, r.maxTS)
		b.meta.Bytes += r.bytes
		if _, err := w.Write(block); err != nil {
			b.close()
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		b.close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	b.meta.Digest = d.Sum()
	return b, nil
}

// ranges reads the job's journal_ranges rows and checks that they cover
// [Base, Last] densely.
func (c *Compactor) ranges(ctx context.Context, j Job) ([]span, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	rows, err := c.opts.Pool.Query(ctx, `
		SELECT first_offset, last_offset, object_key, byte_off, byte_len, min_ts, max_ts, bytes
		FROM journal_ranges WHERE stream = $1 AND first_offset BETWEEN $2 AND $3
		ORDER BY first_offset`, j.Stream, int64(j.Base), int64(j.Last))
	if err != nil {
		return nil, fmt.Errorf("journal ranges: %w", err)
	}
	defer rows.Close()
	var out []span
	next := j.Base
	for rows.Next() {
		var s span
		var first, last int64
		if err := rows.Scan(&first, &last, &s.key, &s.off, &s.length, &s.minTS, &s.maxTS, &s.bytes); err != nil {
			return nil, fmt.Errorf("journal ranges: %w", err)
		}
		s.first, s.last = uint64(first), uint64(last)
		if s.first != next || s.last > j.Last {
			return nil, fmt.Errorf("%w: [%d, %d] after offset %d (job [%d, %d])", ErrJournalGap, s.first, s.last, next, j.Base, j.Last)
		}
		if s.length <= 0 || s.length > journal.MaxBlockBytes || s.off <= 0 || s.minTS > s.maxTS {
			return nil, fmt.Errorf("journal range %s [%d, %d]: bad row: bytes [%d, +%d), ts %d..%d", j.Stream, s.first, s.last, s.off, s.length, s.minTS, s.maxTS)
		}
		out = append(out, s)
		next = s.last + 1
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal ranges: %w", err)
	}
	if len(out) == 0 || next != j.Last+1 {
		return nil, fmt.Errorf("%w: ranges end before offset %d (job [%d, %d])", ErrJournalGap, next, j.Base, j.Last)
	}
	return out, nil
}

// fetch reads one block's bytes with a ranged GET.
func (c *Compactor) fetch(ctx context.Context, r span) ([]byte, error) {
	rc, err := c.opts.Bucket.GetRange(ctx, r.key, r.off, r.length)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrInvalidRange) {
			// The row names bytes the bucket does not have: the journal
			// is damaged, not the store down.
			return nil, &tiers.CorruptionError{Path: r.key, Offset: r.off, Err: fmt.Errorf("block of offsets [%d, %d]: %w", r.first, r.last, err)}
		}
		return nil, fmt.Errorf("get %s: %w", r.key, err)
	}
	defer rc.Close()
	b := make([]byte, r.length)
	n, err := io.ReadFull(rc, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("get %s: %w", r.key, err)
	}
	// A short body is left to DecodeBlock, which reports it as truncated.
	return b[:n], nil
}

// decode checks one block against its row.
func (b *built) decode(block []byte, r span) (journal.Block, error) {
	blk, err := journal.DecodeBlock(block, journal.BlockCheck{
		Key: r.key, Pos: r.off, Stream: b.meta.Stream, Records: int(r.last - r.first + 1), First: r.first, MaxValueBytes: b.maxVal,
	})
	if err != nil {
		return journal.Block{}, err
	}
	if blk.Ref.MinTS != r.minTS || blk.Ref.MaxTS != r.maxTS {
		return journal.Block{}, &tiers.CorruptionError{Path: r.key, Offset: r.off, Err: fmt.Errorf("%w: block ts %d..%d, the catalog row has %d..%d",
			journal.ErrMismatch, blk.Ref.MinTS, blk.Ref.MaxTS, r.minTS, r.maxTS)}
	}
	return blk, nil
}

// records yields the segment's records from the spool, each block decoded
// and checked again (the local disk is no more trusted than the store).
func (b *built) records(ctx context.Context) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		if _, err := b.spool.Seek(0, io.SeekStart); err != nil {
			yield(tiers.Record{}, fmt.Errorf("spool: %w", err))
			return
		}
		rd := bufio.NewReaderSize(b.spool, 1<<20)
		for _, r := range b.ranges {
			if err := ctx.Err(); err != nil {
				yield(tiers.Record{}, err)
				return
			}
			// A block of its own: the records' values alias it, and the
			// Parquet writer keeps them until its row group is flushed.
			block := make([]byte, r.length)
			if _, err := io.ReadFull(rd, block); err != nil {
				yield(tiers.Record{}, fmt.Errorf("spool: %w", err))
				return
			}
			blk, err := b.decode(block, r)
			if err != nil {
				yield(tiers.Record{}, err)
				return
			}
			for _, rec := range blk.Records {
				if !yield(rec, nil) {
					return
				}
			}
		}
	}
}
