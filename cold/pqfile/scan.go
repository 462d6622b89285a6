package pqfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"

	"github.com/parquet-go/parquet-go"

	"github.com/tierd/tierd/tiers"
)

// Scan yields the records matching q in offset order, at most q.Limit when
// it is set. It skips row groups whose offset or ts bounds miss the query
// and, when q.HasKey, those whose key bloom filter rules the key out (only a
// filter whose checksum matches is trusted). In a format 1.2 file every row
// is checked before it is yielded: rows are decoded a checksum block at a
// time and the block's CRC32C compared with tierd.row_groups, so a damaged
// file never yields a wrong record; within the first row group it reads it
// seeks to the block holding q.From through the offset index, so only the
// pages holding wanted rows (and the start of their block) are fetched.
// Older files are read from the start of each row group with the checks
// docs/format/parquet.md lists. Records own their bytes. On damage it
// yields one error wrapping *tiers.CorruptionError and stops.
func (rd *Reader) Scan(ctx context.Context, q tiers.Query) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		if !q.OverlapsOffsets(rd.meta.Base, rd.meta.Last) || !q.OverlapsTime(rd.meta.MinTS, rd.meta.MaxTS) {
			return
		}
		sent := 0
		for i := range rd.groups {
			g := &rd.groups[i]
			if g.first > q.To {
				return
			}
			if !q.OverlapsOffsets(g.first, g.last) || !q.OverlapsTime(g.minTS, g.maxTS) {
				continue
			}
			if q.HasKey {
				ok, err := rd.mayHaveKey(g, q.Key)
				if err != nil {
					yield(tiers.Record{}, err)
					return
				}
				if !ok {
					continue
				}
			}
			more := true
			err := rd.readGroup(ctx, g, q.From, func(r *tiers.Record) bool {
				if r.Offset > q.To {
					more = false
					return false
				}
				if !q.Match(r) {
					return true
				}
				if !yield(*r, nil) {
					more = false
					return false
				}
				sent++
				if q.Limit > 0 && sent >= q.Limit {
					more = false
					return false
				}
				return true
			})
			if err != nil {
				yield(tiers.Record{}, err)
				return
			}
			if !more {
				return
			}
		}
	}
}

// Verify reads every row, recomputes the segment digest and checks it, and
// the count, dense offsets and ts bounds, against the metadata (a mismatch
// is a *tiers.CorruptionError wrapping ErrDigestMismatch). It also checks
// what reads and other engines rely on besides the rows: each row group's
// offset indexes (checkOffsetIndexes, decoding every page header) and its
// key bloom filter (verifyBloom: checksum, and no key of the group ruled
// out).
func (rd *Reader) Verify(ctx context.Context) error {
	dig := tiers.NewDigester()
	var count uint64
	minTS, maxTS := int64(math.MaxInt64), int64(math.MinInt64)
	for i := range rd.groups {
		g := &rd.groups[i]
		// The page headers first: the rows are read right after, mostly
		// from the blocks the walk brought into a store's cache.
		ioErrs := rd.ra.ioErrs.Load()
		if err := protect(func() error { return rd.checkOffsetIndexes(i, true) }); err != nil {
			return rd.classify(ioErrs, "checking the offset indexes of", err)
		}
		keys := map[string]struct{}{}
		err := rd.readGroup(ctx, g, 0, func(r *tiers.Record) bool {
			dig.Add(r)
			count++
			minTS, maxTS = min(minTS, r.TS), max(maxTS, r.TS)
			keys[r.Key] = struct{}{}
			return true
		})
		if err != nil {
			return err
		}
		if err := rd.verifyBloom(g, keys); err != nil {
			return err
		}
	}
	m := &rd.meta
	switch {
	case count != m.Count:
		return rd.corrupt(fmt.Errorf("%w: %d rows, count says %d", ErrDigestMismatch, count, m.Count))
	case minTS != m.MinTS || maxTS != m.MaxTS:
		return rd.corrupt(fmt.Errorf("%w: ts spans %d..%d, metadata says %d..%d", ErrDigestMismatch, minTS, maxTS, m.MinTS, m.MaxTS))
	}
	if d := dig.Sum(); d != m.Digest {
		return rd.corrupt(fmt.Errorf("%w: rows hash to %s, metadata says %s", ErrDigestMismatch, d, m.Digest))
	}
	return nil
}

// readBatchRows is how many rows readGroup decodes at a time.
const readBatchRows = 64

