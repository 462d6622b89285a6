package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/tierd/tierd/tiers"
)

// The catalog's bbolt layout and every value encoding, with their versions,
// are documented in docs/format/catalog.md; keep the two in step. In short
// (schema version 3):
//
//	meta/schema                  uvarint schema version, crc
//	streams/<name>               stream value (version 2)
//	segments/<name>/<base:8 BE>  segment value (version 3)
//	intents/<name>/<base:8 BE>   move intent value (version 2)
//	errors/<name>/<base:8 BE>    last failure value (version 2)
//
// Segment keys are the base offset as 8 big-endian bytes, so bbolt's byte
// order is offset order and Locate can Seek. Every value starts with its own
// encoding version byte and, from schema 3 on, ends in a CRC32C over the
// value and the key it is stored under (see valueCRC), so that a value that
// rots, or that a damaged page puts under another key, is detected. Trailing
// bytes after the last field are an error in every version.
//
// Segment value, version 3 (the stream and base are in the bucket and key):
//
//	version    1 byte (3)
//	last       uvarint
//	count      uvarint (must equal last-base+1: offsets are dense)
//	bytes      varint (>= 0)
//	min_ts     varint
//	max_ts     varint (>= min_ts)
//	sealed_at  varint Unix seconds, uvarint nanoseconds (< 1e9); not zero
//	digest     32 bytes
//	placements 1 byte, the tiers.Placements bits; only warm and cold
//	cold_bytes varint: > 0 with a cold placement (-1: size unknown, a
//	           segment catalogued before sizes were), 0 without
//	tombstoned varint Unix seconds, uvarint nanoseconds (zero time: live;
//	           else not before sealed_at)
//	crc        4 bytes, CRC32C (valueCRC)
//
// Versions 1 and 2 (no crc; version 1 also without cold_bytes and
// tombstoned) are read only while a schema 1 or 2 catalog is upgraded.

const (
	// schemaVersion 3 added the checksums (segment value 3, stream value 2
	// with the retention watermark, intent and failure values 2); a schema 1
	// or 2 file is upgraded on open by rewriting every value. Schema 2 added
	// the intents and errors buckets and segment value 2.
	schemaVersion       = 3
	oldestSchemaVersion = 1
	segmentValueV1      = 1
	segmentValueV2      = 2
	segmentValueVersion = 3
	streamValueV1       = 1
	streamValueVersion  = 2
	// maxSegmentValueBytes bounds a version-3 segment value.
	maxSegmentValueBytes = 1 + 10*binary.MaxVarintLen64 + len(tiers.Digest{}) + 1 + crcLen

	// crcLen is the size of the checksum that ends every current value.
	crcLen = 4

	// durable is the set of placements the catalog stores; hot residency
	// is volatile and belongs to the engine.
	durable = tiers.Placements(1<<tiers.Warm | 1<<tiers.Cold)

	// zeroUnix is time.Time{}.Unix(): decoding it yields the zero time
	// again, so IsZero survives a round trip.
	zeroUnix = -62135596800

	// unknownColdBytes is the stored cold_bytes of a cold segment whose
	// object size was never recorded (catalogued by schema 1).
	unknownColdBytes = -1
)

// Kinds of value, mixed into each value's checksum so that a value of one
// kind cannot pass for another.
const (
	kindSegment = 's'
	kindStream  = 'S'
	kindIntent  = 'i'
	kindFailure = 'f'
	kindSchema  = 'm'
)

// castagnoli is the CRC32C table, built once.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// valueCRC is the checksum a current value ends in: CRC32C over the kind
// byte, the stream name (uvarint length and bytes), the base offset as 8
// big-endian bytes (streams have none: 0), and the value's bytes before the
// checksum.
func valueCRC(kind byte, stream string, base uint64, body []byte) uint32 {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := 1 + binary.PutUvarint(hdr[1:], uint64(len(stream)))
	h := crc32.Update(0, castagnoli, hdr[:n])
	h = crc32.Update(h, castagnoli, []byte(stream))
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], base)
	h = crc32.Update(h, castagnoli, key[:])
	return crc32.Update(h, castagnoli, body)
}

// appendCRC ends the value b, whole from its version byte, with its checksum.
func appendCRC(b []byte, kind byte, stream string, base uint64) []byte {
	return binary.LittleEndian.AppendUint32(b, valueCRC(kind, stream, base, b))
}

