package pqfile

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// checkDictionaries verifies the CRC32 of every dictionary page of row
// group gi before its rows are decoded. parquet-go checks the CRC of pages
// it reads in sequence, but it loads a column chunk's dictionary page
// through a separate path (FilePages.readDictionary, v0.32.0) that does not
// check it, so a flipped bit in a dictionary (the key and tag columns)
// would silently change every value that refers to it. A group is checked
// once per Reader.
func (rd *Reader) checkDictionaries(gi int) error {
	if rd.dictChecked[gi].Load() {
		return nil
	}
	rgs := rd.file.Metadata().RowGroups
	if gi >= len(rgs) {
		return fmt.Errorf("%w: row group %d missing from the footer", ErrNotSegment, gi)
	}
	for ci := range rgs[gi].Columns {
		md := &rgs[gi].Columns[ci].MetaData
		off := md.DictionaryPageOffset
		if off <= 0 {
			continue
		}
		if off >= rd.ra.size || md.TotalCompressedSize <= 0 || off+md.TotalCompressedSize > rd.ra.size {
			return fmt.Errorf("%w: row group %d column %d: dictionary page at %d outside the file", ErrNotSegment, gi, ci, off)
		}
		br := bufio.NewReaderSize(io.NewSectionReader(rd.ra, off, rd.ra.size-off), readBufferSize)
		var proto thrift.CompactProtocol
		var h format.PageHeader
		if err := thrift.NewDecoder(proto.NewReader(br)).Decode(&h); err != nil {
			return fmt.Errorf("row group %d column %d: dictionary page header: %w", gi, ci, err)
		}
		if h.Type != format.DictionaryPage || h.CompressedPageSize < 0 || int64(h.CompressedPageSize) > md.TotalCompressedSize {
			return fmt.Errorf("%w: row group %d column %d: no dictionary page at %d", ErrNotSegment, gi, ci, off)
		}
		if h.CRC == 0 {
			continue // a writer that sets no CRC: nothing to check
		}
		body := make([]byte, h.CompressedPageSize)
		if _, err := io.ReadFull(br, body); err != nil {
			return fmt.Errorf("row group %d column %d: dictionary page: %w", gi, ci, err)
		}
		if got := crc32.ChecksumIEEE(body); got != uint32(h.CRC) {
			return fmt.Errorf("%w: row group %d column %d: dictionary page crc32 0x%08X, header says 0x%08X", ErrDigestMismatch, gi, ci, got, uint32(h.CRC))
		}
	}
	rd.dictChecked[gi].Store(true)
	return nil
}
