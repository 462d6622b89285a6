package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tierd/tierd/tiers"
)

// The catalog's bbolt layout and every value encoding, with their versions,
// are documented in docs/format/catalog.md; keep the two in step. In short
// (schema version 2):
//
//	meta/schema                  uvarint schema version
//	streams/<name>               stream value (version 1)
//	segments/<name>/<base:8 BE>  segment value (version 2; version 1 still read)
//	intents/<name>/<base:8 BE>   move intent value (version 1)
//	errors/<name>/<base:8 BE>    last failure value (version 1)
//
// Segment keys are the base offset as 8 big-endian bytes, so bbolt's byte
// order is offset order and Locate can Seek. Every value starts with its own
// encoding version byte, so a later version can change one value kind without
// a schema migration of the others. Trailing bytes after the last field are an
// error in every version.
//
// Segment value, version 2 (the stream and base are in the bucket and key):
//
//	version    1 byte (2)
//	last       uvarint
//	count      uvarint (must equal last-base+1: offsets are dense)
//	bytes      varint (>= 0)
//	min_ts     varint
//	max_ts     varint (>= min_ts)
//	sealed_at  varint Unix seconds, uvarint nanoseconds (< 1e9)
//	digest     32 bytes
//	placements 1 byte, the tiers.Placements bits; only warm and cold
//	cold_bytes varint (>= 0)
//	tombstoned varint Unix seconds, uvarint nanoseconds (zero time: live)
//
// Version 1 is version 2 without the last two fields; it reads as cold_bytes
// 0 and not tombstoned.

const (
	// schemaVersion 2 added the intents and errors buckets and segment
	// value version 2; a version-1 file is upgraded in place on open (no
	// value changes), and builds that know only version 1 refuse version 2
	// instead of failing on the first version-2 value.
	schemaVersion       = 2
	oldestSchemaVersion = 1
	segmentValueV1      = 1
	segmentValueVersion = 2
	streamValueVersion  = 1
	// maxSegmentValueBytes bounds a version-2 segment value.
	maxSegmentValueBytes = 1 + 10*binary.MaxVarintLen64 + len(tiers.Digest{}) + 1

	// durable is the set of placements the catalog stores; hot residency
	// is volatile and belongs to the engine.
	durable = tiers.Placements(1<<tiers.Warm | 1<<tiers.Cold)

	// zeroUnix is time.Time{}.Unix(): decoding it yields the zero time
	// again, so IsZero survives a round trip.
	zeroUnix = -62135596800
)

// errTruncated and friends describe why a stored value failed to decode.
var (
	errTruncated = errors.New("value truncated")
	errTrailing  = errors.New("trailing bytes after value")
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
	}
	return nil
}

// encodeSegment returns the version 2 value of m. m must pass checkSegment.
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
	b = binary.AppendVarint(b, m.ColdBytes)
	return appendTime(b, m.Tombstoned)
}

