package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/tierd/tierd/tiers"
)

// The on-disk format; docs/format/wal.md is its specification.
const (
	// FormatVersion is the version written in every file header. Readers
	// accept it and version 1 (whose files hold only type-1 frames) and
	// reject others rather than guess at their frames.
	FormatVersion = 2

	headerLen      = 8 // magic (4) + version (1) + reserved zeros (3)
	frameHeaderLen = 8 // length u32 LE + crc32c u32 LE

	// MaxFrameBytes bounds a frame's type+body length. It keeps a corrupt
	// length field from asking for gigabytes and keeps one batch from
	// monopolising a group commit; callers split larger batches.
	MaxFrameBytes = 256 << 20

	typeBatch         = 1 // a batch
	typeProducerBatch = 2 // a batch of an idempotent producer
	typeSnapshot      = 3 // the producer table, at the head of a file

	// minFramedRecord is the fewest bytes one record can take inside a batch
	// (length prefix 1, offset 1, ts 8, key length 1, tag count 1, value
	// length 1); it bounds the record count a decoder believes.
	minFramedRecord = 13
)

// magic opens every WAL file so that a stray file is never replayed as one.
var magic = [4]byte{'T', 'W', 'A', 'L'}

// castagnoli is the CRC32C table; crc32 builds it once and uses the SSE4.2 /
// ARMv8 instructions where present.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors. Damage found on disk is reported as a *tiers.CorruptionError whose
// Err wraps one of ErrTruncated, ErrChecksum, ErrMalformed, ErrBadHeader or
// ErrMissingFile.
var (
	// ErrInvalidBatch rejects a batch Enqueue or AppendFrame cannot log: no
	// records, a stream name of the wrong length, or offsets that are not
	// dense and increasing.
	ErrInvalidBatch = errors.New("wal: invalid batch")
	// ErrBatchTooLarge rejects a batch whose frame would exceed MaxFrameBytes.
	// It wraps tiers.ErrBatchTooLarge, which the API answers with 413.
	ErrBatchTooLarge = fmt.Errorf("wal: batch too large: %w", tiers.ErrBatchTooLarge)
	// ErrTruncated reports a frame that runs past the end of its file.
	ErrTruncated = errors.New("wal: truncated frame")
	// ErrChecksum reports a frame whose CRC32C does not match its bytes.
	ErrChecksum = errors.New("wal: checksum mismatch")
	// ErrMalformed reports a frame that passed its checksum but does not
	// decode (an unknown type or a bad batch); a torn write cannot produce
	// one, so it is never repaired as a torn tail.
	ErrMalformed = errors.New("wal: malformed frame")
	// ErrBadHeader reports a file header with the wrong magic or version.
	ErrBadHeader = errors.New("wal: bad file header")
	// ErrMissingFile reports a gap in the file sequence: a file that should
	// hold frames between two others is gone.
	ErrMissingFile = errors.New("wal: missing file")
)

// Batch is one stream's records as one frame holds them. Offsets are dense:
// Records[i].Offset == Records[0].Offset+i. A batch of an idempotent
// producer carries its ID and the batch's sequence number (≥ 1) in that
// stream; the zero ID is no producer.
type Batch struct {
	Stream   string
	Records  []tiers.Record
	Producer tiers.ProducerID
	Seq      uint64
	// At is when a producer's batch was logged (Unix ns; Enqueue sets
	// it): the producer's entry expires by it.
	At int64
}

// appendHeader appends a file header.
func appendHeader(dst []byte) []byte {
	dst = append(dst, magic[:]...)
	return append(dst, FormatVersion, 0, 0, 0)
}

// checkHeader reports whether h (at least headerLen bytes) is a header this
// package can read.
func checkHeader(h []byte) error {
	if !bytes.Equal(h[:4], magic[:]) || h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return fmt.Errorf("%w: magic/reserved bytes % x", ErrBadHeader, h[:headerLen])
	}
	if h[4] != FormatVersion && h[4] != 1 {
		return fmt.Errorf("%w: format version %d, this build reads 1 and %d", ErrBadHeader, h[4], FormatVersion)
	}
	return nil
}

