package tiers

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"unicode/utf8"
)

// Limits that apply to every record, whatever the configuration.
const (
	// MaxStreamNameLen is the longest stream name accepted.
	MaxStreamNameLen = 200
	// MaxKeyBytes is the longest record key accepted, in bytes.
	MaxKeyBytes = 1024
	// DefaultMaxRecordBytes is the default cap on a record's value.
	DefaultMaxRecordBytes = 1 << 20
)

// Record is one entry of a stream. Offset is assigned by tierd, dense from 0
// per stream; TS is the producer's event time (or ingest time) in Unix
// nanoseconds.
type Record struct {
	Offset uint64
	TS     int64
	Key    string
	Tags   []string
	Value  []byte
	// JSON, when set, says that Value is known to be valid UTF-8 and one
	// valid JSON value (RFC 8259), the answer pqfile.IsJSON would give: the
	// ingest parser sets it on a value it has just checked, and the memory
	// tier and warm segments keep it, so that the cold tier's conversion
	// need not check the value again. It is a hint: unset says nothing
	// about the value. It is not part of the record's encoding or digest
	// (docs/format/record.md); a container that stores it covers it with
	// its own checksum. Set it only on a value checked as pqfile.IsJSON
	// checks: the conversion trusts it, and a wrong hint would put a value
	// that is not JSON in the Parquet file's JSON column.
	JSON bool
}

// Size is the number of payload bytes a record carries (key, tags and value)
// plus a fixed overhead; budgets and segment sizes are counted in it.
func (r *Record) Size() int {
	n := recordOverhead + len(r.Key) + len(r.Value)
	for _, t := range r.Tags {
		n += len(t) + 2
	}
	return n
}

// recordOverhead approximates the fixed bytes of offset, ts and lengths.
const recordOverhead = 24

var streamNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// ValidateStreamName reports whether name is a legal stream name:
// [A-Za-z0-9][A-Za-z0-9._-]{0,199}. Legal names are safe as a path and an
// object-key component.
func ValidateStreamName(name string) error {
	if !streamNameRE.MatchString(name) {
		return fmt.Errorf("%w: %q must match [A-Za-z0-9][A-Za-z0-9._-]{0,199}", ErrInvalidStreamName, name)
	}
	return nil
}

// Validate checks a record as a producer sent it (the offset is not looked
// at): key length and encoding, tags, the ts range and the value size cap.
func (r *Record) Validate(maxValueBytes int) error {
	if len(r.Key) > MaxKeyBytes {
		return fmt.Errorf("%w: key is %d bytes, max %d", ErrKeyTooLarge, len(r.Key), MaxKeyBytes)
	}
	if !utf8.ValidString(r.Key) {
		return fmt.Errorf("%w: key is not valid UTF-8", ErrInvalidRecord)
	}
	for i, t := range r.Tags {
		if !utf8.ValidString(t) {
			return fmt.Errorf("%w: tag %d is not valid UTF-8", ErrInvalidRecord, i)
		}
		if len(t) > MaxKeyBytes {
			return fmt.Errorf("%w: tag %d is %d bytes, max %d", ErrInvalidRecord, i, len(t), MaxKeyBytes)
		}
	}
	if r.TS > MaxTS {
		return fmt.Errorf("%w: ts %d is math.MaxInt64, reserved for \"no upper bound\"; the largest ts is %d", ErrInvalidTS, r.TS, int64(MaxTS))
	}
	if maxValueBytes <= 0 {
		maxValueBytes = DefaultMaxRecordBytes
	}
	if len(r.Value) > maxValueBytes {
		return fmt.Errorf("%w: value is %d bytes, max %d", ErrRecordTooLarge, len(r.Value), maxValueBytes)
	}
	return nil
}

// HasTag reports whether the record carries tag.
func (r *Record) HasTag(tag string) bool {
	for _, t := range r.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Equal reports whether two records are identical in every field of their
// content: offset, ts, key, tags and value. The JSON hint is not content.
func (r *Record) Equal(o *Record) bool {
	if r.Offset != o.Offset || r.TS != o.TS || r.Key != o.Key || string(r.Value) != string(o.Value) || len(r.Tags) != len(o.Tags) {
		return false
	}
	for i := range r.Tags {
		if r.Tags[i] != o.Tags[i] {
			return false
		}
	}
	return true
}

// Sentinel errors shared by every tier. Check them with errors.Is.
var (
	ErrInvalidStreamName = errors.New("tiers: invalid stream name")
	ErrInvalidRecord     = errors.New("tiers: invalid record")
	ErrKeyTooLarge       = errors.New("tiers: key too large")
	ErrRecordTooLarge    = errors.New("tiers: record too large")
	ErrStreamNotFound    = errors.New("tiers: stream not found")
	ErrSegmentNotFound   = errors.New("tiers: segment not found")
	ErrBackpressure      = errors.New("tiers: memory budget full of unpersisted data")
	ErrClosed            = errors.New("tiers: closed")
	ErrStorageFailed     = errors.New("tiers: storage failed, writes disabled until restart")
	// ErrProducerSequence refuses an idempotent producer's batch that is
	// neither its next one nor a retry of its last: an older sequence
	// number, or its last one with other records.
	ErrProducerSequence = errors.New("tiers: batch out of the producer's sequence")
	// ErrExpired reports a read of offsets that retention has deleted.
	ErrExpired = errors.New("tiers: records expired by retention")
	// ErrInvalidTS refuses a record ts tierd cannot serve back (see
	// MaxTS), or a timestamp that does not parse.
	ErrInvalidTS = errors.New("tiers: invalid ts")
	// ErrBatchOverBudget refuses a batch larger than the whole hot memory
	// budget: unlike backpressure, retrying cannot help.
	ErrBatchOverBudget = errors.New("tiers: batch larger than the memory budget")
	// ErrOutcomeUnknown reports a write whose commit was sent but never
	// answered (the connection to the shared catalog broke during COMMIT):
	// it may or may not be durable. Unlike ErrStorageUnavailable it does
	// not claim that nothing was written. The server answers 503; an
	// idempotent producer's retry resolves it (a committed batch is
	// answered as a duplicate with its offsets).
	ErrOutcomeUnknown = errors.New("tiers: write outcome unknown, retry to resolve")
)

// MaxTS is the largest record ts tierd accepts: one below math.MaxInt64,
// which a Query's Until (exclusive) uses for "no upper bound", so a record
// stamped math.MaxInt64 could never be read back.
const MaxTS = math.MaxInt64 - 1