// decodeSegment decodes a segment value stored under (stream, base). It
// returns an error, never panics, on any bytes that encodeSegment could not
// have produced.
func decodeSegment(stream string, base uint64, b []byte) (tiers.SegmentMeta, error) {
	d := reader{b: b}
	ver := d.byte()
	if d.err == nil && ver != segmentValueV1 && ver != segmentValueVersion {
		return tiers.SegmentMeta{}, fmt.Errorf("unsupported segment value version %d", ver)
	}
	m := tiers.SegmentMeta{Stream: stream, Base: base}
	m.Last = d.uvarint()
	m.Count = d.uvarint()
	m.Bytes = d.varint()
	m.MinTS = d.varint()
	m.MaxTS = d.varint()
	m.SealedAt = d.time()
	copy(m.Digest[:], d.take(len(m.Digest)))
	m.Placements = tiers.Placements(d.byte())
	if ver >= 2 {
		m.ColdBytes = d.varint()
		m.Tombstoned = d.time()
	}
	if err := d.finish(); err != nil {
		return tiers.SegmentMeta{}, err
	}
	if err := checkSegment(&m); err != nil {
		return tiers.SegmentMeta{}, err
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
}

// encodeStream returns the version 1 value of s.
func encodeStream(s *streamValue) []byte {
	b := make([]byte, 0, 1+6*binary.MaxVarintLen64)
	b = append(b, streamValueVersion)
	b = appendTime(b, s.CreatedAt)
	b = binary.AppendUvarint(b, s.Segments)
	b = binary.AppendUvarint(b, s.Records)
	b = binary.AppendUvarint(b, s.Bytes)
	return binary.AppendUvarint(b, s.NextOffset)
}

// decodeStream is the inverse of encodeStream; errors, never panics, on
// garbage.
func decodeStream(b []byte) (streamValue, error) {
	d := reader{b: b}
	if v := d.byte(); d.err == nil && v != streamValueVersion {
		return streamValue{}, fmt.Errorf("unsupported stream value version %d", v)
	}
	var s streamValue
	s.CreatedAt = d.time()
	s.Segments = d.uvarint()
	s.Records = d.uvarint()
	s.Bytes = d.uvarint()
	s.NextOffset = d.uvarint()
	if err := d.finish(); err != nil {
		return streamValue{}, err
	}
	if s.Bytes > math.MaxInt64 {
		return streamValue{}, fmt.Errorf("byte total %d overflows int64", s.Bytes)
	}
	return s, nil
}

// Intent value, version 1 (the stream and base are in the bucket and key):
//
//	version    1 byte (1)
//	kind       uvarint length (1..64) + bytes
//	key        uvarint length (<= 4096) + bytes
//	started    varint Unix seconds, uvarint nanoseconds (< 1e9)
//	attempts   uvarint (<= MaxInt32)
//	last_error uvarint length (<= 4096) + bytes
//
// Failure value, version 1:
//
//	version    1 byte (1)
//	at         varint Unix seconds, uvarint nanoseconds (< 1e9)
//	kind       uvarint length (<= 64) + bytes, empty without an intent
//	attempts   uvarint (1..MaxInt32)
//	error      uvarint length (<= 4096) + bytes
const (
	intentValueVersion  = 1
	failureValueVersion = 1
)

// encodeIntent returns the version 1 value of in. in must pass checkIntent.
func encodeIntent(in *Intent) []byte {
	b := make([]byte, 0, 1+5*binary.MaxVarintLen64+len(in.Kind)+len(in.Key)+len(in.LastError))
	b = append(b, intentValueVersion)
	b = appendString(b, in.Kind)
	b = appendString(b, in.Key)
	b = appendTime(b, in.Started)
	b = binary.AppendUvarint(b, uint64(in.Attempts))
	return appendString(b, in.LastError)
}

// decodeIntent decodes an intent value stored under (stream, base); errors,
// never panics, on garbage.
func decodeIntent(stream string, base uint64, b []byte) (Intent, error) {
	d := reader{b: b}
	if v := d.byte(); d.err == nil && v != intentValueVersion {
		return Intent{}, fmt.Errorf("unsupported intent value version %d", v)
	}
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
		return Intent{}, fmt.Errorf("attempts %d out of range", attempts)
	}
	in.Attempts = int(attempts)
	if err := checkIntent(&in); err != nil {
		return Intent{}, err
	}
	return in, nil
}

// encodeFailure returns the version 1 value of f.
func encodeFailure(f *Failure) []byte {
	b := make([]byte, 0, 1+4*binary.MaxVarintLen64+len(f.Kind)+len(f.Err))
	b = append(b, failureValueVersion)
	b = appendTime(b, f.At)
	b = appendString(b, f.Kind)
	b = binary.AppendUvarint(b, uint64(f.Attempts))
	return appendString(b, f.Err)
}

// decodeFailure decodes a failure value stored under (stream, base); errors,
// never panics, on garbage.
func decodeFailure(stream string, base uint64, b []byte) (Failure, error) {
	d := reader{b: b}
	if v := d.byte(); d.err == nil && v != failureValueVersion {
		return Failure{}, fmt.Errorf("unsupported failure value version %d", v)
	}
	f := Failure{Stream: stream, Base: base}
	f.At = d.time()
	f.Kind = d.string(maxKindBytes)
	attempts := d.uvarint()
	f.Err = d.string(maxErrorBytes)
	if err := d.finish(); err != nil {
		return Failure{}, err
	}
	if attempts == 0 || attempts > math.MaxInt32 {
		return Failure{}, fmt.Errorf("attempts %d out of range", attempts)
	}
	f.Attempts = int(attempts)
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