// batchBodyLen returns the length of b's frame payload (type + body) after
// checking what the decoder will check, so that nothing is logged that a
// replay would reject.
func batchBodyLen(b *Batch) (int, error) {
	if len(b.Stream) == 0 || len(b.Stream) > tiers.MaxStreamNameLen {
		return 0, fmt.Errorf("%w: stream name of %d bytes", ErrInvalidBatch, len(b.Stream))
	}
	if len(b.Records) == 0 {
		return 0, fmt.Errorf("%w: no records", ErrInvalidBatch)
	}
	first := b.Records[0].Offset
	if first+uint64(len(b.Records)-1) < first {
		return 0, fmt.Errorf("%w: offsets overflow", ErrInvalidBatch)
	}
	n := 1 + uvarintLen(uint64(len(b.Stream))) + len(b.Stream) + uvarintLen(uint64(len(b.Records)))
	if !b.Producer.IsZero() {
		if b.Seq == 0 {
			return 0, fmt.Errorf("%w: producer batch with sequence 0", ErrInvalidBatch)
		}
		n += len(b.Producer) + uvarintLen(b.Seq) + 8
	} else if b.Seq != 0 {
		return 0, fmt.Errorf("%w: sequence %d without a producer", ErrInvalidBatch, b.Seq)
	}
	for i := range b.Records {
		r := &b.Records[i]
		if r.Offset != first+uint64(i) {
			return 0, fmt.Errorf("%w: record %d has offset %d, want %d", ErrInvalidBatch, i, r.Offset, first+uint64(i))
		}
		l := tiers.EncodedLen(r)
		n += uvarintLen(uint64(l)) + l
		if n > MaxFrameBytes {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrBatchTooLarge, MaxFrameBytes)
		}
	}
	return n, nil
}

// AppendFrame appends b's frame to dst. It fails, leaving dst as it was,
// for a batch the decoder would reject.
func AppendFrame(dst []byte, b *Batch) ([]byte, error) {
	if _, err := batchBodyLen(b); err != nil {
		return dst, err
	}
	return appendFrame(dst, b), nil
}

// appendFrame appends b's frame to dst; b must have passed batchBodyLen.
// The header is filled in after the payload so that each record is encoded
// once, straight into dst.
func appendFrame(dst []byte, b *Batch) []byte {
	start := len(dst)
	if b.Producer.IsZero() {
		dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, typeBatch)
	} else {
		dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, typeProducerBatch)
		dst = append(dst, b.Producer[:]...)
		dst = binary.AppendUvarint(dst, b.Seq)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(b.At))
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.Stream)))
	dst = append(dst, b.Stream...)
	dst = binary.AppendUvarint(dst, uint64(len(b.Records)))
	for i := range b.Records {
		r := &b.Records[i]
		dst = binary.AppendUvarint(dst, uint64(tiers.EncodedLen(r)))
		dst = tiers.AppendRecord(dst, r)
	}
	payload := dst[start+frameHeaderLen:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst
}

// Frame is one decoded frame: a batch, or (Snapshot set) the producer
// table written at the head of a file.
type Frame struct {
	Batch    Batch
	Snapshot []ProducerState
	// IsSnapshot tells a snapshot frame (possibly of no producers) from a
	// batch.
	IsSnapshot bool
}

// DecodeFrame decodes the frame at the start of b and returns it and the
// frame's length. Record values alias b; keys and tags are copied.
// Errors wrap ErrTruncated (b ends inside the frame, or its length field is
// zero or above MaxFrameBytes), ErrChecksum, or ErrMalformed.
func DecodeFrame(b []byte) (Frame, int, error) {
	payload, n, err := framePayload(b)
	if err != nil {
		return Frame{}, 0, err
	}
	fr, err := decodePayload(payload)
	if err != nil {
		return Frame{}, 0, err
	}
	return fr, n, nil
}

// framePayload checks the length and CRC of the frame at the start of b and
// returns its payload (type + body) and total length.
func framePayload(b []byte) ([]byte, int, error) {
	if len(b) < frameHeaderLen {
		return nil, 0, fmt.Errorf("%w: %d bytes left, frame header needs %d", ErrTruncated, len(b), frameHeaderLen)
	}
	l := binary.LittleEndian.Uint32(b)
	if l == 0 || l > MaxFrameBytes {
		return nil, 0, fmt.Errorf("%w: length field %d", ErrTruncated, l)
	}
	if uint64(l) > uint64(len(b)-frameHeaderLen) {
		return nil, 0, fmt.Errorf("%w: length %d, %d bytes left", ErrTruncated, l, len(b)-frameHeaderLen)
	}
	n := frameHeaderLen + int(l)
	payload := b[frameHeaderLen:n:n]
	if got, want := crc32.Checksum(payload, castagnoli), binary.LittleEndian.Uint32(b[4:]); got != want {
		return nil, 0, fmt.Errorf("%w: crc32c %08x, header says %08x", ErrChecksum, got, want)
	}
	return payload, n, nil
}

