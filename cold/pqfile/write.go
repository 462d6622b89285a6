package pqfile

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tierd/tierd/tiers"
)

// Info describes a file Write produced.
type Info struct {
	// Meta is what the file's metadata says, computed from the records
	// written: Stream, Base, Last, Count, MinTS, MaxTS, Digest, and Bytes =
	// the file's size. SealedAt and Placements are left for the caller.
	Meta tiers.SegmentMeta
	// RowGroups is the number of row groups in the file.
	RowGroups int
	// ColumnMisses[i] is how many rows got NULL in Options.Columns[i]
	// (Options.OnProjection).
	ColumnMisses []int64
}

// Tuning that is not worth an option.
const (
	// batchRows is how many rows Write hands parquet-go at a time.
	batchRows = 256
	// pageBufferBytes is the uncompressed size at which a column page is
	// cut. Smaller pages let the offset index skip more of a row group for
	// a narrow offset range; larger pages compress a little better.
	pageBufferBytes = 256 << 10
	// pageBufferBytesV2 is format 2's: its ts is two columns, and a page
	// of ts_nanos (int32) held twice the rows of an int64 page, so a
	// query that seeks into a row group fetched a quarter more bytes
	// (tierbench cold's 1 % read). Half the page size fetches less than
	// format 1.2 did, for no loss in size.
	pageBufferBytesV2 = 128 << 10
	// dictionaryMaxBytes bounds the key and tag dictionaries per row group;
	// past it the column falls back to PLAIN for the rest of the row group.
	dictionaryMaxBytes = 1 << 20
	// bloomBitsPerValue sizes the key bloom filter: 10 bits per value gives
	// about 1 % false positives.
	bloomBitsPerValue = 10
	// ctxCheckEvery is how often (in records) Write looks at ctx.
	ctxCheckEvery = 1024
)