// checkCRC verifies a current value's checksum and returns the value without it.
func checkCRC(b []byte, kind byte, stream string, base uint64) ([]byte, error) {
	if len(b) < 1+crcLen {
		return nil, errTruncated
	}
	body := b[:len(b)-crcLen]
	if got, want := valueCRC(kind, stream, base, body), binary.LittleEndian.Uint32(b[len(body):]); got != want {
		return nil, fmt.Errorf("%w: stored %08x, computed %08x", errChecksum, want, got)
	}
	return body, nil
}

// errTruncated and friends describe why a stored value failed to decode.
var (
	errTruncated = errors.New("value truncated")
	errTrailing  = errors.New("trailing bytes after value")
	// errChecksum: a value's CRC32C does not match its bytes and key.
	errChecksum = errors.New("value checksum mismatch")
	// errVersion: a value of a version this catalog's schema does not hold.
	errVersion = errors.New("unsupported value version")
	// errImplausible: a value whose fields contradict each other.
	errImplausible = errors.New("implausible value")
)

// segmentKey returns the bbolt key of base.
func segmentKey(base uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), base)
}

// keyBase is the inverse of segmentKey.
func keyBase(k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("segment key is %d bytes, want 8", len(k))
	}
	return binary.BigEndian.Uint64(k), nil
}

// Plausible times: a stored time must be zero (where zero means "none") or
// within what Unix nanoseconds can hold, so that ages and orders computed
// from it cannot overflow.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64)
)

// plausibleTime reports whether t is a time tierd could have stamped.
func plausibleTime(t time.Time) bool {
	return !t.Before(minTime) && !t.After(maxTime)
}

// checkSegment enforces the invariants every stored segment satisfies, so that
// PutSegment refuses what decodeSegment would later call corrupt.
func checkSegment(m *tiers.SegmentMeta) error {
	switch {
	case m.Last < m.Base:
		return fmt.Errorf("last %d < base %d", m.Last, m.Base)
	case m.Last == math.MaxUint64:
		return fmt.Errorf("last offset %d leaves no next offset", m.Last)
	case m.Count != m.Last-m.Base+1:
		return fmt.Errorf("count %d for offsets [%d, %d]: offsets are dense, want %d", m.Count, m.Base, m.Last, m.Last-m.Base+1)
	case m.Bytes < 0:
		return fmt.Errorf("negative bytes %d", m.Bytes)
	case m.MinTS > m.MaxTS:
		return fmt.Errorf("min ts %d > max ts %d", m.MinTS, m.MaxTS)
	case m.Placements&^durable != 0:
		return fmt.Errorf("placements %08b hold more than warm and cold", uint8(m.Placements))
	case m.Placements == 0:
		return errors.New("no durable placement (warm or cold)")
	case m.ColdBytes < 0:
		return fmt.Errorf("negative cold bytes %d", m.ColdBytes)
	case m.ColdBytes > 0 && !m.Placements.Has(tiers.Cold):
		return fmt.Errorf("cold bytes %d without a cold placement", m.ColdBytes)
	}
	return checkTimes(m)
}

// checkTimes checks a segment's seal and tombstone: sealed (a segment's age
// counts from it), both plausible, and the tombstone not before the seal,
// since retention only deletes what is old.
func checkTimes(m *tiers.SegmentMeta) error {
	switch {
	case m.SealedAt.IsZero():
		return errors.New("no sealed_at")
	case !plausibleTime(m.SealedAt):
		return fmt.Errorf("sealed_at %v is out of range", m.SealedAt)
	case m.Tombstoned.IsZero():
		return nil
	case !plausibleTime(m.Tombstoned):
		return fmt.Errorf("tombstoned %v is out of range", m.Tombstoned)
	case m.Tombstoned.Before(m.SealedAt):
		return fmt.Errorf("tombstoned %v before its seal %v", m.Tombstoned, m.SealedAt)
	}
	return nil
}

// encodeSegment returns the version 3 value of m, stored under (m.Stream,
// m.Base). m must pass checkSegment.
func encodeSegment(m *tiers.SegmentMeta) []byte {
	b := make([]byte, 0, maxSegmentValueBytes)
	b = append(b, segmentValueVersion)
	b = binary.AppendUvarint(b, m.Last)
	b = binary.AppendUvarint(b, m.Count)
	b = binary.AppendVarint(b, m.Bytes)
	b = binary.AppendVarint(b, m.MinTS)
	b = binary.AppendVarint(b, m.MaxTS)
	b = appendTime(b, m.SealedAt)
	b = append(b, m.Digest[:]...)
	b = append(b, byte(m.Placements))
	cold := m.ColdBytes
	if cold == 0 && m.Placements.Has(tiers.Cold) {
		cold = unknownColdBytes
	}
	b = binary.AppendVarint(b, cold)
	b = appendTime(b, m.Tombstoned)
	return appendCRC(b, kindSegment, m.Stream, m.Base)
}

