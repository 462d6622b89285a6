package pqfile

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tierd/tierd/tiers"
)

// Reader reads one segment file. It is safe for concurrent Scans.
type Reader struct {
	name string
	ra   *guardedReaderAt
	file *parquet.File
	meta tiers.SegmentMeta

	groups []groupInfo
	// dictChecked[i] is set once row group i's dictionary pages passed
	// their CRC check (checkDictionaries).
	dictChecked []atomic.Bool
	// column positions of the leaf columns in every row group
	colOffset, colTS, colKey int

	rowGroupsRead atomic.Int64
}

// groupInfo is what pruning needs to know of one row group, checked at Open.
type groupInfo struct {
	index        int // in the file
	rg           parquet.RowGroup
	first, last  uint64 // offsets; dense, so row i of the group is first+i
	minTS, maxTS int64
}

// Open reads and checks the footer and the tierd metadata of a segment file
// through r, which holds size bytes; name is used in errors. It reads only
// the file's first 4 bytes and its footer, never the page index or bloom
// filters up front (those are read per row group when a Scan needs them), so
// over ranged GETs opening costs two small requests.
//
// Damage (garbage, truncation, a flipped bit, missing or inconsistent tierd
// metadata, an unknown format version) returns an error wrapping a
// *tiers.CorruptionError with Path name. An error of r itself (other than
// io.EOF) is returned wrapped as it is, not as corruption, so a caller can
// tell a failing store from a damaged object.
func Open(ctx context.Context, r io.ReaderAt, size int64, name string) (*Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pqfile: open %s: %w", name, err)
	}
	rd := &Reader{name: name, ra: &guardedReaderAt{r: r, size: size}}
	ioErrs := rd.ra.ioErrs.Load()
	if size < 12 { // "PAR1", footer length, "PAR1"
		return nil, rd.corrupt(fmt.Errorf("file of %d bytes is too short for Parquet", size))
	}
	if err := protect(func() error { return rd.open() }); err != nil {
		return nil, rd.classify(ioErrs, "open", err)
	}
	return rd, nil
}

// readBufferSize is how much parquet-go reads ahead in a column chunk. A
// cold read pays for every byte fetched from the store, and a query that
// wants a few pages of each column should not fetch 64 KiB of each.
const readBufferSize = 16 << 10

// open does Open's work; it may panic on hostile input (protect recovers).
func (rd *Reader) open() error {
	f, err := parquet.OpenFile(rd.ra, rd.ra.size,
		parquet.SkipPageIndex(true),
		parquet.SkipBloomFilters(true),
		// The footer of a segment is a few KiB; one 64 KiB read from the
		// end usually gets it whole, saving a round trip to the store.
		parquet.OptimisticRead(true),
		parquet.ReadBufferSize(readBufferSize),
	)
	if err != nil {
		return err
	}
	rd.file = f
	if err := rd.checkMeta(); err != nil {
		return err
	}
	if !parquet.EqualNodes(f.Schema(), schema) {
		return fmt.Errorf("%w: schema %s", ErrNotSegment, strings.Join(strings.Fields(f.Schema().String()), " "))
	}
	return rd.checkGroups()
}

