package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tierd/tierd/tiers"
)

// The catalog's bbolt layout (schema version 1):
//
//	meta/schema                  uvarint schema version (1)
//	streams/<name>               stream value
//	segments/<name>/<base:8 BE>  segment value
//
// Segment keys are the base offset as 8 big-endian bytes, so bbolt's byte
// order is offset order and Locate can Seek. Every value starts with its own
// encoding version byte, so a later version can change one value kind without
// a schema migration of the others.
//
// Segment value, version 1 (the stream and base are in the bucket and key):
//
//	version    1 byte (1)
//	last       uvarint
//	count      uvarint (must equal last-base+1: offsets are dense)
//	bytes      varint (>= 0)
//	min_ts     varint
//	max_ts     varint (>= min_ts)
//	sealed_at  varint Unix seconds, uvarint nanoseconds (< 1e9)
//	digest     32 bytes
//	placements 1 byte, the tiers.Placements bits; only warm and cold
//
// Stream value, version 1:
//
//	version     1 byte (1)
//	created_at  varint Unix seconds, uvarint nanoseconds (< 1e9)
//	segments    uvarint, number of segments held
//	records     uvarint, sum of their counts
//	bytes       uvarint, sum of their bytes
//	next_offset uvarint, one past the highest offset ever catalogued
//
// Trailing bytes after the last field are an error in version 1.

const (
	schemaVersion        = 1
	segmentValueVersion  = 1
	streamValueVersion   = 1
	maxSegmentValueBytes = 1 + 7*binary.MaxVarintLen64 + len(tiers.Digest{}) + 1

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
	}
	return nil
}

// encodeSegment returns the version 1 value of m. m must pass checkSegment.
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
	return append(b, byte(m.Placements))
}

// decodeSegment decodes a segment value stored under (stream, base). It
// returns an error, never panics, on any bytes that encodeSegment could not
// have produced.
func decodeSegment(stream string, base uint64, b []byte) (tiers.SegmentMeta, error) {
	d := reader{b: b}
	if v := d.byte(); d.err == nil && v != segmentValueVersion {
		return tiers.SegmentMeta{}, fmt.Errorf("unsupported segment value version %d", v)
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