// decodeSegment decodes a segment value stored under (stream, base). It
// accepts only the current version unless legacy (a catalog being
// upgraded), and returns an error, never panics, on any bytes that
// encodeSegment could not have produced: a checksum that does not match
// the value and its key, or fields that contradict each other.
func decodeSegment(stream string, base uint64, b []byte, legacy bool) (tiers.SegmentMeta, error) {
	if len(b) == 0 {
		return tiers.SegmentMeta{}, errTruncated
	}
	ver := b[0]
	switch {
	case ver == segmentValueVersion:
		var err error
		if b, err = checkCRC(b, kindSegment, stream, base); err != nil {
			return tiers.SegmentMeta{}, err
		}
	case legacy && (ver == segmentValueV1 || ver == segmentValueV2):
	default:
		return tiers.SegmentMeta{}, fmt.Errorf("%w: segment value version %d", errVersion, ver)
	}
	d := reader{b: b, off: 1}
	m := tiers.SegmentMeta{Stream: stream, Base: base}
	m.Last = d.uvarint()
	m.Count = d.uvarint()
	m.Bytes = d.varint()
	m.MinTS = d.varint()
	m.MaxTS = d.varint()
	m.SealedAt = d.time()
	copy(m.Digest[:], d.take(len(m.Digest)))
	m.Placements = tiers.Placements(d.byte())
	if ver >= segmentValueV2 {
		m.ColdBytes = d.varint()
		m.Tombstoned = d.time()
	}
	if err := d.finish(); err != nil {
		return tiers.SegmentMeta{}, err
	}
	if ver == segmentValueVersion {
		switch cold := m.Placements.Has(tiers.Cold); {
		case cold && m.ColdBytes == 0:
			return tiers.SegmentMeta{}, fmt.Errorf("%w: a cold placement with cold_bytes 0", errImplausible)
		case cold && m.ColdBytes == unknownColdBytes:
			m.ColdBytes = 0
		case !cold && m.ColdBytes != 0:
			return tiers.SegmentMeta{}, fmt.Errorf("%w: cold_bytes %d without a cold placement", errImplausible, m.ColdBytes)
		}
	} else if m.SealedAt.IsZero() {
		// Builds before schema 3 stored segments without a seal time; the
		// upgrade stamps them with its own time (ages restart: retention
		// comes late, never early).
		probe := m
		probe.SealedAt = minTime
		if err := checkSegment(&probe); err != nil {
			return tiers.SegmentMeta{}, fmt.Errorf("%w: %v", errImplausible, err)
		}
		return m, nil
	}
	if err := checkSegment(&m); err != nil {
		return tiers.SegmentMeta{}, fmt.Errorf("%w: %v", errImplausible, err)
	}
	return m, nil
}

// streamValue is what the catalog keeps per stream. The counters are kept up
// to date by every segment write so that Streams costs one value per stream,
// not a scan of every segment.
type streamValue struct {
	CreatedAt  time.Time
	Segments   uint64
	Records    uint64
	Bytes      uint64
	NextOffset uint64
	// RetainedFrom is the retention watermark: offsets below it were
	// deleted (or tombstoned) by retention, and every offset from it up to
	// NextOffset is held by a catalogued segment. It never decreases.
	RetainedFrom uint64
}

// Stream value, version 2 (the stream name is the key):
//
//	version       1 byte (2)
//	created_at    varint Unix seconds, uvarint nanoseconds; not zero
//	segments      uvarint
//	records       uvarint
//	bytes         uvarint (<= MaxInt64)
//	next_offset   uvarint
//	retained_from uvarint (<= next_offset)
//	crc           4 bytes, CRC32C (valueCRC, base 0)
//
// Version 1 has no retained_from and no crc.

// encodeStream returns the version 2 value of stream name.
func encodeStream(name string, s *streamValue) []byte {
	b := make([]byte, 0, 1+7*binary.MaxVarintLen64+crcLen)
	b = append(b, streamValueVersion)
	b = appendTime(b, s.CreatedAt)
	b = binary.AppendUvarint(b, s.Segments)
	b = binary.AppendUvarint(b, s.Records)
	b = binary.AppendUvarint(b, s.Bytes)
	b = binary.AppendUvarint(b, s.NextOffset)
	b = binary.AppendUvarint(b, s.RetainedFrom)
	return appendCRC(b, kindStream, name, 0)
}