// Write streams records (offset order, dense from the first record's offset)
// into w as one Parquet file of format 2.0 (1.2 with Options.Version 1) and
// returns what it wrote. It holds about one
// row group in memory (Options.RowGroupBytes, compressed) whatever the
// segment's size, and computes the segment digest as it goes, so the
// metadata in the footer (base, last, count, ts bounds, digest) describes the
// rows actually written rather than what a caller believed.
//
// Write does not keep a record's Value after the iterator moves on, so the
// iterator may reuse its buffers. Keys and tags must be valid UTF-8 (Parquet
// STRING). On error the bytes already written to w are garbage; the caller
// discards them (an upload is not committed).
func Write(ctx context.Context, w io.Writer, stream string, records iter.Seq2[tiers.Record, error], opts Options) (Info, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return Info{}, fmt.Errorf("pqfile: write: %w", err)
	}
	opts = opts.withDefaults()
	version, err := opts.version()
	if err != nil {
		return Info{}, fmt.Errorf("pqfile: write %s: %w", stream, err)
	}
	v2 := version == FormatVersion
	var proj Projector
	if len(opts.Columns) > 0 {
		if !v2 {
			return Info{}, fmt.Errorf("pqfile: write %s: format %s has no typed columns", stream, version)
		}
		if err := validateColumns(opts.Columns); err != nil {
			return Info{}, fmt.Errorf("pqfile: write %s: %w", stream, err)
		}
		if proj = opts.Projector; proj == nil {
			return Info{}, fmt.Errorf("pqfile: write %s: typed columns without a Projector", stream)
		}
	}
	pageBytes := pageBufferBytes
	if v2 {
		pageBytes = pageBufferBytesV2
	}
	codec, err := newZstdCodec(opts.encoderLevel())
	if err != nil {
		return Info{}, err
	}
	defer codec.Close()
	cw := &countingWriter{w: w}
	blooms := &bloomBuffers{}
	wopts := []parquet.WriterOption{
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(int64(opts.RowGroupRows)),
		parquet.PageBufferSize(pageBytes),
		parquet.DictionaryMaxBytes(dictionaryMaxBytes),
		parquet.BloomFilters(parquet.SplitBlockFilter(bloomBitsPerValue, ColKey)),
		// Bloom filters are built into our buffers and written after the
		// last row group, so Write sees their bytes and can put their
		// CRC32C in tierd.row_groups before the footer is written.
		parquet.DeferBloomFiltersWithBuffers(blooms),
		parquet.CreatedBy("tierd", "pqfile/v"+version, ""),
		// Page statistics go to the column index (page index), which
		// engines use to skip pages; chunk statistics always exist.
		parquet.DataPageStatistics(true),
		// value bounds in the page index would be arbitrary payload
		// prefixes: useless for pruning, and they leak data into the footer.
		// (Each option names one column's path.)
		parquet.SkipPageBounds(ColValue),
		parquet.SkipPageBounds(ColValueBin),
		// Nor does a value page's header carry its min and max: parquet-go
		// would copy both whole (twice: the deprecated fields too) into
		// every page header, which made 200 KiB random values cost 3× their
		// size. offset and ts keep theirs; pruning needs them.
		parquet.SkipPageStatistics(ColValue),
		parquet.SkipPageStatistics(ColValueBin),
	}
	var pw pqWriter
	var pw1 *parquet.GenericWriter[row]
	var pw2 *parquet.Writer
	var pwb *parquet.GenericWriter[rowV2]
	switch {
	case v2 && len(opts.Columns) > 0:
		pw2 = parquet.NewWriter(cw, append(wopts, schemaV2(opts.Columns))...)
		pw = pw2
	case v2:
		pwb = parquet.NewGenericWriter[rowV2](cw, append(wopts, schemaV2Base)...)
		pw = pwb
	default:
		pw1 = parquet.NewGenericWriter[row](cw, append(wopts, schema)...)
		pw = pw1
	}

	s := writeState{
		opts:   opts,
		pw1:    pw1,
		pw2:    pw2,
		pwb:    pwb,
		proj:   proj,
		blooms: blooms,
		dig:    tiers.NewDigester(),
		batch:  make([]row, 0, batchRows),
		minTS:  math.MaxInt64,
		maxTS:  math.MinInt64,
		stream: stream,
	}
	if v2 {
		s.batch = nil
		s.batchV2 = make([]rowV2, 0, batchRows)
		s.rows = make([]parquet.Row, 0, batchRows)
		s.projOut = make([]Value, len(opts.Columns))
		s.misses = make([]int64, len(opts.Columns))
	}
	s.resetGroup()
	for r, err := range records {
		if err != nil {
			return Info{}, fmt.Errorf("pqfile: write %s: reading records: %w", stream, err)
		}
		if s.count%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return Info{}, fmt.Errorf("pqfile: write %s: %w", stream, err)
			}
		}
		if err := s.add(&r); err != nil {
			return Info{}, err
		}
	}
	if s.count == 0 {
		return Info{}, fmt.Errorf("pqfile: write %s: %w", stream, ErrEmptySegment)
	}
	if err := s.flushRowGroup(); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("pqfile: write %s: %w", stream, err)
	}

	meta := tiers.SegmentMeta{
		Stream: stream,
		Base:   s.base,
		Last:   s.base + s.count - 1,
		Count:  s.count,
		MinTS:  s.minTS,
		MaxTS:  s.maxTS,
		Digest: s.dig.Sum(),
	}
	meta.SealedAt = s.opts.SealedAt
	md, err := metadataOf(&meta, s.groups, version, opts.Columns)
	if err != nil {
		return Info{}, fmt.Errorf("pqfile: write %s: %w", stream, err)
	}
	for k, v := range md {
		pw.SetKeyValueMetadata(k, v)
	}
	if err := pw.Close(); err != nil {
		return Info{}, fmt.Errorf("pqfile: write %s: closing parquet writer: %w", stream, err)
	}
	if cw.err != nil {
		return Info{}, fmt.Errorf("pqfile: write %s: %w", stream, cw.err)
	}
	// tierd.row_groups describes the row groups Write cut; parquet-go must
	// have cut the same ones (it is told the same row cap).
	written := pw.File().Metadata().RowGroups
	if len(written) != len(s.groups) {
		return Info{}, fmt.Errorf("pqfile: write %s: parquet-go wrote %d row groups, tierd.row_groups lists %d", stream, len(written), len(s.groups))
	}
	for i := range written {
		if written[i].NumRows != s.groups[i].rows {
			return Info{}, fmt.Errorf("pqfile: write %s: row group %d has %d rows, tierd.row_groups says %d", stream, i, written[i].NumRows, s.groups[i].rows)
		}
	}
	meta.Bytes = cw.n
	if opts.OnProjection != nil {
		for i, c := range opts.Columns {
			opts.OnProjection(c.Name, s.misses[i])
		}
	}
	return Info{Meta: meta, RowGroups: s.rowGroups, ColumnMisses: s.misses}, nil
}

