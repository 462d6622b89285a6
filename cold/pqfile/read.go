package pqfile

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
	// minor is the file's format minor version; checksums is set when it
	// is minorChecksums or later: the tierd metadata is checksummed, and
	// tierd.row_groups gives each row group's bounds, the CRC32C of its
	// key bloom filter and of each block of its records.
	major, minor int
	checksums    bool
	// schema is the schema the file must have: format 1's, or format 2's
	// with the typed columns tierd.columns lists (columns).
	schema  *parquet.Schema
	columns []Column
	// footerStart is the offset of the Thrift footer: every page, index
	// and filter lies before it.
	footerStart int64

	groups []groupInfo
	// dictChecked[i] is set once row group i's dictionary pages passed
	// their CRC check (checkDictionaries).
	dictChecked []atomic.Bool
	// blooms[i] is row group i's key bloom filter once loaded and checked
	// (bloom.go).
	blooms []atomic.Pointer[bloomState]
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
	// meta is the group's line of tierd.row_groups (format 1.2), nil for
	// older files.
	meta *groupMeta
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
	// The footer's length comes first: parquet-go allocates whatever the
	// trailer says before it reads, so a flipped high bit there would cost
	// gigabytes of zeroed memory on every open.
	var trailer [8]byte
	if _, err := rd.ra.ReadAt(trailer[:], rd.ra.size-8); err != nil {
		return err
	}
	footerLen := int64(binary.LittleEndian.Uint32(trailer[:4]))
	rd.footerStart = rd.ra.size - 8 - footerLen
	if string(trailer[4:]) != "PAR1" {
		return fmt.Errorf("%w: trailing magic %q", ErrNotSegment, trailer[4:])
	}
	if footerLen == 0 || rd.footerStart < 4 {
		return fmt.Errorf("%w: footer length %d in a file of %d bytes", ErrNotSegment, footerLen, rd.ra.size)
	}
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
	if !parquet.EqualNodes(f.Schema(), rd.schema) {
		return fmt.Errorf("%w: schema %s", ErrNotSegment, strings.Join(strings.Fields(f.Schema().String()), " "))
	}
	return rd.checkGroups()
}

