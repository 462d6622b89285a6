package journal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/tierd/tierd/tiers"
)

// BlockCheck is what the caller knows of a block before reading it: the
// catalog row's facts, asserted by DecodeBlock, and the limits it applies.
// A zero field is not checked.
type BlockCheck struct {
	// Key is the object key, named in errors.
	Key string
	// Pos is the block's byte position in the object as the catalog has
	// it; the block records its own position, so a row pointing at
	// another intact block of the same object is caught. Errors give
	// offsets in the object when it is set, in b otherwise. (No block
	// starts at 0: the header is there.)
	Pos int64
	// Stream is the stream the catalog row belongs to.
	Stream string
	// Records is the record count of the catalog row.
	Records int
	// First is the offset the catalog gave the block's first record:
	// record i gets First+i. It is not checked (offsets are not in the
	// object), except that the last offset must not wrap past 2⁶⁴−1.
	First uint64
	// MaxValueBytes caps a record's value (the cluster's
	// max_record_bytes); 0 means no cap beyond the block's size.
	MaxValueBytes int
}

// BlockInfo describes a block without its records: what walking an object
// learns of each block.
type BlockInfo struct {
	Stream   string
	Producer tiers.Producer // zero for a plain append
	// Ref is where the block is and what it holds; Ref.Pos is the position
	// the block records for itself.
	Ref BlockRef
}

// Block is one decoded block: one batch of one stream.
type Block struct {
	BlockInfo
	// Records have Offset First+i. Values alias the decoded bytes (no
	// copy: the caller must not reuse them while the records live); keys
	// and tags share one string allocation per block.
	Records []tiers.Record
}

// Object is a walked journal object: its header and every block's
// description, in order.
type Object struct {
	Header Header
	Blocks []BlockInfo
}

// DecodeBlock decodes exactly one block, the bytes of a ranged GET of its
// catalog range, and checks everything before returning a record: magic,
// version, length, CRC32C, then the position, stream and count against
// want, every length against what remains and its field's limit, and that
// the last record ends at the checksum. Any failure is a
// *tiers.CorruptionError and no records.
func DecodeBlock(b []byte, want BlockCheck) (Block, error) {
	s, err := scanBlock(b, want, true)
	if err != nil {
		return Block{}, err
	}
	body := b[:len(b)-blockTrailerLen]
	recs := s.recs

	// Every check passed in scanBlock, which left each record's key and
	// tags located in its Offset (see packText). Keys and tags go into
	// one string, so a block costs three allocations whatever its record
	// count: the records, the tags and that string.
	var sb strings.Builder
	sb.Grow(s.textBytes)
	for i := range recs {
		keyAt, kl, nt := unpackText(recs[i].Offset)
		sb.Write(body[keyAt : keyAt+kl])
		for t, off := 0, keyAt+kl+uvarintLen(uint64(nt)); t < nt; t++ {
			from, to := tagSpan(body, &off)
			sb.Write(body[from:to])
		}
	}
	text := sb.String()
	var tags []string
	if s.tags > 0 {
		tags = make([]string, s.tags)
	}
	p, ti := 0, 0
	for i := range recs {
		rec := &recs[i]
		keyAt, kl, nt := unpackText(rec.Offset)
		rec.Offset = want.First + uint64(i)
		rec.Key = text[p : p+kl]
		p += kl
		if nt > 0 {
			rec.Tags = tags[ti : ti+nt : ti+nt]
			for t, off := 0, keyAt+kl+uvarintLen(uint64(nt)); t < nt; t++ {
				from, to := tagSpan(body, &off)
				rec.Tags[t] = text[p : p+to-from]
				p += to - from
			}
			ti += nt
		}
	}
	if p != len(text) || ti != s.tags {
		// scanBlock counted other text than it located: a bug, and
		// never a wrong record.
		return Block{}, corrupt(want.Key, -1, ErrMalformed, "block decodes differently on its second walk")
	}
	return Block{BlockInfo: s.info, Records: recs}, nil
}