// pqWriter is what Write needs of parquet-go's writers beyond writing rows.
type pqWriter interface {
	Flush() error
	Close() error
	SetKeyValueMetadata(key, value string)
	File() parquet.FileView
}

// version returns the format version o asks for.
func (o Options) version() (string, error) {
	switch o.Version {
	case 0, 2:
		return FormatVersion, nil
	case 1:
		return FormatVersion1, nil
	}
	return "", fmt.Errorf("format version %d: this writer writes 1 (as 1.2) and 2", o.Version)
}

// writeState is Write's loop state.
type writeState struct {
	opts Options
	// pw1 writes format 1.2 from batch; pw2 format 2 with typed columns
	// from rows, pwb format 2 without them from batchV2 (parquet-go's
	// struct path costs a third of its parquet.Row path).
	pw1     *parquet.GenericWriter[row]
	pw2     *parquet.Writer
	pwb     *parquet.GenericWriter[rowV2]
	batchV2 []rowV2
	blooms  *bloomBuffers
	dig     *tiers.Digester
	stream  string
	enc     []byte // the current record's canonical encoding

	groups []groupMeta // the row groups flushed so far
	group  groupMeta   // the current row group; its blocks so far
	block  blockMeta   // the current checksum block
	// blockBytes counts the current block's canonical bytes.
	blockBytes int

	batch []row
	arena []byte   // the batch's values, copied: the iterator may reuse its buffers
	tags  []string // the batch's tag lists, copied for the same reason
	// Format 2: rows is the batch; its values point into arena (keys,
	// tags, values and projected strings). proj projects JSON values into
	// projOut; misses counts each typed column's NULLs.
	rows    []parquet.Row
	proj    Projector
	projOut []Value
	misses  []int64

	base, count  uint64
	minTS, maxTS int64

	rgRows    int
	rgBytes   int64
	rowGroups int
}

