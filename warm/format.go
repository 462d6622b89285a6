package warm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/tierd/tierd/tiers"
)

// The byte layout of a segment file, version 3 (docs/format/segment.md):
//
//	header   magic "TDWS" | version u16 | name length u16 | base u64 | name | crc32c u32
//	frames   length u32 | crc32c(length bytes ‖ payload) u32 | payload (tiers.AppendRecord)
//	footer   fixed fields | block table | bloom words | crc32c u32
//	trailer  footer length u32 | magic "TDWE"
//
// All integers are little-endian. Version 2 added sealed_at to the footer's
// fixed fields, so that a rebuilt catalog keeps each segment's age; version
// 3 keeps each record's JSON hint (tiers.Record.JSON) in the top bit of its
// frame's length field, under the frame's CRC, so that the cold tier's
// conversion need not check the value again. Versions 1 and 2 are still
// read (their seal time, for version 1, and their hints are unknown).
const (
	formatVersion = 3
	formatV2      = 2
	formatV1      = 1

	// frameJSON is the bit of a version 3 frame's length field that holds
	// the record's JSON hint; the length is the other 31 bits.
	frameJSON = 1 << 31

	headerFixedLen   = 16 // magic, version, name length, base
	frameHeaderLen   = 8  // length, crc
	trailerLen       = 8  // footer length, magic
	footerFixedLen   = 96 // base … bloom word count, sealed_at (versions 2 and 3)
	footerFixedLenV1 = 88 // base … bloom word count
	blockEntryLen    = 32 // first offset, position, min ts, max ts
	crcLen           = 4

	// minPayloadLen is the shortest record encoding: offset, ts, and three
	// zero lengths (key, tag count, value). A shorter frame is damage.
	minPayloadLen = 1 + 8 + 1 + 1 + 1
	// maxPayloadLen bounds one frame, so a corrupt length cannot describe a
	// multi-gigabyte record; values are capped far below it.
	maxPayloadLen = 1 << 30
	// minFrameLen is the smallest frame on disk.
	minFrameLen = frameHeaderLen + minPayloadLen

	// maxIndexInterval bounds Options.IndexInterval: a block is walked
	// linearly by Get, so a huge interval would make reads slow.
	maxIndexInterval = 1 << 16
)