// DecodeObject walks a whole object, for verify and garbage collection:
// the header, every block checked as DecodeBlock checks it (without
// building records) at the position it records, and the footer's count
// and checksum chain, which a block dropped, added or reordered breaks.
// key names the object in errors.
func DecodeObject(b []byte, key string) (Object, error) {
	h, pos, err := DecodeHeader(b, key)
	if err != nil {
		return Object{}, err
	}
	if len(b)-pos < FooterLen {
		return Object{}, corrupt(key, int64(len(b)), ErrTruncated, "%d bytes after a %d-byte header, a footer needs %d", len(b)-pos, pos, FooterLen)
	}
	end := len(b) - FooterLen
	f, err := decodeFooter(b[end:], len(b), key)
	if err != nil {
		return Object{}, err
	}
	chain := chainCRC(0, b[pos-4:pos])
	obj := Object{Header: h, Blocks: make([]BlockInfo, 0, min(int(f.blocks), (end-pos)/minBlockLen))}
	for pos < end {
		if end-pos < blockHeaderLen {
			return Object{}, corrupt(key, int64(pos), ErrMalformed, "%d bytes before the footer, a block header needs %d", end-pos, blockHeaderLen)
		}
		n := uint64(binary.LittleEndian.Uint32(b[pos+8:]))
		if n < minBlockLen || n > uint64(end-pos) {
			return Object{}, corrupt(key, int64(pos+8), ErrMalformed, "block length %d with %d bytes before the footer", n, end-pos)
		}
		blk := b[pos : pos+int(n)]
		s, err := scanBlock(blk, BlockCheck{Key: key, Pos: int64(pos)}, false)
		if err != nil {
			return Object{}, err
		}
		obj.Blocks = append(obj.Blocks, s.info)
		chain = chainCRC(chain, blk[len(blk)-blockTrailerLen:])
		pos += int(n)
	}
	if uint64(len(obj.Blocks)) != uint64(f.blocks) {
		return Object{}, corrupt(key, int64(end+4), ErrMalformed, "footer counts %d blocks, the object holds %d", f.blocks, len(obj.Blocks))
	}
	if chain != f.chain {
		return Object{}, corrupt(key, int64(end+16), ErrChecksum, "block checksum chain %08x, footer says %08x", chain, f.chain)
	}
	return obj, nil
}

// scanned is what the checking walk of a block learns.
type scanned struct {
	info      BlockInfo
	count     int
	recordsAt int // where the first record starts
	textBytes int // key and tag bytes of every record
	tags      int // tags of every record
	// recs, made when asked for, hold each record's TS and Value, and in
	// Offset where its key and tags are (packText).
	recs []tiers.Record
}

