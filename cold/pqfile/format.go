package pqfile

import (
	"errors"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// FormatVersion is the format version Write puts in tierd.format_version
// (Options.Version 0 or 2). A reader accepts every major version it knows
// (1 and 2) and rejects others with ErrUnsupportedVersion; a minor version
// ("1.1", "1.2") only ever adds things a reader of its major may ignore.
const FormatVersion = "2.0"

// formatMajor is the newest major version this package reads (it reads
// 1 and 2).
const formatMajor = 2

// FormatVersion1 is what Write writes with Options.Version 1: the last
// format 1 (kept so tierbench can compare both in one run).
const FormatVersion1 = "1.2"

// minorChecksums is the first minor version of format 1 whose files carry
// checksums (tierd.meta_crc32c, and tierd.row_groups with per-block record
// CRCs and bloom filter CRCs); a reader requires them in files of this
// minor version or later, and in every format 2 file.
const minorChecksums = 2

// File key/value metadata keys. Each file carries all of them, so a catalog
// can be rebuilt from a bucket listing and the footers alone.
const (
	MetaStream        = "tierd.stream"         // stream name
	MetaBase          = "tierd.base"           // first offset, decimal
	MetaLast          = "tierd.last"           // last offset, decimal
	MetaCount         = "tierd.count"          // number of records, decimal
	MetaMinTS         = "tierd.min_ts"         // smallest ts, Unix ns, decimal
	MetaMaxTS         = "tierd.max_ts"         // largest ts, Unix ns, decimal
	MetaDigest        = "tierd.digest"         // tiers.Digest.String()
	MetaFormatVersion = "tierd.format_version" // FormatVersion
	// MetaSealedAt (format 1.1, optional) is when the segment was sealed,
	// Unix ns, decimal, so that a rebuilt catalog keeps segments' ages.
	MetaSealedAt = "tierd.sealed_at"
	// MetaRowGroups (format 1.2) describes each row group: its rows, ts
	// bounds, the CRC32C of its key bloom filter and the CRC32C of each
	// checksum block of its records (encodeRowGroups).
	MetaRowGroups = "tierd.row_groups"
	// MetaChecksum (format 1.2) is the CRC32C of the other tierd.* keys
	// and values (metaChecksum), so a flipped bit in any of them is found.
	MetaChecksum = "tierd.meta_crc32c"
	// MetaColumns (format 2) is the JSON array of the file's typed
	// columns (Column), "[]" for none: the schema is the base columns and
	// exactly these.
	MetaColumns = "tierd.columns"
)

// Column names, in schema order.
const (
	ColOffset = "offset"
	ColTS     = "ts"
	ColKey    = "key"
	ColTags   = "tags"
	ColValue  = "value"
	// Format 2: ts is Unix µs (floor of ts_ns / 1000) and ts_nanos the
	// rest (0..999); value holds JSON values, value_bin every other value.
	ColTSNanos  = "ts_nanos"
	ColValueBin = "value_bin"
)

// Sentinel errors. Those that describe a damaged file reach the caller
// inside a *tiers.CorruptionError; check them with errors.Is.
var (
	// ErrUnsupportedVersion: the file's tierd.format_version has a major
	// version this reader does not know (written by a newer tierd).
	ErrUnsupportedVersion = errors.New("pqfile: unsupported format version")
	// ErrNotSegment: the file is Parquet but not a tierd segment (schema or
	// tierd metadata missing or inconsistent).
	ErrNotSegment = errors.New("pqfile: not a tierd segment file")
	// ErrDigestMismatch: the rows do not hash to tierd.digest, or do not
	// match the count, offsets or ts bounds the metadata claims.
	ErrDigestMismatch = errors.New("pqfile: rows do not match segment metadata")
	// ErrBloomFilter: a row group's key bloom filter is damaged: its bytes
	// do not match their CRC32C, it does not parse, or it rules out a key
	// the row group holds. Reads do not use such a filter; Verify reports
	// it.
	ErrBloomFilter = errors.New("pqfile: key bloom filter damaged")
	// ErrEmptySegment: Write was given no records; a segment has at least one.
	ErrEmptySegment = errors.New("pqfile: segment has no records")
	// ErrNotDense: Write was given records whose offsets are not base,
	// base+1, … in order.
	ErrNotDense = errors.New("pqfile: record offsets are not dense and ordered")
)

// row is one record as a Parquet row. Field order is column order.
//
// ts is TIMESTAMP(NANOS) with isAdjustedToUTC=false although its values are
// UTC Unix nanoseconds: DuckDB (1.5) reads instant-semantics (UTC=true)
// nanosecond timestamps as TIMESTAMPTZ and truncates them to microseconds,
// while it reads UTC=false ones as TIMESTAMP_NS, exact. Identical rows in
// standard engines matter more than the flag (docs/format/parquet.md).
//
// offset and ts use DELTA_BINARY_PACKED: offsets are dense and ts nearly
// monotonic, so both shrink to a few bits per row before zstd sees them.
// key and tags are dictionary encoded (few distinct keys per segment is the
// common case; parquet-go falls back to PLAIN when the dictionary grows past
// dictionaryMaxBytes). value is PLAIN: payloads are mostly distinct, and
// zstd does better on the raw bytes than a dictionary would.
type row struct {
	Offset int64    `parquet:"offset,delta"`
	TS     int64    `parquet:"ts,timestamp(nanosecond:local),delta"`
	Key    string   `parquet:"key,dict"`
	Tags   []string `parquet:"tags,list" parquet-element:",dict"`
	Value  []byte   `parquet:"value,plain"`
}

// schema is the Parquet schema of format version 1; schemaV2 builds
// format 2's.
var schema = parquet.SchemaOf(row{})

// Options tune Write. The zero value means the defaults.
type Options struct {
	// Level is the zstd level as in the zstd CLI (1–22; the config's
	// cold.compression.level), mapped to klauspost/compress's four
	// encoder levels by zstd.EncoderLevelFromZstd: 1 fastest, 2–4
	// default, 5–8 better, 9+ best. 0 means 3.
	Level int
	// RowGroupRows caps the rows of a row group. 0 means 100 000.
	RowGroupRows int
	// RowGroupBytes caps a row group's uncompressed size, counted as the
	// records' canonical encoding (tiers.EncodedLen). It bounds Write's
	// memory: a row group is buffered (compressed) until it is flushed.
	// 0 means 64 MiB.
	RowGroupBytes int64
	// SealedAt, when set, is written as tierd.sealed_at.
	SealedAt time.Time
	// Version is the format to write: 0 or 2 for format 2.0, 1 for format
	// 1.2 as tierd wrote it before (for benchmarks that compare the two).
	Version int
	// Columns are the typed columns of a format 2 file (after the base
	// columns, in this order), projected from each JSON value by
	// Projector. A format 1 file has none.
	Columns []Column
	// Projector projects values onto Columns; nil means NewProjector(Columns).
	Projector Projector
	// OnProjection, when set, is called once per typed column after a
	// successful Write with how many rows got NULL there (the field was
	// missing or of another type, or the value was not JSON), so the cold
	// tier can count them. A failed Write reports nothing: its upload is
	// retried and would count twice. Info.ColumnMisses has the same.
	OnProjection func(column string, misses int64)
}

// Defaults of Options.
const (
	DefaultLevel         = 3
	DefaultRowGroupRows  = 100_000
	DefaultRowGroupBytes = 64 << 20
)

// withDefaults returns o with zero fields replaced by defaults.
func (o Options) withDefaults() Options {
	if o.Level <= 0 {
		o.Level = DefaultLevel
	}
	if o.RowGroupRows <= 0 {
		o.RowGroupRows = DefaultRowGroupRows
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
	}
	return o
}

// encoderLevel maps a zstd CLI level to klauspost's encoder level.
func (o Options) encoderLevel() zstd.EncoderLevel {
	return zstd.EncoderLevelFromZstd(o.Level)
}
