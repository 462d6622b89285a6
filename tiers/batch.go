package tiers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"unicode/utf8"
)

// The binary batch encoding carries one append request from a client to the
// server beside NDJSON (docs/format/batch.md):
//
//	header   magic "TDB1" | version u8 = 1 | flags u8 = 0 | count u32 LE
//	records  count × ( flags u8 | [ts i64 LE] | key | ntags | tags | value )
//	         key, each tag, value: uvarint length + bytes; ntags: uvarint
//	trailer  crc32c u32 LE over every byte before it
//
// Record flag bit 0 says a ts follows; without it the server stamps the
// record with its ingest time. Offsets are not sent: the server assigns them.

// BatchMediaType is the Content-Type of an append body in the binary batch
// encoding.
const BatchMediaType = "application/vnd.tierd.batch"

// Sentinel errors of the batch decoder. Every error DecodeBatch returns is a
// *BatchError wrapping one of these or ErrKeyTooLarge, ErrRecordTooLarge or
// ErrInvalidRecord (a record that decodes but would not pass Validate).
var (
	// ErrInvalidBatch reports a body that is not a well-formed batch: bad
	// magic or version, a checksum mismatch, a length past the end, a
	// reserved flag set, or bytes left over.
	ErrInvalidBatch = errors.New("tiers: invalid batch encoding")
	// ErrBatchTooLarge reports a batch with more records than allowed.
	ErrBatchTooLarge = errors.New("tiers: too many records in one batch")
)

// BatchError locates a decoding failure: the record (0-based; -1 for the
// header or trailer) and the byte offset in the body where it was found.
type BatchError struct {
	Record int
	Offset int
	Err    error
}

// Error names the record and byte.
func (e *BatchError) Error() string {
	if e.Record < 0 {
		return fmt.Sprintf("batch byte %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("batch record %d (byte %d): %v", e.Record, e.Offset, e.Err)
}

// Unwrap returns the cause, ErrInvalidBatch or a record sentinel.
func (e *BatchError) Unwrap() error { return e.Err }

// Layout constants of the encoding.
const (
	batchMagic      = "TDB1"
	batchVersion    = 1
	batchHeaderLen  = 4 + 1 + 1 + 4
	batchTrailerLen = 4
	// BatchOverhead is the size of an empty batch: header and trailer.
	BatchOverhead = batchHeaderLen + batchTrailerLen
	// batchMinRecord is the smallest encoded record: flags, and zero
	// lengths for key, tags and value. It bounds the count a body of a
	// given size can claim.
	batchMinRecord = 4
	recordHasTS    = 1 << 0
)

// batchCRC is built once; crc32.MakeTable would allocate per call.
var batchCRC = crc32.MakeTable(crc32.Castagnoli)

// BatchEncoder builds one batch body record by record. The zero value is
// ready to use; Reset starts a new batch reusing the buffer, so a long-lived
// encoder does not allocate in the steady state.
type BatchEncoder struct {
	buf   []byte
	count int
}

// Reset discards the batch under construction, keeping the buffer.
func (e *BatchEncoder) Reset() {
	e.buf = append(e.buf[:0], batchMagic...)
	e.buf = append(e.buf, batchVersion, 0, 0, 0, 0, 0)
	e.count = 0
}

// Add appends r. Its Offset is not encoded; its TS only when hasTS is set,
// since 0 is a legal ts and the server must know when to use ingest time.
func (e *BatchEncoder) Add(r *Record, hasTS bool) {
	if len(e.buf) == 0 {
		e.Reset()
	}
	if hasTS {
		e.buf = append(e.buf, recordHasTS)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(r.TS))
	} else {
		e.buf = append(e.buf, 0)
	}
	e.buf = appendBytes(e.buf, r.Key)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(r.Tags)))
	for _, t := range r.Tags {
		e.buf = appendBytes(e.buf, t)
	}
	e.buf = appendBytes(e.buf, r.Value)
	e.count++
}