// checkMeta parses and checks the tierd key/value metadata: in format 1.2
// first its checksum, so that nothing below trusts a damaged value.
func (rd *Reader) checkMeta() error {
	f := rd.file
	v, ok := f.Lookup(MetaFormatVersion)
	if !ok {
		return fmt.Errorf("%w: no %s in the file metadata", ErrNotSegment, MetaFormatVersion)
	}
	major, minor, err := parseVersion(v)
	if err != nil {
		return err
	}
	rd.major, rd.minor = major, minor
	// A checksum present is checked whatever the version says, so a flip
	// that turns "1.2" into "1.0" cannot switch the checks off.
	sum, hasSum := f.Lookup(MetaChecksum)
	if hasSum || minor >= minorChecksums || major >= 2 {
		if !hasSum {
			return fmt.Errorf("%w: format %s without %s", ErrNotSegment, v, MetaChecksum)
		}
		want, err := metaChecksum(f.Metadata().KeyValueMetadata)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotSegment, err)
		}
		if sum != want {
			return fmt.Errorf("%w: %s is %q, the tierd metadata sums to %q", ErrDigestMismatch, MetaChecksum, sum, want)
		}
		rd.checksums = true
	}
	rd.schema = schema
	if major >= 2 {
		cv, ok := f.Lookup(MetaColumns)
		if !ok {
			return fmt.Errorf("%w: format %s without %s", ErrNotSegment, v, MetaColumns)
		}
		if rd.columns, err = decodeColumns(cv); err != nil {
			return fmt.Errorf("%w: %v", ErrNotSegment, err)
		}
		rd.schema = schemaV2(rd.columns)
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

// checkGroups checks every row group's column chunks against the schema and
// the file's layout (layout.go), and collects each row group's offset and ts
// bounds, which pruning trusts: in format 1.2 from tierd.row_groups (under
// the metadata checksum), which the footer's column statistics must equal;
// in older files from the statistics alone.
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
	if err := rd.checkLayout(); err != nil {
		return err
	}
	var metas []groupMeta
	if rd.checksums {
		v, ok := rd.file.Lookup(MetaRowGroups)
		if !ok {
			return fmt.Errorf("%w: format %d.%d without %s", ErrNotSegment, rd.major, rd.minor, MetaRowGroups)
		}
		if metas, err = decodeRowGroups(v, len(rd.file.RowGroups())); err != nil {
			return fmt.Errorf("%w: %v", ErrNotSegment, err)
		}
	}
	next := rd.meta.Base
	for i, rg := range rd.file.RowGroups() {
		n := rg.NumRows()
		if n <= 0 || uint64(n) > rd.meta.Last-next+1 {
			return fmt.Errorf("%w: row group %d has %d rows", ErrNotSegment, i, n)
		}
		g := groupInfo{index: i, rg: rg, first: next, last: next + uint64(n) - 1}
		lo, hi, ok := rd.int64Stats(i, rd.colOffset)
		if !ok || uint64(lo) != g.first || uint64(hi) != g.last {
			return fmt.Errorf("%w: row group %d: offset statistics %d..%d (present: %t), want %d..%d", ErrNotSegment, i, lo, hi, ok, g.first, g.last)
		}
		lo, hi, ok = rd.int64Stats(i, rd.colTS)
		// Format 2's ts column holds µs: its statistics are the row
		// group's ns bounds (from tierd.row_groups) rounded down.
		fileLo, fileHi := rd.meta.MinTS, rd.meta.MaxTS
		if rd.major >= 2 {
			fileLo, _ = splitTS(fileLo)
			fileHi, _ = splitTS(fileHi)
		}
		if !ok || lo > hi || lo < fileLo || hi > fileHi {
			return fmt.Errorf("%w: row group %d: ts statistics %d..%d (present: %t) outside the file's %d..%d", ErrNotSegment, i, lo, hi, ok, fileLo, fileHi)
		}
		g.minTS, g.maxTS = lo, hi
		if metas != nil {
			m := &metas[i]
			wantLo, wantHi := m.minTS, m.maxTS
			if rd.major >= 2 {
				wantLo, _ = splitTS(wantLo)
				wantHi, _ = splitTS(wantHi)
				g.minTS, g.maxTS = m.minTS, m.maxTS
			}
			if m.rows != n || wantLo != lo || wantHi != hi {
				return fmt.Errorf("%w: row group %d: footer says %d rows, ts %d..%d; %s says %d rows, ts %d..%d",
					ErrNotSegment, i, n, lo, hi, MetaRowGroups, m.rows, m.minTS, m.maxTS)
			}
			hasBloom := rd.file.Metadata().RowGroups[i].Columns[rd.colKey].MetaData.BloomFilterOffset > 0
			if hasBloom != m.hasBloom {
				return fmt.Errorf("%w: row group %d: key bloom filter in the footer: %t, in %s: %t", ErrNotSegment, i, hasBloom, MetaRowGroups, m.hasBloom)
			}
			g.meta = m
		}
		rd.groups = append(rd.groups, g)
		next = g.last + 1
	}
	if next != rd.meta.Last+1 {
		return fmt.Errorf("%w: row groups end at offset %d, %s is %d", ErrNotSegment, next-1, MetaLast, rd.meta.Last)
	}
	rd.dictChecked = make([]atomic.Bool, len(rd.groups))
	rd.blooms = make([]atomic.Pointer[bloomState], len(rd.groups))
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

// Checksummed reports whether the file carries format 1.2's checksums
// (metadata, record blocks, bloom filters); older files are read with the
// weaker checks docs/format/parquet.md lists.
func (rd *Reader) Checksummed() bool { return rd.checksums }

// Columns returns the file's typed columns (format 2's tierd.columns, which
// the schema was checked against); none in a format 1 file.
func (rd *Reader) Columns() []Column { return rd.columns }

// FormatVersion returns the file's tierd.format_version, e.g. "2.0" or
// "1.2" (readers of format 1 files cannot publish them as format 2
// tables as they are).
func (rd *Reader) FormatVersion() string {
	return strconv.Itoa(rd.major) + "." + strconv.Itoa(rd.minor)
}

// RowGroups returns the number of row groups in the file.
func (rd *Reader) RowGroups() int { return len(rd.groups) }

// RowGroupsRead returns how many row groups Scans and Verifies have read
// since Open (pruned ones are not counted): tests and benchmarks use it to
// check pruning.
func (rd *Reader) RowGroupsRead() int { return int(rd.rowGroupsRead.Load()) }

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
