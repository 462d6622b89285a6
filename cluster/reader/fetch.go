package reader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/journal"
	"github.com/tierd/tierd/tiers"
)

// errVanished marks a journal object missing from the bucket: garbage
// collection deleted it after compaction released its ranges, so the read
// plans again from the catalog.
var errVanished = errors.New("reader: journal object is gone")

type fetchCounters struct{ n, bytes atomic.Int64 }

// ranges serves the planned journal ranges from rd.pos on. It returns stop
// when the read must end (the consumer is done, the limit reached or an
// error yielded), or the error of a vanished object, which run resolves.
func (rd *read) ranges(ctx context.Context, rows []rangeRow) (stop bool, err error) {
	for i := 0; i < len(rows) && rd.pos <= rd.end; {
		row := rows[i]
		switch {
		case row.last < rd.pos:
			i++
			continue
		case row.first > rd.pos:
			return false, rd.gap(rd.pos, row.first)
		case !rd.q.OverlapsTime(row.minTS, row.maxTS):
			rd.pos = row.last + 1
			i++
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		blocks, err := rd.fetch(ctx, rows[i:])
		if err != nil {
			return false, err
		}
		for k, b := range blocks {
			row := rows[i+k]
			blk, err := rd.r.decode(rd.stream, row, b.data)
			if err != nil && b.src != Journal {
				// A cached copy failing its check is dropped, never
				// served: the bucket's copy decides.
				rd.r.dropCached(b.src, row)
				b.src = Journal
				if b.data, err = rd.r.getRange(ctx, row.key, row.off, row.n); err == nil {
					blk, err = rd.r.decode(rd.stream, row, b.data)
				}
			}
			if err != nil {
				return false, err
			}
			if b.src == Journal && rd.r.disk != nil {
				rd.r.disk.put(row.key, row.off, b.data)
			}
			for _, rec := range blk.Records {
				if rec.Offset > rd.end {
					break
				}
				if rec.Offset < rd.pos || !rd.q.Match(&rec) {
					continue
				}
				if !rd.emit(rec, b.src) {
					return true, nil
				}
			}
			rd.pos = row.last + 1
		}
		i += len(blocks)
	}
	return false, nil
}

// block is the bytes of one row's block and where they came from.
type block struct {
	data []byte
	src  Source
}

// fetch returns the bytes of rows[0]'s block, and of the rows after it
// that a coalesced GET brought along: from memory, the disk cache, or one
// ranged GET of rows[0] and the following rows of the same object that are
// adjacent in it, dense in offsets, wanted by the query and within
// MaxFetchBytes.
func (rd *read) fetch(ctx context.Context, rows []rangeRow) ([]block, error) {
	row := rows[0]
	if b, ok := rd.r.mem.get(row.key, row.off, row.n); ok {
		return []block{{b, Memory}}, nil
	}
	if rd.r.disk != nil {
		if b, ok := rd.r.disk.get(row.key, row.off, row.n); ok {
			return []block{{b, DiskCache}}, nil
		}
	}
	k, total := 1, row.n
	for k < len(rows) {
		prev, next := rows[k-1], rows[k]
		if next.key != row.key || next.off != prev.off+prev.n || next.first != prev.last+1 || next.first > rd.end ||
			!rd.q.OverlapsTime(next.minTS, next.maxTS) || total+next.n > rd.r.opts.MaxFetchBytes || next.n < 0 {
			break
		}
		total += next.n
		k++
	}
	b, err := rd.r.getRange(ctx, row.key, row.off, total)
	if err != nil {
		return nil, err
	}
	out := make([]block, k)
	at := int64(0)
	for j := range k {
		n := rows[j].n
		out[j] = block{b[at : at+n : at+n], Journal}
		at += n
	}
	return out, nil
}

// getRange fetches bytes [off, off+n) of journal object key. An object
// shorter than that is damage (the rows say it holds them); a missing
// object wraps errVanished; a store failing wraps cold.ErrStoreUnavailable.
func (r *Reader) getRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if off < 0 || n <= 0 || n > max(journal.MaxBlockBytes, r.opts.MaxFetchBytes) {
		return nil, &tiers.CorruptionError{Path: key, Offset: off, Err: fmt.Errorf(
			"%w: journal range of %d bytes at %d", journal.ErrMalformed, n, off)}
	}
	short := func() error {
		return &tiers.CorruptionError{Path: key, Offset: off, Err: fmt.Errorf(
			"%w: the object ends before byte %d, the catalog's ranges say it holds it", journal.ErrTruncated, off+n)}
	}
	rc, err := r.opts.Bucket.GetRange(ctx, key, off, n)
	if err != nil {
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			return nil, fmt.Errorf("%w: %s: %w", errVanished, key, err)
		case errors.Is(err, objstore.ErrInvalidRange):
			return nil, short()
		}
		return nil, storeErr(key, err)
	}
	defer rc.Close()
	b := make([]byte, n)
	_, err = io.ReadFull(rc, b)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return nil, short()
	case err != nil:
		return nil, storeErr(key, err)
	}
	r.fetchN.n.Add(1)
	r.fetchN.bytes.Add(n)
	r.m.fetches.Inc()
	r.m.fetchedBytes.Add(float64(n))
	return b, nil
}

// storeErr classifies an object store error as cold does: the caller's
// cancellation stays as it is, anything else is the store failing.
func storeErr(key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("reader: get %s: %w", key, err)
	}
	return fmt.Errorf("%w: get %s: %w", cold.ErrStoreUnavailable, key, err)
}

// decode decodes one block and checks it against its row: the stream, the
// record count, the position in the object (journal.DecodeBlock) and the
// ts range the row was pruned by.
func (r *Reader) decode(stream string, row rangeRow, b []byte) (journal.Block, error) {
	count := row.last - row.first + 1
	if row.last < row.first || count > journal.MaxBlockRecords {
		return journal.Block{}, &tiers.CorruptionError{Path: journalPath, Offset: -1, Err: fmt.Errorf(
			"%w: range [%d, %d] of stream %s in %s", journal.ErrMismatch, row.first, row.last, stream, row.key)}
	}
	blk, err := journal.DecodeBlock(b, journal.BlockCheck{Key: row.key, Pos: row.off, Stream: stream, Records: int(count), First: row.first})
	if err != nil {
		return journal.Block{}, err
	}
	if blk.Ref.MinTS != row.minTS || blk.Ref.MaxTS != row.maxTS {
		return journal.Block{}, &tiers.CorruptionError{Path: row.key, Offset: row.off, Err: fmt.Errorf(
			"%w: block of stream %s [%d, %d] holds ts %d..%d, its row says %d..%d",
			journal.ErrMismatch, stream, row.first, row.last, blk.Ref.MinTS, blk.Ref.MaxTS, row.minTS, row.maxTS)}
	}
	return blk, nil
}

// dropCached forgets a cached copy of row's block that failed its check.
func (r *Reader) dropCached(src Source, row rangeRow) {
	switch src {
	case Memory:
		r.opts.Logger.Warn("remembered journal object failed its check; dropped", "object", row.key)
		r.mem.drop(row.key)
	case DiskCache:
		r.opts.Logger.Warn("disk cache block failed its check; dropped", "object", row.key, "off", row.off)
		r.disk.dropped.Add(1)
		r.m.damaged.Inc()
		r.disk.forget(cacheName(row.key, row.off, row.n), false)
	}
}
