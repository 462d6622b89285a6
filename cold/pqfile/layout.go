package pqfile

import (
	"bufio"
	"fmt"
	"io"
	"slices"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// checkLayout checks each row group's column chunks in the footer before
// parquet-go reads any of them. parquet-go pairs the i-th chunk of a row
// group with the i-th leaf of the schema and reads wherever its offsets
// point, so one flipped bit could make the key column decode the tags
// column's dictionary (keys replaced by tags), or make ts decode offsets
// (every ts in 1970), with every page CRC still good. So the columns are
// found by schema, never by trusted offsets:
//
//   - each chunk names the schema leaf at its position (path_in_schema) and
//     has its physical type, is ZSTD-compressed (what Write writes: any
//     other codec would run a decoder on bytes it was never meant for),
//     lives in this file, and is not encrypted;
//   - the chunks of a row group are contiguous and in schema order (as
//     parquet-go writes them): each starts where the one before ends, its
//     dictionary page (if any) before its first data page; row groups
//     follow each other; everything ends before the footer;
//   - page index and bloom filter ranges lie inside the file, so no
//     damaged length makes parquet-go allocate gigabytes.
func (rd *Reader) checkLayout() error {
	leaves := rd.schema.Columns()
	types := make([]format.Type, len(leaves))
	for i, path := range leaves {
		lc, ok := rd.schema.Lookup(path...)
		if !ok {
			return fmt.Errorf("pqfile: schema has no leaf %v", path) // cannot happen: our own schema
		}
		types[i] = format.Type(lc.Node.Type().Kind())
	}
	inFile := func(off, n int64) bool { return off >= 4 && n >= 0 && off <= rd.footerStart && n <= rd.footerStart-off }
	prevEnd := int64(4) // after the leading magic
	for gi, rg := range rd.file.Metadata().RowGroups {
		if len(rg.Columns) != len(leaves) {
			return fmt.Errorf("%w: row group %d has %d column chunks, the schema %d columns", ErrNotSegment, gi, len(rg.Columns), len(leaves))
		}
		for ci := range rg.Columns {
			c := &rg.Columns[ci]
			md := &c.MetaData
			where := func(format string, args ...any) error {
				return fmt.Errorf("%w: row group %d column %d (%s): "+format, append([]any{ErrNotSegment, gi, ci, leaves[ci][0]}, args...)...)
			}
			switch {
			case !slices.Equal(md.PathInSchema, leaves[ci]):
				return where("path_in_schema %q, want %q", md.PathInSchema, leaves[ci])
			case md.Type != types[ci]:
				return where("type %s, want %s", md.Type, types[ci])
			case md.Codec != format.Zstd:
				return where("codec %s, want ZSTD", md.Codec)
			case c.FilePath != "":
				return where("column chunk in another file %q", c.FilePath)
			case c.CryptoMetadata.Value != nil || len(c.EncryptedColumnMetadata) > 0:
				return where("encrypted column chunk")
			case md.NumValues < rg.NumRows:
				return where("%d values for %d rows", md.NumValues, rg.NumRows)
			}
			start := md.DataPageOffset
			if md.DictionaryPageOffset > 0 {
				if md.DictionaryPageOffset >= md.DataPageOffset {
					return where("dictionary page at %d, not before the data pages at %d", md.DictionaryPageOffset, md.DataPageOffset)
				}
				start = md.DictionaryPageOffset
			}
			switch {
			case md.TotalCompressedSize <= 0 || !inFile(start, md.TotalCompressedSize):
				return where("chunk [%d, +%d) outside the data (which ends at %d)", start, md.TotalCompressedSize, rd.footerStart)
			case ci == 0 && start < prevEnd:
				return where("starts at %d, inside the row group before (which ends at %d)", start, prevEnd)
			case ci > 0 && start != prevEnd:
				return where("starts at %d, the chunk before ends at %d", start, prevEnd)
			case md.DataPageOffset >= start+md.TotalCompressedSize:
				return where("data pages at %d, past the chunk's end %d", md.DataPageOffset, start+md.TotalCompressedSize)
			case c.OffsetIndexOffset != 0 && !inFile(c.OffsetIndexOffset, int64(c.OffsetIndexLength)):
				return where("offset index [%d, +%d) outside the file", c.OffsetIndexOffset, c.OffsetIndexLength)
			case c.ColumnIndexOffset != 0 && !inFile(c.ColumnIndexOffset, int64(c.ColumnIndexLength)):
				return where("column index [%d, +%d) outside the file", c.ColumnIndexOffset, c.ColumnIndexLength)
			case md.BloomFilterOffset != 0 && !inFile(md.BloomFilterOffset, int64(md.BloomFilterLength)):
				return where("bloom filter [%d, +%d) outside the file", md.BloomFilterOffset, md.BloomFilterLength)
			case md.BloomFilterOffset != 0 && ci != rd.colKey:
				return where("a bloom filter on a column other than key")
			}
			prevEnd = start + md.TotalCompressedSize
		}
	}
	return nil
}

// checkOffsetIndexes checks the offset index of every column chunk of row
// group gi, which a Scan that starts inside the group uses to seek: its
// pages must tile the chunk's data pages exactly (the first at
// data_page_offset, each starting where the one before ends, the last
// ending at the chunk's end) with first_row_index rising from 0 below the
// group's rows. With walk set (Verify), it also decodes the header of every
// page it names: the dictionary page must fill the space before the data
// pages, and each data page must have the size the index gives it and
// hold the rows the index says (data page v2's num_rows). A damaged index
// could otherwise make a seek start a column at the wrong row.
func (rd *Reader) checkOffsetIndexes(gi int, walk bool) error {
	g := &rd.groups[gi]
	rgm := &rd.file.Metadata().RowGroups[gi]
	rows := g.rg.NumRows()
	for ci, cc := range g.rg.ColumnChunks() {
		md := &rgm.Columns[ci].MetaData
		fc, ok := cc.(*parquet.FileColumnChunk)
		if !ok {
			return fmt.Errorf("pqfile: row group %d column %d is a %T", gi, ci, cc) // cannot happen: a parquet.File's chunk
		}
		oi, err := fc.OffsetIndex()
		if err != nil {
			return fmt.Errorf("row group %d column %d: offset index: %w", gi, ci, err)
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: row group %d column %d: offset index: "+format, append([]any{ErrNotSegment, gi, ci}, args...)...)
		}
		start := md.DataPageOffset
		chunkEnd := start + md.TotalCompressedSize
		if md.DictionaryPageOffset > 0 {
			chunkEnd = md.DictionaryPageOffset + md.TotalCompressedSize
		}
		n := oi.NumPages()
		if n == 0 {
			return bad("no pages")
		}
		next := start
		for i := range n {
			off, size, first := oi.Offset(i), oi.CompressedPageSize(i), oi.FirstRowIndex(i)
			switch {
			case off != next:
				return bad("page %d at %d, want %d", i, off, next)
			case size <= 0 || size > chunkEnd-off:
				return bad("page %d of %d bytes at %d past the chunk's end %d", i, size, off, chunkEnd)
			case i == 0 && first != 0:
				return bad("first page starts at row %d", first)
			case i > 0 && first <= oi.FirstRowIndex(i-1):
				return bad("page %d starts at row %d, page %d at row %d", i, first, i-1, oi.FirstRowIndex(i-1))
			case first >= rows:
				return bad("page %d starts at row %d of %d", i, first, rows)
			}
			next = off + size
		}
		if next != chunkEnd {
			return bad("pages end at %d, the chunk at %d", next, chunkEnd)
		}
		if !walk {
			continue
		}
		if md.DictionaryPageOffset > 0 {
			h, hlen, err := rd.pageHeader(md.DictionaryPageOffset, start-md.DictionaryPageOffset)
			if err != nil {
				return fmt.Errorf("row group %d column %d: dictionary page header: %w", gi, ci, err)
			}
			if h.Type != format.DictionaryPage || hlen+int64(h.CompressedPageSize) != start-md.DictionaryPageOffset {
				return bad("the dictionary page (%s of %d+%d bytes) does not fill the %d bytes before the data pages",
					h.Type, hlen, h.CompressedPageSize, start-md.DictionaryPageOffset)
			}
		}
		for i := range n {
			off, size, first := oi.Offset(i), oi.CompressedPageSize(i), oi.FirstRowIndex(i)
			h, hlen, err := rd.pageHeader(off, size)
			if err != nil {
				return fmt.Errorf("row group %d column %d: page %d header: %w", gi, ci, i, err)
			}
			if hlen+int64(h.CompressedPageSize) != size {
				return bad("page %d is %d+%d bytes, the index says %d", i, hlen, h.CompressedPageSize, size)
			}
			pageRows := rows - first
			if i+1 < n {
				pageRows = oi.FirstRowIndex(i+1) - first
			}
			switch h.Type {
			case format.DataPageV2:
				if int64(h.DataPageHeaderV2.V.NumRows) != pageRows {
					return bad("page %d holds %d rows, the index says %d", i, h.DataPageHeaderV2.V.NumRows, pageRows)
				}
			case format.DataPage:
			default:
				return bad("page %d is a %s page", i, h.Type)
			}
		}
	}
	return nil
}

// pageHeader decodes the page header at off, within n bytes, and returns it
// with its encoded length.
func (rd *Reader) pageHeader(off, n int64) (*format.PageHeader, int64, error) {
	cr := &countReader{r: bufio.NewReaderSize(io.NewSectionReader(rd.ra, off, n), 512)}
	var proto thrift.CompactProtocol
	h := new(format.PageHeader)
	if err := thrift.NewDecoder(proto.NewReader(cr)).Decode(h); err != nil {
		return nil, 0, err
	}
	if h.CompressedPageSize < 0 {
		return nil, 0, fmt.Errorf("%w: compressed_page_size %d", ErrNotSegment, h.CompressedPageSize)
	}
	return h, cr.n, nil
}

// countReader counts the bytes read through it, so pageHeader knows how
// long a header was. It reads through a bufio.Reader, so the count is the
// header's bytes only when the thrift decoder reads byte by byte, which its
// compact protocol reader does (io.ByteReader).
type countReader struct {
	r *bufio.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ReadByte implements io.ByteReader.
func (c *countReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}