// scanBlock checks every byte of a block without allocating per record;
// with fill, it also makes the records and fills what needs no copy.
func scanBlock(b []byte, want BlockCheck, fill bool) (scanned, error) {
	base := want.Pos
	fail := func(off int, cause error, format string, args ...any) (scanned, error) {
		return scanned{}, corrupt(want.Key, base+int64(off), cause, format, args...)
	}
	if len(b) < blockHeaderLen {
		return fail(0, ErrTruncated, "%d bytes, a block header needs %d", len(b), blockHeaderLen)
	}
	if [4]byte(b[:4]) != blockMagic {
		return fail(0, ErrMalformed, "block magic % x, want %q", b[:4], blockMagic[:])
	}
	if b[4] != FormatVersion {
		return fail(4, ErrVersion, "block version %d, this build reads %d", b[4], FormatVersion)
	}
	flags := b[5]
	if flags&^flagProducer != 0 || b[6] != 0 || b[7] != 0 {
		return fail(5, ErrMalformed, "block flags %#x and reserved % x: only flag bit 0 is defined", flags, b[6:8])
	}
	n := uint64(binary.LittleEndian.Uint32(b[8:]))
	switch {
	case n < minBlockLen || n > MaxBlockBytes:
		return fail(8, ErrMalformed, "block length %d out of [%d, %d]", n, minBlockLen, MaxBlockBytes)
	case n > uint64(len(b)):
		return fail(len(b), ErrTruncated, "%d bytes, the block says %d", len(b), n)
	case n < uint64(len(b)):
		return fail(int(n), ErrMalformed, "%d bytes after a block of %d: not one block's range", uint64(len(b))-n, n)
	}
	end := len(b) - blockTrailerLen
	if got, stored := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(b[end:]); got != stored {
		return fail(end, ErrChecksum, "block crc32c %08x, stored %08x", got, stored)
	}
	pos := binary.LittleEndian.Uint64(b[12:])
	if pos > math.MaxInt64 || pos < headerFixedLen+1 {
		return fail(12, ErrMalformed, "block position %d", pos)
	}
	if want.Pos != 0 && pos != uint64(want.Pos) {
		return fail(12, ErrMismatch, "block was written at byte %d, the catalog has it at %d", pos, want.Pos)
	}
	s := scanned{info: BlockInfo{Ref: BlockRef{Pos: int64(pos), Len: int64(n)}}}

	c := cursor{b: b[:end], off: blockHeaderLen}
	name := c.span("stream name", tiers.MaxStreamNameLen)
	if c.err == nil {
		s.info.Stream = string(b[name[0]:name[1]])
		if err := tiers.ValidateStreamName(s.info.Stream); err != nil {
			return fail(name[0], ErrMalformed, "%v", err)
		}
		if want.Stream != "" && s.info.Stream != want.Stream {
			return fail(name[0], ErrMismatch, "block of stream %q, the catalog row is of %q", s.info.Stream, want.Stream)
		}
	}
	if flags&flagProducer != 0 {
		if id := c.fixed(len(s.info.Producer.ID)); id != nil {
			s.info.Producer.ID = tiers.ProducerID(id)
		}
		s.info.Producer.Seq = c.uvarint("producer sequence")
		if c.err == nil && (s.info.Producer.ID.IsZero() || s.info.Producer.Seq == 0) {
			return fail(c.off, ErrMalformed, "producer %s with sequence %d", s.info.Producer.ID, s.info.Producer.Seq)
		}
	}
	count := c.uvarint("record count")
	if c.err != nil {
		return fail(c.errAt, ErrMalformed, "%v", c.err)
	}
	if count == 0 || count > MaxBlockRecords || count > uint64(end-c.off)/minRecordLen {
		return fail(c.off, ErrMalformed, "record count %d in %d bytes", count, end-c.off)
	}
	if want.Records != 0 && count != uint64(want.Records) {
		return fail(c.off, ErrMismatch, "block of %d records, the catalog row has %d", count, want.Records)
	}
	if want.First+(count-1) < want.First {
		return fail(c.off, ErrMismatch, "%d records from offset %d run past 2^64-1", count, want.First)
	}
	s.count, s.recordsAt = int(count), c.off
	s.info.Ref.Records = s.count
	s.info.Ref.MinTS, s.info.Ref.MaxTS = math.MaxInt64, math.MinInt64
	limit := valueLimit(want.MaxValueBytes)
	if fill {
		// Bounded: the count fits the checksummed bytes at 12 per record.
		s.recs = make([]tiers.Record, s.count)
	}
	for i := 0; i < s.count; i++ {
		start := c.off
		r := c.record(limit, true)
		if c.err != nil {
			return fail(c.errAt, ErrMalformed, "record %d (at byte %d of the block): %v", i, start, c.err)
		}
		if fill {
			rec := &s.recs[i]
			rec.TS = r.ts
			if r.val[1] > r.val[0] {
				rec.Value = b[r.val[0]:r.val[1]:r.val[1]]
			}
			rec.Offset = packText(r.key[0], r.key[1]-r.key[0], r.ntags)
		}
		s.textBytes += r.key[1] - r.key[0] + r.tagBytes
		s.tags += r.ntags
		s.info.Ref.MinTS, s.info.Ref.MaxTS = min(s.info.Ref.MinTS, r.ts), max(s.info.Ref.MaxTS, r.ts)
	}
	if c.off != end {
		return fail(c.off, ErrMalformed, "%d bytes after the last of %d records", end-c.off, count)
	}
	return s, nil
}

func valueLimit(maxValueBytes int) uint64 {
	if maxValueBytes <= 0 || maxValueBytes > MaxBlockBytes {
		return MaxBlockBytes
	}
	return uint64(maxValueBytes)
}

// cursor walks a checksummed block body. The first problem stops it; its
// message (err, a plain description) and position (errAt) are kept so the
// caller wraps them once.
type cursor struct {
	b     []byte
	off   int
	err   error
	errAt int
}

func (c *cursor) fail(format string, args ...any) {
	if c.err == nil {
		c.err, c.errAt = fmt.Errorf(format, args...), c.off
	}
}

// uvarint reads a canonical (shortest) uvarint, so a block has one
// encoding and a decoded block re-encodes to the same bytes. The one-byte
// case, nearly every length and count, is inlined.
func (c *cursor) uvarint(what string) uint64 {
	if c.off < len(c.b) && c.b[c.off] < 0x80 && c.err == nil {
		c.off++
		return uint64(c.b[c.off-1])
	}
	return c.uvarintSlow(what, "")
}