var (
	headerMagic  = [4]byte{'T', 'D', 'W', 'S'}
	trailerMagic = [4]byte{'T', 'D', 'W', 'E'}
	// castagnoli is built once; crc32.MakeTable would allocate per call.
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Sentinel errors. The corruption causes are the Err of a
// *tiers.CorruptionError; check both with errors.Is.
var (
	// ErrUnsupportedVersion is returned (not as a CorruptionError) for a file
	// whose header names a format version this build cannot read: the file
	// may be intact and written by a newer tierd, so it must not be treated
	// as damage and deleted.
	ErrUnsupportedVersion = errors.New("warm: unsupported segment format version")
	// ErrOffsetOutOfRange reports a Get for an offset the segment lacks.
	ErrOffsetOutOfRange = errors.New("warm: offset not in segment")
	// ErrOutOfOrder reports an Append whose offset is not the next dense one.
	ErrOutOfOrder = errors.New("warm: record offset out of order")
	// ErrEmptySegment reports a Commit without records: a segment is a
	// non-empty run [base, last].
	ErrEmptySegment = errors.New("warm: segment has no records")
	// ErrWriterDone reports use of a Writer after Commit or Abort.
	ErrWriterDone = errors.New("warm: writer already committed or aborted")
	// ErrReleased reports use of a Reader after Release.
	ErrReleased = errors.New("warm: reader released")

	// ErrBadMagic: the header or trailer magic is wrong (not a segment file,
	// or a truncated one).
	ErrBadMagic = errors.New("warm: bad magic")
	// ErrTruncated: the file is too short to hold what it declares.
	ErrTruncated = errors.New("warm: file truncated")
	// ErrChecksum: a CRC32C does not match its bytes.
	ErrChecksum = errors.New("warm: checksum mismatch")
	// ErrBadHeader: the header is well-formed but inconsistent (bad stream
	// name, or not the segment the path names).
	ErrBadHeader = errors.New("warm: bad header")
	// ErrBadFrame: a frame's length, encoding or offset is impossible.
	ErrBadFrame = errors.New("warm: bad frame")
	// ErrBadFooter: the footer's fields contradict each other or the file.
	ErrBadFooter = errors.New("warm: bad footer")
	// ErrDigestMismatch: the records do not hash to the footer's digest.
	ErrDigestMismatch = errors.New("warm: digest mismatch")
	// ErrFault: the mapping faulted, because the file shrank underneath it.
	ErrFault = errors.New("warm: memory fault reading mapped file")
)

// appendHeader appends the header of a segment of stream starting at base.
func appendHeader(dst []byte, stream string, base uint64) []byte {
	start := len(dst)
	dst = append(dst, headerMagic[:]...)
	dst = binary.LittleEndian.AppendUint16(dst, formatVersion)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(stream)))
	dst = binary.LittleEndian.AppendUint64(dst, base)
	dst = append(dst, stream...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// blockEntry is one row of the footer's block table: where a sparse index
// block starts and the ts range of its records.
type blockEntry struct {
	first uint64 // offset of the block's first record
	pos   uint64 // file position of that record's frame
	minTS int64
	maxTS int64
}

// footer is the decoded fixed part of a footer.
type footer struct {
	base, last, count uint64
	minTS, maxTS      int64
	digest            tiers.Digest
	interval          uint32
	blocks            uint32
	bloomK            uint32
	bloomWords        uint32
	// sealedAt is when the segment was sealed, Unix ns; 0 when unknown
	// (a version 1 file, or a writer not told).
	sealedAt int64
}

// appendFooter appends footer, block table, bloom words, footer CRC and the
// trailer.
func appendFooter(dst []byte, f *footer, blocks []blockEntry, bloom []uint64) []byte {
	start := len(dst)
	le := binary.LittleEndian
	dst = le.AppendUint64(dst, f.base)
	dst = le.AppendUint64(dst, f.last)
	dst = le.AppendUint64(dst, f.count)
	dst = le.AppendUint64(dst, uint64(f.minTS))
	dst = le.AppendUint64(dst, uint64(f.maxTS))
	dst = append(dst, f.digest[:]...)
	dst = le.AppendUint32(dst, f.interval)
	dst = le.AppendUint32(dst, uint32(len(blocks)))
	dst = le.AppendUint32(dst, f.bloomK)
	dst = le.AppendUint32(dst, uint32(len(bloom)))
	dst = le.AppendUint64(dst, uint64(f.sealedAt))
	for _, b := range blocks {
		dst = le.AppendUint64(dst, b.first)
		dst = le.AppendUint64(dst, b.pos)
		dst = le.AppendUint64(dst, uint64(b.minTS))
		dst = le.AppendUint64(dst, uint64(b.maxTS))
	}
	for _, w := range bloom {
		dst = le.AppendUint64(dst, w)
	}
	dst = le.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	dst = le.AppendUint32(dst, uint32(len(dst)-start))
	return append(dst, trailerMagic[:]...)
}

// footerLen is the size of a current footer including its CRC, or ok=false
// when it would not fit the u32 the trailer stores it in.
func footerLen(blocks, bloomWords int) (int, bool) {
	return footerLenOf(footerFixedLen, blocks, bloomWords)
}

// footerLenOf is footerLen for a footer whose fixed part is fixed bytes.
func footerLenOf(fixed, blocks, bloomWords int) (int, bool) {
	n := uint64(fixed) + uint64(blocks)*blockEntryLen + uint64(bloomWords)*8 + crcLen
	return int(n), n <= math.MaxUint32
}

// layout is what parsing a file learns: where everything is. It holds no
// bytes of the file, only positions into it.
type layout struct {
	footer
	version     uint16
	stream      string
	hdrLen      int // records start here
	footerStart int // records end here
	blocksOff   int
	bloomOff    int
}

// parseLayout checks header, trailer and footer of a whole file and every
// cross-field invariant the readers rely on, touching nothing outside data.
// It does not read the frames; Verify does.
func parseLayout(path string, data []byte) (*layout, error) {
	le := binary.LittleEndian
	size := len(data)
	bad := func(off int, err error, format string, args ...any) error {
		return &tiers.CorruptionError{Path: path, Offset: int64(off), Err: fmt.Errorf("%w: "+format, append([]any{err}, args...)...)}
	}
	if size < 4 || [4]byte(data[:4]) != headerMagic {
		return nil, bad(0, ErrBadMagic, "header does not start with %q", headerMagic[:])
	}
	if size < headerFixedLen {
		return nil, bad(0, ErrTruncated, "file is %d bytes, shorter than a header", size)
	}
	version := le.Uint16(data[4:])
	if version < formatV1 || version > formatVersion {
		if v, ok := damagedVersion(data); ok {
			return nil, bad(0, ErrBadHeader, "format version %d, but the header's checksum holds for version %d: the version field is damaged", version, v)
		}
		return nil, fmt.Errorf("%w: %s is format version %d, this build reads versions %d to %d", ErrUnsupportedVersion, path, version, formatV1, formatVersion)
	}
	fixed := footerFixedLen
	if version == formatV1 {
		fixed = footerFixedLenV1
	}
	l := &layout{version: version}
	nameLen := int(le.Uint16(data[6:]))
	l.hdrLen = headerFixedLen + nameLen + crcLen
	if size < l.hdrLen+trailerLen {
		return nil, bad(0, ErrTruncated, "file is %d bytes, shorter than header and trailer", size)
	}
	hdrBody := data[:headerFixedLen+nameLen]
	if got, want := crc32.Checksum(hdrBody, castagnoli), le.Uint32(data[len(hdrBody):]); got != want {
		return nil, bad(0, ErrChecksum, "header crc %08x, computed %08x", want, got)
	}
	l.base = le.Uint64(data[8:])
	l.stream = string(data[headerFixedLen : headerFixedLen+nameLen])
	if err := tiers.ValidateStreamName(l.stream); err != nil {
		return nil, bad(headerFixedLen, ErrBadHeader, "%v", err)
	}

	tpos := size - trailerLen
	if [4]byte(data[tpos+4:]) != trailerMagic {
		return nil, bad(tpos, ErrBadMagic, "trailer does not end with %q (torn or truncated file)", trailerMagic[:])
	}
	flen := uint64(le.Uint32(data[tpos:]))
	if flen < uint64(fixed)+crcLen || flen > uint64(tpos-l.hdrLen) {
		return nil, bad(tpos, ErrBadFooter, "footer length %d does not fit a %d-byte file", flen, size)
	}
	l.footerStart = tpos - int(flen)
	fb := data[l.footerStart:tpos]
	body := fb[:len(fb)-crcLen]
	if got, want := crc32.Checksum(body, castagnoli), le.Uint32(fb[len(body):]); got != want {
		return nil, bad(l.footerStart, ErrChecksum, "footer crc %08x, computed %08x", want, got)
	}
	f := &l.footer
	if base := le.Uint64(body); base != l.base {
		return nil, bad(l.footerStart, ErrBadFooter, "footer base %d, header base %d", base, l.base)
	}
	f.last = le.Uint64(body[8:])
	f.count = le.Uint64(body[16:])
	f.minTS = int64(le.Uint64(body[24:]))
	f.maxTS = int64(le.Uint64(body[32:]))
	copy(f.digest[:], body[40:72])
	f.interval = le.Uint32(body[72:])
	f.blocks = le.Uint32(body[76:])
	f.bloomK = le.Uint32(body[80:])
	f.bloomWords = le.Uint32(body[84:])
	if version != formatV1 {
		f.sealedAt = int64(le.Uint64(body[88:]))
	}
	l.blocksOff = l.footerStart + fixed
	l.bloomOff = l.blocksOff + int(f.blocks)*blockEntryLen

	region := uint64(l.footerStart - l.hdrLen)
	switch {
	case f.count == 0:
		return nil, bad(l.footerStart, ErrBadFooter, "count is zero")
	case f.count > region/minFrameLen:
		return nil, bad(l.footerStart, ErrBadFooter, "count %d cannot fit %d bytes of frames", f.count, region)
	case f.count-1 > math.MaxUint64-f.base || f.last != f.base+f.count-1:
		return nil, bad(l.footerStart, ErrBadFooter, "base %d, last %d and count %d disagree", f.base, f.last, f.count)
	case f.interval == 0 || f.interval > maxIndexInterval:
		return nil, bad(l.footerStart, ErrBadFooter, "index interval %d", f.interval)
	case uint64(f.blocks) != (f.count-1)/uint64(f.interval)+1:
		return nil, bad(l.footerStart, ErrBadFooter, "%d index blocks for %d records every %d", f.blocks, f.count, f.interval)
	case f.bloomK == 0 || f.bloomK > maxBloomK || f.bloomWords == 0:
		return nil, bad(l.footerStart, ErrBadFooter, "key filter k=%d words=%d", f.bloomK, f.bloomWords)
	case f.minTS > f.maxTS:
		return nil, bad(l.footerStart, ErrBadFooter, "min ts %d > max ts %d", f.minTS, f.maxTS)
	case f.sealedAt < 0:
		return nil, bad(l.footerStart, ErrBadFooter, "sealed_at %d before 1970", f.sealedAt)
	}
	if want, _ := footerLenOf(fixed, int(f.blocks), int(f.bloomWords)); uint64(want) != flen {
		return nil, bad(l.footerStart, ErrBadFooter, "footer is %d bytes, its tables need %d", flen, want)
	}
	// The block table must partition the frame region in offset order, and
	// its ts ranges must add up to the segment's.
	minTS, maxTS := int64(math.MaxInt64), int64(math.MinInt64)
	prevPos := uint64(0)
	for i := 0; i < int(f.blocks); i++ {
		e := l.block(data, i)
		switch {
		case e.first != f.base+uint64(i)*uint64(f.interval):
			return nil, bad(l.blocksOff+i*blockEntryLen, ErrBadFooter, "block %d starts at offset %d", i, e.first)
		case i == 0 && e.pos != uint64(l.hdrLen):
			return nil, bad(l.blocksOff, ErrBadFooter, "first block at byte %d, records start at %d", e.pos, l.hdrLen)
		case i > 0 && e.pos <= prevPos, e.pos >= uint64(l.footerStart):
			return nil, bad(l.blocksOff+i*blockEntryLen, ErrBadFooter, "block %d at byte %d is out of order", i, e.pos)
		case e.minTS > e.maxTS:
			return nil, bad(l.blocksOff+i*blockEntryLen, ErrBadFooter, "block %d min ts > max ts", i)
		}
		prevPos = e.pos
		minTS, maxTS = min(minTS, e.minTS), max(maxTS, e.maxTS)
	}
	if minTS != f.minTS || maxTS != f.maxTS {
		return nil, bad(l.footerStart, ErrBadFooter, "ts range [%d, %d] but blocks span [%d, %d]", f.minTS, f.maxTS, minTS, maxTS)
	}
	return l, nil
}

// damagedVersion reports whether a header whose version this build does
// not read would pass its checksum with a version it does read in its
// place, and which: then the version field itself was damaged (a flipped
// bit), and the file is corrupt, not newer. A newer tierd's header
// checksum covers the version it wrote.
func damagedVersion(data []byte) (uint16, bool) {
	if len(data) < headerFixedLen {
		return 0, false
	}
	n := headerFixedLen + int(binary.LittleEndian.Uint16(data[6:]))
	if len(data) < n+crcLen {
		return 0, false
	}
	hdr := append([]byte(nil), data[:n]...)
	for _, v := range []uint16{formatV1, formatV2, formatVersion} {
		binary.LittleEndian.PutUint16(hdr[4:], v)
		if crc32.Checksum(hdr, castagnoli) == binary.LittleEndian.Uint32(data[n:]) {
			return v, true
		}
	}
	return 0, false
}

// block decodes entry i of the block table; i must be < l.blocks.
func (l *layout) block(data []byte, i int) blockEntry {
	b := data[l.blocksOff+i*blockEntryLen:]
	le := binary.LittleEndian
	return blockEntry{
		first: le.Uint64(b),
		pos:   le.Uint64(b[8:]),
		minTS: int64(le.Uint64(b[16:])),
		maxTS: int64(le.Uint64(b[24:])),
	}
}

// blockEnd is where block i's frames end: the next block's start, or the
// footer.
func (l *layout) blockEnd(data []byte, i int) int {
	if i+1 < int(l.blocks) {
		return int(l.block(data, i+1).pos)
	}
	return l.footerStart
}

// frameCRC is the checksum a frame stores: over its length field and payload,
// so a damaged length fails the check at that frame.
func frameCRC(lenField, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, lenField), castagnoli, payload)
}