// add appends one record, cutting batches and row groups at their caps.
func (s *writeState) add(r *tiers.Record) error {
	if s.count == 0 {
		s.base = r.Offset
	}
	if want := s.base + s.count; r.Offset != want || r.Offset > math.MaxInt64 {
		return fmt.Errorf("pqfile: write %s: %w: got offset %d, want %d", s.stream, ErrNotDense, r.Offset, want)
	}
	if !utf8.ValidString(r.Key) {
		return fmt.Errorf("pqfile: write %s: offset %d: %w: key is not valid UTF-8", s.stream, r.Offset, tiers.ErrInvalidRecord)
	}
	for i, t := range r.Tags {
		if !utf8.ValidString(t) {
			return fmt.Errorf("pqfile: write %s: offset %d: %w: tag %d is not valid UTF-8", s.stream, r.Offset, tiers.ErrInvalidRecord, i)
		}
	}
	s.block.crc, s.enc = appendRecordCRC(s.block.crc, s.enc, r)
	s.dig.AddEncoded(s.enc)
	s.count++
	s.minTS = min(s.minTS, r.TS)
	s.maxTS = max(s.maxTS, r.TS)
	s.group.rows++
	s.group.minTS = min(s.group.minTS, r.TS)
	s.group.maxTS = max(s.group.maxTS, r.TS)
	s.block.rows++
	s.blockBytes += len(s.enc)
	if s.block.rows >= blockMaxRows || s.blockBytes >= blockMaxBytes {
		s.endBlock()
	}

	pending := 0
	switch {
	case s.pwb != nil:
		s.addRowV2(r)
		pending = len(s.batchV2)
	case s.pw2 != nil:
		s.addRow(r)
		pending = len(s.rows)
	default:
		start := len(s.arena)
		s.arena = append(s.arena, r.Value...)
		var v []byte
		if len(r.Value) > 0 {
			v = s.arena[start:len(s.arena):len(s.arena)]
		}
		var tags []string
		if len(r.Tags) > 0 {
			ts := len(s.tags)
			s.tags = append(s.tags, r.Tags...)
			tags = s.tags[ts:len(s.tags):len(s.tags)]
		}
		s.batch = append(s.batch, row{Offset: int64(r.Offset), TS: r.TS, Key: r.Key, Tags: tags, Value: v})
		pending = len(s.batch)
	}
	s.rgRows++
	s.rgBytes += int64(len(s.enc))

	if s.rgRows >= s.opts.RowGroupRows || s.rgBytes >= s.opts.RowGroupBytes {
		return s.flushRowGroup()
	}
	// A batch of large values is written early so the arena stays small.
	if pending == batchRows || len(s.arena) >= pageBufferBytes {
		return s.writeBatch()
	}
	return nil
}

// writeBatch hands the buffered rows to parquet-go, which copies them.
func (s *writeState) writeBatch() error {
	if s.pwb != nil {
		// One Write per run of rows whose value is JSON (or is not):
		// parquet-go v0.32.0 miscounts runs of NULLs in an optional
		// column when they alternate inside one Write (its
		// writeRowsFuncOfOptional compares the shifted bitmap with
		// 1<<y-1 where it means all ones), and gives a row both value
		// and value_bin or neither (TestBinaryThenJSONValues). A run has
		// no NULL changes, so each Write takes the uniform path.
		for rest := s.batchV2; len(rest) > 0; {
			n := 1
			for n < len(rest) && (rest[n].Value == nil) == (rest[0].Value == nil) {
				n++
			}
			if _, err := s.pwb.Write(rest[:n]); err != nil {
				return fmt.Errorf("pqfile: write %s: %w", s.stream, err)
			}
			rest = rest[n:]
		}
		clear(s.batchV2) // drop references into the arena
		s.batchV2 = s.batchV2[:0]
		s.arena = s.arena[:0]
		clear(s.tags)
		s.tags = s.tags[:0]
		return nil
	}
	if s.pw2 != nil {
		if len(s.rows) > 0 {
			if _, err := s.pw2.WriteRows(s.rows); err != nil {
				return fmt.Errorf("pqfile: write %s: %w", s.stream, err)
			}
		}
		for i := range s.rows {
			clear(s.rows[i]) // drop references into the arena
		}
		s.rows = s.rows[:0]
		s.arena = s.arena[:0]
		return nil
	}
	if len(s.batch) == 0 {
		return nil
	}
	if _, err := s.pw1.Write(s.batch); err != nil {
		return fmt.Errorf("pqfile: write %s: %w", s.stream, err)
	}
	clear(s.batch) // drop references to keys, tags and the arena
	s.batch = s.batch[:0]
	s.arena = s.arena[:0]
	clear(s.tags)
	s.tags = s.tags[:0]
	return nil
}

// flushRowGroup ends the current row group, if it has rows.
func (s *writeState) flushRowGroup() error {
	if err := s.writeBatch(); err != nil {
		return err
	}
	if s.rgRows == 0 {
		return nil
	}
	if err := s.pw().Flush(); err != nil {
		return fmt.Errorf("pqfile: write %s: flushing row group: %w", s.stream, err)
	}
	s.endBlock()
	// The flush built the row group's one bloom filter (on key) into the
	// next of our buffers.
	if len(s.blooms.bufs) != len(s.groups)+1 {
		return fmt.Errorf("pqfile: write %s: %d bloom filters for %d row groups", s.stream, len(s.blooms.bufs), len(s.groups)+1)
	}
	s.group.bloomCRC = crc32.Checksum(s.blooms.bufs[len(s.groups)].b, castagnoli)
	s.group.hasBloom = true
	s.groups = append(s.groups, s.group)
	s.resetGroup()
	s.rowGroups++
	s.rgRows, s.rgBytes = 0, 0
	return nil
}