// readGroup reads the rows of g from offset from (or its first row) in order
// and calls fn with each until fn returns false. It checks that offsets are
// dense and each ts lies within the group's bounds, so a damaged offset
// column cannot reorder or hide records nor a damaged ts one escape
// pruning. In a format 1.2 file it also holds each checksum block's rows
// until their CRC32C matches, and starts at the block holding from; an
// older file is read from the group's first row (its offset index has no
// checksum to back a seek).
func (rd *Reader) readGroup(ctx context.Context, g *groupInfo, from uint64, fn func(*tiers.Record) bool) error {
	rd.rowGroupsRead.Add(1)
	ioErrs := rd.ra.ioErrs.Load()
	start, block := int64(0), 0
	if g.meta != nil && from > g.first {
		skip := int64(from - g.first)
		for block < len(g.meta.blocks)-1 && start+g.meta.blocks[block].rows <= skip {
			start += g.meta.blocks[block].rows
			block++
		}
	}
	// Format 1 decodes into row structs; format 2 reads parquet.Rows
	// (a struct cannot tell NULL from empty) and decodeRow2 checks them.
	var pr *parquet.GenericReader[row]
	var rows parquet.Rows
	err := protect(func() error {
		if err := rd.checkDictionaries(g.index); err != nil {
			return err
		}
		if start > 0 {
			// The offset indexes let SeekToRow skip whole pages instead of
			// decoding them; they are checked first, and the block CRC
			// catches a seek that lands a column on the wrong row anyway.
			if err := rd.checkOffsetIndexes(g.index, false); err != nil {
				return err
			}
		}
		if rd.major >= 2 {
			rows = g.rg.Rows()
			if start > 0 {
				return rows.SeekToRow(start)
			}
			return nil
		}
		pr = parquet.NewGenericRowGroupReader[row](g.rg)
		if start > 0 {
			return pr.SeekToRow(start)
		}
		return nil
	})
	if err != nil {
		if rows != nil {
			protect(rows.Close) //nolint:errcheck // read-only
		}
		return rd.classify(ioErrs, "reading", err)
	}
	if rows != nil {
		defer protect(rows.Close) //nolint:errcheck // read-only: nothing to lose
	} else {
		defer protect(pr.Close) //nolint:errcheck // read-only: nothing to lose
	}

	bc := blockChecker{rd: rd, g: g, block: block}
	batch := make([]row, readBatchRows)
	var prows []parquet.Row
	if rows != nil {
		prows = make([]parquet.Row, readBatchRows)
	}
	want := g.first + uint64(start)
	var rec tiers.Record // one variable: fn gets its address, which escapes
	for want <= g.last {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pqfile: scan %s: %w", rd.name, err)
		}
		clear(batch) // fresh slices per record: records own their bytes
		n := 0
		var shapeErr error
		err := protect(func() error {
			var err error
			k := min(uint64(len(batch)), g.last-want+1)
			if rows != nil {
				n, err = rows.ReadRows(prows[:k])
				for i := range n {
					if shapeErr = decodeRow2(prows[i], &batch[i]); shapeErr != nil {
						shapeErr = fmt.Errorf("%w: row at offset %d: %v", ErrNotSegment, want+uint64(i), shapeErr)
						return nil
					}
				}
			} else {
				n, err = pr.Read(batch[:k])
			}
			if errors.Is(err, io.EOF) && n > 0 {
				err = nil
			}
			return err
		})
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("row group ends at offset %d, want %d", want, g.last)
			}
			return rd.classify(ioErrs, "reading", err)
		}
		if shapeErr != nil {
			return rd.corrupt(shapeErr)
		}
		for i := range n {
			b := &batch[i]
			if b.Offset < 0 || uint64(b.Offset) != want {
				return rd.corrupt(fmt.Errorf("%w: row at offset %d holds offset %d", ErrDigestMismatch, want, b.Offset))
			}
			if b.TS < g.minTS || b.TS > g.maxTS {
				return rd.corrupt(fmt.Errorf("%w: row at offset %d has ts %d outside its row group's %d..%d", ErrDigestMismatch, want, b.TS, g.minTS, g.maxTS))
			}
			rec = tiers.Record{Offset: want, TS: b.TS, Key: b.Key, Tags: b.Tags, Value: b.Value}
			if len(rec.Tags) == 0 {
				rec.Tags = nil
			}
			if len(rec.Value) == 0 {
				rec.Value = nil
			}
			want++
			if g.meta == nil {
				if rec.Offset >= from && !fn(&rec) {
					return nil
				}
				continue
			}
			ok, err := bc.add(&rec, from, fn)
			if err != nil || !ok {
				return err
			}
		}
	}
	return nil
}

// blockChecker holds the rows of one checksum block until its CRC32C is
// checked, then hands those at or past from to fn. It holds less than
// blockMaxBytes of canonical encoding plus one record.
type blockChecker struct {
	rd      *Reader
	g       *groupInfo
	block   int // index into g.meta.blocks
	pending []tiers.Record
	crc     uint32
	bytes   int
	scratch []byte
}

// add takes the block's next record. It returns false when fn asked to
// stop, and an error when the block does not match its checksum.
func (bc *blockChecker) add(r *tiers.Record, from uint64, fn func(*tiers.Record) bool) (bool, error) {
	blocks := bc.g.meta.blocks
	if bc.block >= len(blocks) {
		return false, bc.rd.corrupt(fmt.Errorf("%w: row group %d: offset %d is past its last checksum block", ErrDigestMismatch, bc.g.index, r.Offset))
	}
	if bc.bytes >= blockMaxBytes {
		return false, bc.rd.corrupt(fmt.Errorf("%w: row group %d: checksum block %d goes on past %d bytes", ErrNotSegment, bc.g.index, bc.block, blockMaxBytes))
	}
	bc.crc, bc.scratch = appendRecordCRC(bc.crc, bc.scratch, r)
	bc.bytes += len(bc.scratch)
	bc.pending = append(bc.pending, *r)
	if int64(len(bc.pending)) < blocks[bc.block].rows {
		return true, nil
	}
	if bc.crc != blocks[bc.block].crc {
		return false, bc.rd.corrupt(fmt.Errorf("%w: row group %d: rows %d..%d have crc32c %08x, %s says %08x",
			ErrDigestMismatch, bc.g.index, bc.pending[0].Offset, r.Offset, bc.crc, MetaRowGroups, blocks[bc.block].crc))
	}
	for i := range bc.pending {
		if bc.pending[i].Offset >= from && !fn(&bc.pending[i]) {
			return false, nil
		}
	}
	clear(bc.pending)
	bc.pending, bc.crc, bc.bytes = bc.pending[:0], 0, 0
	bc.block++
	return true, nil
}