// decodeStream is the inverse of encodeStream; errors, never panics, on
// garbage. legacy accepts version 1 (RetainedFrom 0: the upgrade sets it).
func decodeStream(name string, b []byte, legacy bool) (streamValue, error) {
	if len(b) == 0 {
		return streamValue{}, errTruncated
	}
	ver := b[0]
	switch {
	case ver == streamValueVersion:
		var err error
		if b, err = checkCRC(b, kindStream, name, 0); err != nil {
			return streamValue{}, err
		}
	case legacy && ver == streamValueV1:
	default:
		return streamValue{}, fmt.Errorf("%w: stream value version %d", errVersion, ver)
	}
	d := reader{b: b, off: 1}
	var s streamValue
	s.CreatedAt = d.time()
	s.Segments = d.uvarint()
	s.Records = d.uvarint()
	s.Bytes = d.uvarint()
	s.NextOffset = d.uvarint()
	if ver == streamValueVersion {
		s.RetainedFrom = d.uvarint()
	}
	if err := d.finish(); err != nil {
		return streamValue{}, err
	}
	switch {
	case s.Bytes > math.MaxInt64:
		return streamValue{}, fmt.Errorf("%w: byte total %d overflows int64", errImplausible, s.Bytes)
	case s.RetainedFrom > s.NextOffset:
		return streamValue{}, fmt.Errorf("%w: retained from %d, past the next offset %d", errImplausible, s.RetainedFrom, s.NextOffset)
	case ver == streamValueVersion && (s.CreatedAt.IsZero() || !plausibleTime(s.CreatedAt)):
		return streamValue{}, fmt.Errorf("%w: created_at %v", errImplausible, s.CreatedAt)
	case s.Segments > s.Records:
		return streamValue{}, fmt.Errorf("%w: %d segments hold %d records", errImplausible, s.Segments, s.Records)
	}
	return s, nil
}

// Intent value, version 2 (the stream and base are in the bucket and key):
//
//	version    1 byte (2)
//	kind       uvarint length (1..64) + bytes
//	key        uvarint length (<= 4096) + bytes
//	started    varint Unix seconds, uvarint nanoseconds (< 1e9); not zero
//	attempts   uvarint (<= MaxInt32)
//	last_error uvarint length (<= 4096) + bytes
//	crc        4 bytes, CRC32C (valueCRC)
//
// Failure value, version 2:
//
//	version    1 byte (2)
//	at         varint Unix seconds, uvarint nanoseconds (< 1e9); not zero
//	kind       uvarint length (<= 64) + bytes, empty without an intent
//	attempts   uvarint (1..MaxInt32)
//	error      uvarint length (<= 4096) + bytes
//	flags      1 byte: bit 0 set when a destructive step was refused
//	crc        4 bytes, CRC32C (valueCRC)
//
// Version 1 of each is version 2 without flags and crc.
const (
	intentValueV1       = 1
	intentValueVersion  = 2
	failureValueV1      = 1
	failureValueVersion = 2

	// failureRefused marks a failure that is a refused destructive step.
	failureRefused = 1 << 0
)

// encodeIntent returns the version 2 value of in. in must pass checkIntent.
func encodeIntent(in *Intent) []byte {
	b := make([]byte, 0, 1+5*binary.MaxVarintLen64+len(in.Kind)+len(in.Key)+len(in.LastError)+crcLen)
	b = append(b, intentValueVersion)
	b = appendString(b, in.Kind)
	b = appendString(b, in.Key)
	b = appendTime(b, in.Started)
	b = binary.AppendUvarint(b, uint64(in.Attempts))
	b = appendString(b, in.LastError)
	return appendCRC(b, kindIntent, in.Stream, in.Base)
}