// endBlock ends the current checksum block, if it has rows.
func (s *writeState) endBlock() {
	if s.block.rows > 0 {
		s.group.blocks = append(s.group.blocks, s.block)
	}
	s.block, s.blockBytes = blockMeta{}, 0
}

// pw returns the parquet-go writer in use.
func (s *writeState) pw() pqWriter {
	switch {
	case s.pwb != nil:
		return s.pwb
	case s.pw2 != nil:
		return s.pw2
	}
	return s.pw1
}

// resetGroup starts the description of the next row group.
func (s *writeState) resetGroup() {
	s.group = groupMeta{minTS: math.MaxInt64, maxTS: math.MinInt64}
}

// metadataOf returns the tierd key/value metadata describing m and, unless
// groups is nil, its row groups and the metadata's checksum (format 1.2).
func metadataOf(m *tiers.SegmentMeta, groups []groupMeta, version string, cols []Column) (map[string]string, error) {
	md := map[string]string{
		MetaStream:        m.Stream,
		MetaBase:          strconv.FormatUint(m.Base, 10),
		MetaLast:          strconv.FormatUint(m.Last, 10),
		MetaCount:         strconv.FormatUint(m.Count, 10),
		MetaMinTS:         strconv.FormatInt(m.MinTS, 10),
		MetaMaxTS:         strconv.FormatInt(m.MaxTS, 10),
		MetaDigest:        m.Digest.String(),
		MetaFormatVersion: version,
	}
	if version == FormatVersion {
		md[MetaColumns] = encodeColumns(cols)
	}
	if !m.SealedAt.IsZero() {
		md[MetaSealedAt] = strconv.FormatInt(m.SealedAt.UnixNano(), 10)
	}
	if groups == nil {
		return md, nil
	}
	md[MetaRowGroups] = encodeRowGroups(groups)
	kv := make([]format.KeyValue, 0, len(md))
	for k, v := range md {
		kv = append(kv, format.KeyValue{Key: k, Value: v})
	}
	sum, err := metaChecksum(kv)
	if err != nil {
		return nil, err
	}
	md[MetaChecksum] = sum
	return md, nil
}

// bloomBuffers is the buffer pool parquet-go writes deferred bloom filters
// into: it keeps every buffer, in the order the row groups asked for them,
// so Write can checksum each filter's bytes.
type bloomBuffers struct{ bufs []*memBuffer }

// GetBuffer implements parquet.BufferPool.
func (p *bloomBuffers) GetBuffer() io.ReadWriteSeeker {
	b := &memBuffer{}
	p.bufs = append(p.bufs, b)
	return b
}

// PutBuffer implements parquet.BufferPool; the buffers stay until Write
// returns.
func (p *bloomBuffers) PutBuffer(io.ReadWriteSeeker) {}

// memBuffer is an in-memory io.ReadWriteSeeker.
type memBuffer struct {
	b   []byte
	off int64
}

func (m *memBuffer) Write(p []byte) (int, error) {
	if end := m.off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	n := copy(m.b[m.off:], p)
	m.off += int64(n)
	return n, nil
}

func (m *memBuffer) Read(p []byte) (int, error) {
	if m.off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[m.off:])
	m.off += int64(n)
	return n, nil
}

func (m *memBuffer) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.off
	case io.SeekEnd:
		offset += int64(len(m.b))
	default:
		return 0, fmt.Errorf("pqfile: seek whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("pqfile: seek to %d", offset)
	}
	m.off = offset
	return offset, nil
}

// countingWriter counts the bytes that reach w and keeps its first error,
// so Info.Meta.Bytes is the file's size.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}