func appendBytes[T string | []byte](dst []byte, b T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// Count is the number of records added since the last Reset.
func (e *BatchEncoder) Count() int { return e.count }

// Len is the size the finished body will have.
func (e *BatchEncoder) Len() int { return max(len(e.buf), batchHeaderLen) + batchTrailerLen }

// Finish returns the complete body: the count filled in and the checksum
// appended. The slice is valid until the next Add or Reset. Adding after
// Finish without a Reset is not supported.
func (e *BatchEncoder) Finish() []byte {
	if len(e.buf) == 0 {
		e.Reset()
	}
	binary.LittleEndian.PutUint32(e.buf[6:], uint32(e.count))
	return binary.LittleEndian.AppendUint32(e.buf, crc32.Checksum(e.buf, batchCRC))
}

// AppendBatch appends to dst the batch encoding of recs, each with its TS.
func AppendBatch(dst []byte, recs []Record) []byte {
	var e BatchEncoder
	for i := range recs {
		e.Add(&recs[i], true)
	}
	return append(dst, e.Finish()...)
}

// BatchOptions bounds what DecodeBatch accepts.
type BatchOptions struct {
	// MaxRecords caps the records of one batch; 0 means no cap beyond
	// what the body's size can hold.
	MaxRecords int
	// MaxValueBytes caps a record's value; 0 means DefaultMaxRecordBytes.
	MaxValueBytes int
	// IngestTS is the ts given to records sent without one.
	IngestTS int64
}

// DecodeBatch decodes a whole batch body. It checks the header and the
// checksum before it looks at any record, bounds every length by the bytes
// that remain, and validates each record as Record.Validate does, so a nil
// error means every record is fit to append. Values alias b (the caller
// must not reuse b while the records live); keys and tags are copied. A
// batch of zero records decodes to an empty slice. Errors are *BatchError.
func DecodeBatch(b []byte, opts BatchOptions) ([]Record, error) {
	if opts.MaxValueBytes <= 0 {
		opts.MaxValueBytes = DefaultMaxRecordBytes
	}
	fail := func(rec, off int, format string, args ...any) error {
		return &BatchError{Record: rec, Offset: off, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidBatch}, args...)...)}
	}
	if len(b) < BatchOverhead {
		return nil, fail(-1, 0, "%d bytes is shorter than the %d of an empty batch", len(b), BatchOverhead)
	}
	if string(b[:4]) != batchMagic {
		return nil, fail(-1, 0, "magic %q, want %q", b[:4], batchMagic)
	}
	if b[4] != batchVersion {
		return nil, fail(-1, 4, "version %d, this server reads %d", b[4], batchVersion)
	}
	if b[5] != 0 {
		return nil, fail(-1, 5, "header flags %#x, none are defined", b[5])
	}
	end := len(b) - batchTrailerLen
	if got, want := crc32.Checksum(b[:end], batchCRC), binary.LittleEndian.Uint32(b[end:]); got != want {
		return nil, fail(-1, end, "checksum mismatch: body has crc32c %08x, trailer says %08x", got, want)
	}
	count := uint64(binary.LittleEndian.Uint32(b[6:]))
	if opts.MaxRecords > 0 && count > uint64(opts.MaxRecords) {
		return nil, &BatchError{Record: -1, Offset: 6, Err: fmt.Errorf("%w: %d records, at most %d", ErrBatchTooLarge, count, opts.MaxRecords)}
	}
	body := b[:end]
	if room := uint64(end-batchHeaderLen) / batchMinRecord; count > room {
		return nil, fail(-1, 6, "count %d cannot fit in %d bytes of records", count, end-batchHeaderLen)
	}
	recs := make([]Record, count)
	d := batchDecoder{b: body, off: batchHeaderLen}
	for i := range recs {
		start := d.off
		if err := d.record(&recs[i], &opts); err != nil {
			return nil, &BatchError{Record: i, Offset: start, Err: err}
		}
	}
	if d.off != end {
		return nil, fail(-1, d.off, "%d bytes after the last of %d records", end-d.off, count)
	}
	return recs, nil
}

// batchDecoder reads one record at a time; every length is checked against
// what remains before anything is sliced or allocated.
type batchDecoder struct {
	b   []byte
	off int
}

func (d *batchDecoder) record(r *Record, opts *BatchOptions) error {
	if d.off >= len(d.b) {
		return fmt.Errorf("%w: the body ends before this record", ErrInvalidBatch)
	}
	flags := d.b[d.off]
	d.off++
	if flags&^recordHasTS != 0 {
		return fmt.Errorf("%w: record flags %#x, only bit 0 (ts) is defined", ErrInvalidBatch, flags)
	}
	r.TS = opts.IngestTS
	if flags&recordHasTS != 0 {
		if len(d.b)-d.off < 8 {
			return fmt.Errorf("%w: ts runs past the end", ErrInvalidBatch)
		}
		r.TS = int64(binary.LittleEndian.Uint64(d.b[d.off:]))
		d.off += 8
	}
	key, err := d.bytes("key", MaxKeyBytes, ErrKeyTooLarge)
	if err != nil {
		return err
	}
	if !utf8.Valid(key) {
		return fmt.Errorf("%w: key is not valid UTF-8", ErrInvalidRecord)
	}
	r.Key = string(key)
	nt, err := d.uvarint("tag count")
	if err != nil {
		return err
	}
	if nt > 0 {
		// Each tag takes at least its length byte, so the count is
		// bounded by what remains before the slice is made.
		if nt > maxTags || nt > uint64(len(d.b)-d.off) {
			return fmt.Errorf("%w: tag count %d with %d bytes left", ErrInvalidBatch, nt, len(d.b)-d.off)
		}
		r.Tags = make([]string, nt)
		for i := range r.Tags {
			t, err := d.bytes("tag", MaxKeyBytes, ErrInvalidRecord)
			if err != nil {
				return fmt.Errorf("tag %d: %w", i, err)
			}
			if !utf8.Valid(t) {
				return fmt.Errorf("%w: tag %d is not valid UTF-8", ErrInvalidRecord, i)
			}
			r.Tags[i] = string(t)
		}
	}
	v, err := d.bytes("value", opts.MaxValueBytes, ErrRecordTooLarge)
	if err != nil {
		return err
	}
	r.Value = v
	return nil
}

func (d *batchDecoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		return 0, fmt.Errorf("%w: %s runs past the end", ErrInvalidBatch, what)
	case n < 0:
		return 0, fmt.Errorf("%w: %s is a varint longer than 10 bytes", ErrInvalidBatch, what)
	}
	d.off += n
	return v, nil
}

// bytes reads a length-prefixed field of at most limit bytes; a longer one
// is reported with tooLarge, the sentinel the NDJSON path uses for it. The
// result aliases the body; nil when empty.
func (d *batchDecoder) bytes(what string, limit int, tooLarge error) ([]byte, error) {
	n, err := d.uvarint(what + " length")
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) || n > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %s is %d bytes, max %d", tooLarge, what, n, limit)
	}
	if n > uint64(len(d.b)-d.off) {
		return nil, fmt.Errorf("%w: %s of %d bytes runs past the end (%d left)", ErrInvalidBatch, what, n, len(d.b)-d.off)
	}
	if n == 0 {
		return nil, nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v, nil
}