// decodeIntent decodes an intent value stored under (stream, base); errors,
// never panics, on garbage. legacy accepts version 1.
func decodeIntent(stream string, base uint64, b []byte, legacy bool) (Intent, error) {
	if len(b) == 0 {
		return Intent{}, errTruncated
	}
	ver := b[0]
	switch {
	case ver == intentValueVersion:
		var err error
		if b, err = checkCRC(b, kindIntent, stream, base); err != nil {
			return Intent{}, err
		}
	case legacy && ver == intentValueV1:
	default:
		return Intent{}, fmt.Errorf("%w: intent value version %d", errVersion, ver)
	}
	d := reader{b: b, off: 1}
	in := Intent{Stream: stream, Base: base}
	in.Kind = d.string(maxKindBytes)
	in.Key = d.string(maxKeyBytes)
	in.Started = d.time()
	attempts := d.uvarint()
	in.LastError = d.string(maxErrorBytes)
	if err := d.finish(); err != nil {
		return Intent{}, err
	}
	if attempts > math.MaxInt32 {
		return Intent{}, fmt.Errorf("%w: attempts %d out of range", errImplausible, attempts)
	}
	in.Attempts = int(attempts)
	if err := checkIntent(&in); err != nil {
		return Intent{}, fmt.Errorf("%w: %v", errImplausible, err)
	}
	if ver == intentValueVersion && (in.Started.IsZero() || !plausibleTime(in.Started)) {
		return Intent{}, fmt.Errorf("%w: started %v", errImplausible, in.Started)
	}
	return in, nil
}

// encodeFailure returns the version 2 value of f.
func encodeFailure(f *Failure) []byte {
	b := make([]byte, 0, 1+4*binary.MaxVarintLen64+len(f.Kind)+len(f.Err)+1+crcLen)
	b = append(b, failureValueVersion)
	b = appendTime(b, f.At)
	b = appendString(b, f.Kind)
	b = binary.AppendUvarint(b, uint64(f.Attempts))
	b = appendString(b, f.Err)
	var flags byte
	if f.Refused {
		flags |= failureRefused
	}
	b = append(b, flags)
	return appendCRC(b, kindFailure, f.Stream, f.Base)
}

// decodeFailure decodes a failure value stored under (stream, base); errors,
// never panics, on garbage. legacy accepts version 1.
func decodeFailure(stream string, base uint64, b []byte, legacy bool) (Failure, error) {
	if len(b) == 0 {
		return Failure{}, errTruncated
	}
	ver := b[0]
	switch {
	case ver == failureValueVersion:
		var err error
		if b, err = checkCRC(b, kindFailure, stream, base); err != nil {
			return Failure{}, err
		}
	case legacy && ver == failureValueV1:
	default:
		return Failure{}, fmt.Errorf("%w: failure value version %d", errVersion, ver)
	}
	d := reader{b: b, off: 1}
	f := Failure{Stream: stream, Base: base}
	f.At = d.time()
	f.Kind = d.string(maxKindBytes)
	attempts := d.uvarint()
	f.Err = d.string(maxErrorBytes)
	var flags byte
	if ver == failureValueVersion {
		flags = d.byte()
	}
	if err := d.finish(); err != nil {
		return Failure{}, err
	}
	switch {
	case attempts == 0 || attempts > math.MaxInt32:
		return Failure{}, fmt.Errorf("%w: attempts %d out of range", errImplausible, attempts)
	case flags&^failureRefused != 0:
		return Failure{}, fmt.Errorf("%w: failure flags %#x", errImplausible, flags)
	case ver == failureValueVersion && (f.At.IsZero() || !plausibleTime(f.At)):
		return Failure{}, fmt.Errorf("%w: failure time %v", errImplausible, f.At)
	}
	f.Attempts = int(attempts)
	f.Refused = flags&failureRefused != 0
	return f, nil
}

// appendString stores s as its length and bytes.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime stores t to the nanosecond as Unix seconds and nanoseconds,
// which, unlike UnixNano, also covers the zero time.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// reader decodes the fields of a value, remembering the first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte() byte {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.fail(errTruncated)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.fail(errTruncated)
		} else {
			r.fail(fmt.Errorf("varint overflow at byte %d", r.off))
		}
		return 0
	}
	r.off += n
	return v
}

// string reads a length-prefixed string of at most max bytes.
func (r *reader) string(limit int) string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(limit) {
		r.fail(fmt.Errorf("string of %d bytes, max %d", n, limit))
		return ""
	}
	return string(r.take(int(n)))
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.fail(errTruncated)
		} else {
			r.fail(fmt.Errorf("varint overflow at byte %d", r.off))
		}
		return 0
	}
	r.off += n
	return v
}

func (r *reader) time() time.Time {
	sec := r.varint()
	nsec := r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		r.fail(fmt.Errorf("nanoseconds %d out of range", nsec))
		return time.Time{}
	}
	if sec == zeroUnix && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// finish reports the first error, or trailing bytes.
func (r *reader) finish() error {
	if r.err == nil && r.off != len(r.b) {
		r.err = fmt.Errorf("%w: %d of %d bytes used", errTrailing, r.off, len(r.b))
	}
	return r.err
}
