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

// built is a job's segments, ready to upload: their metadata (digest and
// ts range computed from the records) and the job's blocks, checked and
// spooled to a local file so the uploads read them without fetching them
// again.
//
// A segment never holds two UTC days (docs/format/segment.md): the job's
// records are cut into one segment per run of records on the same day,
// inside a block where a block straddles midnight. Usually that is one
// segment; a job across midnight makes two; a stream whose ts goes back
// and forth across midnight makes one per run.
type built struct {
	stream string
	pieces []piece
	ranges []span
	pos    []int64 // spool position of each range's block
	spool  *os.File
	maxVal int
}

// piece is one of a job's segments: its metadata, and the index of the
// range (block) that holds its first record.
type piece struct {
	meta  tiers.SegmentMeta
	first int
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
	b := &built{stream: j.Stream, ranges: ranges, pos: make([]int64, len(ranges)), spool: f, maxVal: c.opts.MaxRecordBytes}
	var (
		d   *tiers.Digester
		cur *piece
		day int64
		pos int64
	)
	w := bufio.NewWriterSize(f, 1<<20)
	for ri, r := range ranges {
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
		whole := true // the block's records all go to one piece
		var sizes int64
		for i := range blk.Records {
			rec := &blk.Records[i]
			if cur == nil || tiers.UTCDay(rec.TS) != day {
				if cur != nil {
					cur.meta.Digest = d.Sum()
					whole = whole && i == 0
				}
				b.pieces = append(b.pieces, piece{meta: segmentMeta(j), first: ri})
				cur, day, d = &b.pieces[len(b.pieces)-1], tiers.UTCDay(rec.TS), tiers.NewDigester()
				cur.meta.Base, cur.meta.MinTS, cur.meta.MaxTS = rec.Offset, math.MaxInt64, math.MinInt64
			}
			d.Add(rec)
			cur.meta.Last, cur.meta.Count = rec.Offset, rec.Offset-cur.meta.Base+1
			cur.meta.MinTS, cur.meta.MaxTS = min(cur.meta.MinTS, rec.TS), max(cur.meta.MaxTS, rec.TS)
			cur.meta.Bytes += int64(rec.Size())
			sizes += int64(rec.Size())
		}
		if whole {
			// The row's count stands, as it did before segments were cut
			// by day.
			cur.meta.Bytes += r.bytes - sizes
		}
		b.pos[ri] = pos
		pos += int64(len(block))
		if _, err := w.Write(block); err != nil {
			b.close()
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		b.close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	cur.meta.Digest = d.Sum()
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
		Key: r.key, Pos: r.off, Stream: b.stream, Records: int(r.last - r.first + 1), First: r.first, MaxValueBytes: b.maxVal,
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

// records yields piece p's records from the spool, each block decoded
// and checked again (the local disk is no more trusted than the store).
// It starts at the block holding the piece's first record, so uploading
// every piece of a job reads its spool about once.
func (b *built) records(ctx context.Context, p *piece) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		if _, err := b.spool.Seek(b.pos[p.first], io.SeekStart); err != nil {
			yield(tiers.Record{}, fmt.Errorf("spool: %w", err))
			return
		}
		rd := bufio.NewReaderSize(b.spool, 1<<20)
		for _, r := range b.ranges[p.first:] {
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
				if rec.Offset > p.meta.Last {
					return
				}
				if rec.Offset >= p.meta.Base && !yield(rec, nil) {
					return
				}
			}
		}
	}
}