// decodePayload decodes a checksummed payload. Only canonical encodings are
// accepted, so a decoded frame re-encodes to the same bytes.
func decodePayload(p []byte) (Frame, error) {
	d := walker{b: p, off: 1}
	var producer tiers.ProducerID
	var seq uint64
	var at int64
	switch p[0] {
	case typeBatch:
	case typeProducerBatch:
		copy(producer[:], d.bytes(uint64(len(producer))))
		seq = d.uvarint()
		if b := d.bytes(8); b != nil {
			at = int64(binary.LittleEndian.Uint64(b))
		}
		if d.err == nil && (seq == 0 || producer.IsZero()) {
			return Frame{}, fmt.Errorf("%w: producer batch of producer %s with sequence %d", ErrMalformed, producer, seq)
		}
	case typeSnapshot:
		snap, err := decodeSnapshot(&d)
		return Frame{Snapshot: snap, IsSnapshot: true}, err
	default:
		return Frame{}, fmt.Errorf("%w: unknown frame type %d", ErrMalformed, p[0])
	}
	batch, err := decodeBatch(&d, p)
	batch.Producer, batch.Seq, batch.At = producer, seq, at
	return Frame{Batch: batch}, err
}

// decodeBatch decodes a batch body from d.off to the end of p.
func decodeBatch(d *walker, p []byte) (Batch, error) {
	nameLen := d.uvarint()
	if d.err == nil && (nameLen == 0 || nameLen > tiers.MaxStreamNameLen) {
		return Batch{}, fmt.Errorf("%w: stream name length %d", ErrMalformed, nameLen)
	}
	name := d.bytes(nameLen)
	count := d.uvarint()
	if d.err != nil {
		return Batch{}, d.err
	}
	if count == 0 || count > uint64(len(p)-d.off)/minFramedRecord {
		return Batch{}, fmt.Errorf("%w: record count %d in %d bytes", ErrMalformed, count, len(p)-d.off)
	}
	batch := Batch{Stream: string(name), Records: make([]tiers.Record, count)}
	for i := range batch.Records {
		l := d.uvarint()
		enc := d.bytes(l)
		if d.err != nil {
			return Batch{}, fmt.Errorf("record %d: %w", i, d.err)
		}
		r, n, err := tiers.DecodeRecord(enc)
		if err != nil {
			return Batch{}, fmt.Errorf("%w: record %d: %w", ErrMalformed, i, err)
		}
		if n != len(enc) || tiers.EncodedLen(&r) != n {
			return Batch{}, fmt.Errorf("%w: record %d: length %d, encoding uses %d", ErrMalformed, i, len(enc), n)
		}
		if i > 0 && r.Offset != batch.Records[0].Offset+uint64(i) || r.Offset < batch.Records[0].Offset {
			return Batch{}, fmt.Errorf("%w: record %d has offset %d after %d: offsets not dense", ErrMalformed, i, r.Offset, batch.Records[0].Offset)
		}
		batch.Records[i] = r
	}
	if d.off != len(p) {
		return Batch{}, fmt.Errorf("%w: %d bytes after the last record", ErrMalformed, len(p)-d.off)
	}
	return batch, nil
}

// plausibleFrameAt reports whether a whole, checksummed batch frame starts at
// b[0]. Recovery uses it to tell a torn tail (nothing valid follows the
// damage) from damage in the middle (valid frames follow). It walks only the
// length prefixes before computing the CRC, so scanning garbage is cheap.
func plausibleFrameAt(b []byte) bool {
	if len(b) < frameHeaderLen+1 {
		return false
	}
	l := binary.LittleEndian.Uint32(b)
	if l < 2 || l > MaxFrameBytes || uint64(l) > uint64(len(b)-frameHeaderLen) {
		return false
	}
	p := b[frameHeaderLen : frameHeaderLen+int(l)]
	d := walker{b: p, off: 1}
	switch b[frameHeaderLen] {
	case typeBatch:
	case typeProducerBatch:
		d.bytes(uint64(len(tiers.ProducerID{})))
		d.uvarint()
		d.bytes(8)
	case typeSnapshot:
		// A snapshot opens a file and is written with its header, so it is
		// never the frame after a torn one; a CRC match is enough.
		return crc32.Checksum(p, castagnoli) == binary.LittleEndian.Uint32(b[4:])
	default:
		return false
	}
	d.bytes(d.uvarint())
	count := d.uvarint()
	for i := uint64(0); d.err == nil && i < count && d.off < len(p); i++ {
		d.bytes(d.uvarint())
	}
	if d.err != nil || d.off != len(p) {
		return false
	}
	return crc32.Checksum(p, castagnoli) == binary.LittleEndian.Uint32(b[4:])
}

// walker reads the varint-framed fields of a payload, remembering the first
// error so that callers check once.
type walker struct {
	b   []byte
	off int
	err error
}

func (d *walker) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 || n != uvarintLen(v) {
		d.err = fmt.Errorf("%w: bad uvarint at payload byte %d", ErrMalformed, d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *walker) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.err = fmt.Errorf("%w: field of %d bytes at payload byte %d, %d left", ErrMalformed, n, d.off, len(d.b)-d.off)
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