func (c *cursor) uvarintSlow(what, suffix string) uint64 {
	if c.err != nil {
		return 0
	}
	v, n := binary.Uvarint(c.b[c.off:])
	if n <= 0 || n != uvarintLen(v) {
		c.fail("%s%s: not a canonical uvarint", what, suffix)
		return 0
	}
	c.off += n
	return v
}

// fixed returns the next n bytes, nil if they are not there.
func (c *cursor) fixed(n int) []byte {
	if n <= len(c.b)-c.off && c.err == nil {
		c.off += n
		return c.b[c.off-n : c.off]
	}
	c.fail("%d-byte field with %d bytes left", n, len(c.b)-c.off)
	return nil
}

// span reads a length-prefixed field of at most limit bytes and returns
// its [start, end) in the body; the length is checked before use.
func (c *cursor) span(what string, limit uint64) [2]int {
	var n uint64
	if c.off < len(c.b) && c.b[c.off] < 0x80 && c.err == nil {
		n = uint64(c.b[c.off])
		c.off++
	} else if n = c.uvarintSlow(what, " length"); c.err != nil {
		return [2]int{}
	}
	if n > limit || n > uint64(len(c.b)-c.off) {
		c.failSpan(what, n, limit)
		return [2]int{}
	}
	c.off += int(n)
	return [2]int{c.off - int(n), c.off}
}

func (c *cursor) failSpan(what string, n, limit uint64) {
	c.fail("%s of %d bytes (at most %d) with %d bytes left", what, n, limit, len(c.b)-c.off)
}

// recordSpans locates one record's fields in the body.
type recordSpans struct {
	ts       int64
	key      [2]int
	ntags    int
	tagsAt   int // the first tag's length prefix
	tagBytes int
	val      [2]int
}

// record walks one record in the encoding of tiers.AppendRecord with the
// offset field 0 (docs/format/record.md). With check, it also checks what
// tiers.Record.Validate would: UTF-8 key and tags, the ts range.
func (c *cursor) record(valueLimit uint64, check bool) recordSpans {
	var r recordSpans
	if off := c.uvarint("offset"); off != 0 {
		c.fail("offset field %d, a journal block writes 0", off)
	}
	if ts := c.fixed(8); ts != nil {
		r.ts = int64(binary.LittleEndian.Uint64(ts))
	}
	if check && c.err == nil && r.ts > tiers.MaxTS {
		c.fail("ts %d above the largest tierd accepts", r.ts)
	}
	r.key = c.span("key", tiers.MaxKeyBytes)
	if check && c.err == nil && !utf8.Valid(c.b[r.key[0]:r.key[1]]) {
		c.fail("key is not UTF-8")
	}
	nt := c.uvarint("tag count")
	if c.err == nil && (nt > maxTags || nt > uint64(len(c.b)-c.off)) {
		c.fail("tag count %d with %d bytes left", nt, len(c.b)-c.off)
	}
	if c.err != nil {
		return r
	}
	r.ntags, r.tagsAt = int(nt), c.off
	for t := 0; t < r.ntags && c.err == nil; t++ {
		s := c.span("tag", tiers.MaxKeyBytes)
		if check && c.err == nil && !utf8.Valid(c.b[s[0]:s[1]]) {
			c.fail("tag %d is not UTF-8", t)
		}
		r.tagBytes += s[1] - s[0]
	}
	r.val = c.span("value", valueLimit)
	return r
}

// packText keeps where a record's key starts, its length and its tag
// count in the record's Offset between DecodeBlock's walks, so the copy
// of the text needs no second parse of the record. The bounds hold for
// every block scanBlock accepts: positions below MaxBlockBytes (2^28),
// keys of at most 1024 bytes, at most 65 536 tags.
func packText(keyAt, keyLen, ntags int) uint64 {
	return uint64(keyAt)<<32 | uint64(keyLen)<<17 | uint64(ntags)
}

func unpackText(v uint64) (keyAt, keyLen, ntags int) {
	return int(v >> 32), int(v >> 17 & 0x7fff), int(v & 0x1ffff)
}

// tagSpan reads one tag at *off of a body scanBlock accepted.
func tagSpan(body []byte, off *int) (int, int) {
	v, n := binary.Uvarint(body[*off:])
	from := *off + n
	*off = from + int(v)
	return from, *off
}