// checkMeta parses and checks the tierd key/value metadata.
func (rd *Reader) checkMeta() error {
	f := rd.file
	v, ok := f.Lookup(MetaFormatVersion)
	if !ok {
		return fmt.Errorf("%w: no %s in the file metadata", ErrNotSegment, MetaFormatVersion)
	}
	major, _, _ := strings.Cut(v, ".")
	if n, err := strconv.Atoi(major); err != nil || n != formatMajor {
		return fmt.Errorf("%w: %s is %q, this reader knows major version %d", ErrUnsupportedVersion, MetaFormatVersion, v, formatMajor)
	}
	get := func(key string) (string, error) {
		v, ok := f.Lookup(key)
		if !ok {
			return "", fmt.Errorf("%w: no %s in the file metadata", ErrNotSegment, key)
		}
		return v, nil
	}
	var m tiers.SegmentMeta
	var errs []error
	u64 := func(key string) uint64 {
		v, err := get(key)
		if err == nil {
			var n uint64
			if n, err = strconv.ParseUint(v, 10, 64); err == nil {
				return n
			}
			err = fmt.Errorf("%w: %s %q: %v", ErrNotSegment, key, v, err)
		}
		errs = append(errs, err)
		return 0
	}
	i64 := func(key string) int64 {
		v, err := get(key)
		if err == nil {
			var n int64
			if n, err = strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
			err = fmt.Errorf("%w: %s %q: %v", ErrNotSegment, key, v, err)
		}
		errs = append(errs, err)
		return 0
	}
	stream, err := get(MetaStream)
	errs = append(errs, err)
	m.Stream = stream
	m.Base, m.Last, m.Count = u64(MetaBase), u64(MetaLast), u64(MetaCount)
	m.MinTS, m.MaxTS = i64(MetaMinTS), i64(MetaMaxTS)
	if d, err := get(MetaDigest); err != nil {
		errs = append(errs, err)
	} else if m.Digest, err = tiers.ParseDigest(d); err != nil {
		errs = append(errs, fmt.Errorf("%w: %s: %v", ErrNotSegment, MetaDigest, err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	switch {
	case tiers.ValidateStreamName(m.Stream) != nil:
		return fmt.Errorf("%w: %s %q is not a stream name", ErrNotSegment, MetaStream, m.Stream)
	case m.Count == 0 || m.Last < m.Base || m.Last-m.Base != m.Count-1 || m.Last > math.MaxInt64:
		return fmt.Errorf("%w: base %d, last %d and count %d disagree", ErrNotSegment, m.Base, m.Last, m.Count)
	case f.NumRows() < 0 || uint64(f.NumRows()) != m.Count:
		return fmt.Errorf("%w: %d rows, %s says %d", ErrNotSegment, f.NumRows(), MetaCount, m.Count)
	case m.MinTS > m.MaxTS:
		return fmt.Errorf("%w: min_ts %d > max_ts %d", ErrNotSegment, m.MinTS, m.MaxTS)
	}
	if v, ok := f.Lookup(MetaSealedAt); ok {
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrNotSegment, MetaSealedAt, v, err)
		}
		m.SealedAt = time.Unix(0, ns).UTC()
	}
	m.Bytes = rd.ra.size
	m.Placements = tiers.Of(tiers.Cold)
	rd.meta = m
	return nil
}

// checkGroups collects each row group's offset and ts bounds from the
// column chunk statistics and checks them against the metadata: pruning
// trusts them, so they must be right.
func (rd *Reader) checkGroups() error {
	leaf := func(name string) (int, error) {
		c, ok := rd.file.Schema().Lookup(name)
		if !ok {
			return 0, fmt.Errorf("%w: no column %q", ErrNotSegment, name)
		}
		return c.ColumnIndex, nil
	}
	var err error
	if rd.colOffset, err = leaf(ColOffset); err != nil {
		return err
	}
	if rd.colTS, err = leaf(ColTS); err != nil {
		return err
	}
	if rd.colKey, err = leaf(ColKey); err != nil {
		return err
	}
	next := rd.meta.Base
	for i, rg := range rd.file.RowGroups() {
		n := rg.NumRows()
		chunks := rg.ColumnChunks()
		if n <= 0 || len(chunks) != len(schema.Columns()) {
			return fmt.Errorf("%w: row group %d has %d rows and %d columns", ErrNotSegment, i, n, len(chunks))
		}
		g := groupInfo{index: i, rg: rg, first: next, last: next + uint64(n) - 1}
		lo, hi, ok := rd.int64Stats(i, rd.colOffset)
		if !ok || uint64(lo) != g.first || uint64(hi) != g.last {
			return fmt.Errorf("%w: row group %d: offset statistics %d..%d (present: %t), want %d..%d", ErrNotSegment, i, lo, hi, ok, g.first, g.last)
		}
		lo, hi, ok = rd.int64Stats(i, rd.colTS)
		if !ok || lo > hi || lo < rd.meta.MinTS || hi > rd.meta.MaxTS {
			return fmt.Errorf("%w: row group %d: ts statistics %d..%d (present: %t) outside the file's %d..%d", ErrNotSegment, i, lo, hi, ok, rd.meta.MinTS, rd.meta.MaxTS)
		}
		g.minTS, g.maxTS = lo, hi
		rd.groups = append(rd.groups, g)
		next = g.last + 1
	}
	if next != rd.meta.Last+1 {
		return fmt.Errorf("%w: row groups end at offset %d, %s is %d", ErrNotSegment, next-1, MetaLast, rd.meta.Last)
	}
	rd.dictChecked = make([]atomic.Bool, len(rd.groups))
	return nil
}

// int64Stats returns the min and max statistics of an INT64 column chunk.
func (rd *Reader) int64Stats(group, col int) (lo, hi int64, ok bool) {
	rgs := rd.file.Metadata().RowGroups
	if group >= len(rgs) || col >= len(rgs[group].Columns) {
		return 0, 0, false
	}
	st := &rgs[group].Columns[col].MetaData.Statistics
	if len(st.MinValue) != 8 || len(st.MaxValue) != 8 {
		return 0, 0, false
	}
	return int64(binary.LittleEndian.Uint64(st.MinValue)), int64(binary.LittleEndian.Uint64(st.MaxValue)), true
}

// Meta returns the segment's metadata as the footer states it, with Bytes =
// the file's size and Placements = cold. Verify checks it against the rows.
func (rd *Reader) Meta() tiers.SegmentMeta { return rd.meta }

// RowGroups returns the number of row groups in the file.
func (rd *Reader) RowGroups() int { return len(rd.groups) }

// RowGroupsRead returns how many row groups Scans and Verifies have read
// since Open (pruned ones are not counted): tests and benchmarks use it to
// check pruning.
func (rd *Reader) RowGroupsRead() int { return int(rd.rowGroupsRead.Load()) }

// Scan yields the records matching q in offset order, at most q.Limit when
// it is set. It skips row groups whose offset or ts statistics miss the
// query and, when q.HasKey, those whose key bloom filter rules the key out;
// within the first row group it reads it seeks to q.From through the offset
// index, so only the pages holding wanted rows are fetched. Records own
// their bytes. On damage it yields one error wrapping *tiers.CorruptionError
// and stops.
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
// the count, dense offsets and ts bounds, against the metadata. A mismatch is
// a *tiers.CorruptionError wrapping ErrDigestMismatch.
func (rd *Reader) Verify(ctx context.Context) error {
	dig := tiers.NewDigester()
	var count uint64
	minTS, maxTS := int64(math.MaxInt64), int64(math.MinInt64)
	for i := range rd.groups {
		err := rd.readGroup(ctx, &rd.groups[i], 0, func(r *tiers.Record) bool {
			dig.Add(r)
			count++
			minTS, maxTS = min(minTS, r.TS), max(maxTS, r.TS)
			return true
		})
		if err != nil {
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

// mayHaveKey probes the row group's key bloom filter. No filter means maybe.
func (rd *Reader) mayHaveKey(g *groupInfo, key string) (bool, error) {
	ioErrs := rd.ra.ioErrs.Load()
	ok := true
	err := protect(func() error {
		bf := g.rg.ColumnChunks()[rd.colKey].BloomFilter()
		if bf == nil {
			return nil
		}
		var err error
		ok, err = bf.Check(parquet.ByteArrayValue([]byte(key)))
		return err
	})
	if err != nil {
		return false, rd.classify(ioErrs, "reading the key bloom filter of", err)
	}
	return ok, nil
}

// readBatchRows is how many rows readGroup decodes at a time.
const readBatchRows = 64

// readGroup reads the rows of g from offset from (or its first row) in order
// and calls fn with each until fn returns false. It checks that offsets are
// dense, so a damaged offset column cannot reorder or hide records.
func (rd *Reader) readGroup(ctx context.Context, g *groupInfo, from uint64, fn func(*tiers.Record) bool) error {
	rd.rowGroupsRead.Add(1)
	ioErrs := rd.ra.ioErrs.Load()
	start := int64(0)
	if from > g.first {
		start = int64(from - g.first)
	}
	var pr *parquet.GenericReader[row]
	err := protect(func() error {
		if err := rd.checkDictionaries(g.index); err != nil {
			return err
		}
		if start > 0 {
			// Load the offset indexes so SeekToRow skips whole pages
			// instead of decoding them.
			for _, cc := range g.rg.ColumnChunks() {
				if fc, ok := cc.(*parquet.FileColumnChunk); ok {
					if _, err := fc.OffsetIndex(); err != nil && !errors.Is(err, parquet.ErrMissingOffsetIndex) {
						return err
					}
				}
			}
		}
		pr = parquet.NewGenericRowGroupReader[row](g.rg)
		if start > 0 {
			return pr.SeekToRow(start)
		}
		return nil
	})
	if err != nil {
		return rd.classify(ioErrs, "reading", err)
	}
	defer protect(pr.Close) //nolint:errcheck // read-only: nothing to lose

	batch := make([]row, readBatchRows)
	want := g.first + uint64(start)
	var rec tiers.Record
	for want <= g.last {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pqfile: scan %s: %w", rd.name, err)
		}
		clear(batch) // fresh slices per record: records own their bytes
		n := 0
		err := protect(func() error {
			var err error
			n, err = pr.Read(batch[:min(uint64(len(batch)), g.last-want+1)])
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
		for i := range n {
			b := &batch[i]
			if b.Offset < 0 || uint64(b.Offset) != want {
				return rd.corrupt(fmt.Errorf("%w: row at offset %d holds offset %d", ErrDigestMismatch, want, b.Offset))
			}
			rec = tiers.Record{Offset: want, TS: b.TS, Key: b.Key, Tags: b.Tags, Value: b.Value}
			if len(rec.Tags) == 0 {
				rec.Tags = nil
			}
			if len(rec.Value) == 0 {
				rec.Value = nil
			}
			want++
			if !fn(&rec) {
				return nil
			}
		}
	}
	return nil
}

// corrupt wraps err as corruption of this file at an unknown byte offset.
func (rd *Reader) corrupt(err error) error {
	return fmt.Errorf("pqfile: %w", &tiers.CorruptionError{Path: rd.name, Offset: -1, Err: err})
}

// classify turns an error from parquet-go into corruption, unless the
// underlying ReaderAt failed during the operation (ioErrsBefore is its
// failure count when the operation began): then the store is at fault and
// the error is returned as that failure.
func (rd *Reader) classify(ioErrsBefore int64, op string, err error) error {
	if rd.ra.ioErrs.Load() != ioErrsBefore {
		if ioErr := rd.ra.lastIOErr.Load(); ioErr != nil {
			return fmt.Errorf("pqfile: %s %s: %w", op, rd.name, *ioErr)
		}
	}
	return rd.corrupt(err)
}

// protect runs fn and turns a panic into an error: parquet-go may panic on
// hostile bytes, and a damaged object must never take the daemon down.
func protect(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("parquet decoder panicked: %v", p)
		}
	}()
	return fn()
}

// guardedReaderAt bounds reads to the file's size and remembers failures of
// the underlying reader, so classify can tell store errors from damage.
type guardedReaderAt struct {
	r         io.ReaderAt
	size      int64
	ioErrs    atomic.Int64
	lastIOErr atomic.Pointer[error]
}

// ReadAt reads like io.ReaderAt; reads past size return io.EOF as a file
// would, whatever the underlying reader does there.
func (g *guardedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= g.size {
		return 0, io.EOF
	}
	short := false
	if rest := g.size - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	n, err := g.r.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		g.lastIOErr.Store(&err)
		g.ioErrs.Add(1)
		return n, err
	}
	if n == len(p) {
		err = nil
	}
	if short && err == nil {
		err = io.EOF
	}
	return n, err
}
