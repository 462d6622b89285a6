package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tierd/tierd/tiers"
)

// Errors of the NDJSON parser, besides tiers.ErrInvalidRecord,
// tiers.ErrKeyTooLarge and tiers.ErrRecordTooLarge. A rejected line comes
// wrapped in a *ParseError naming it.
var (
	ErrInvalidJSON   = errors.New("server: invalid JSON")
	ErrInvalidTS     = tiers.ErrInvalidTS
	ErrInvalidBase64 = errors.New("server: invalid value_b64")
	ErrEmptyBatch    = errors.New("server: empty batch")
	ErrBatchTooLarge = errors.New("server: too many records in one batch")
	// ErrBodyRead wraps a failure to read the body itself (a client that
	// hung up, a broken chunked encoding, or *http.MaxBytesError).
	ErrBodyRead = errors.New("server: reading the body failed")
)

// ParseError locates a rejected line of an NDJSON body, so a producer can
// find the bad record among thousands.
type ParseError struct {
	Line int // 1-based physical line number, blank lines counted
	Err  error
}

// Error names the line.
func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the cause, one of the parser's sentinels or a tiers sentinel.
func (e *ParseError) Unwrap() error { return e.Err }

// ParseOptions bounds what ParseNDJSON accepts.
type ParseOptions struct {
	// MaxRecordBytes caps a record's value; 0 means tiers.DefaultMaxRecordBytes.
	MaxRecordBytes int
	// MaxRecords caps the records of one body; 0 means no cap.
	MaxRecords int
	// IngestTS is the ts (Unix ns) given to records that carry none.
	IngestTS int64
}

// lineLimit is the longest line ParseNDJSON buffers. A valid record's line is
// bounded by its value (base64 grows it by 4/3) plus key and tags, so twice
// the value cap plus slack admits every record that could pass Validate
// except one with an absurd tag list, and stops a newline-free body from
// being buffered whole.
func lineLimit(maxRecordBytes int) int { return 2*maxRecordBytes + 256<<10 }

// ParseNDJSON reads a whole NDJSON body, one record object per line:
//
//	{"key":"k","ts":"2026-11-22T10:00:00.123456789Z","tags":["a"],"value":<any JSON>}
//
// Blank lines are ignored. "ts" is an RFC 3339 string or integer Unix
// nanoseconds; absent or null means opts.IngestTS. "value" is stored as its
// compacted JSON bytes; "value_b64" (standard base64) carries arbitrary
// bytes instead; neither means an empty value. Unknown or repeated fields are
// rejected. Every record is validated, so a nil error means the engine sees
// only well-formed input; on any error no records are returned, which is what
// makes a batch atomic. Read errors from r (such as *http.MaxBytesError) are
// returned wrapped.
func ParseNDJSON(r io.Reader, opts ParseOptions) ([]tiers.Record, error) {
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = tiers.DefaultMaxRecordBytes
	}
	br := bufio.NewReaderSize(r, 64<<10)
	limit := lineLimit(opts.MaxRecordBytes)
	var (
		recs []tiers.Record
		line []byte
		n    int
		ar   arena
	)
	for {
		var err error
		line, err = readLine(br, line[:0], limit)
		if len(line) > 0 || err == nil {
			n++
		}
		if errors.Is(err, errLineTooLong) {
			return nil, &ParseError{Line: n, Err: fmt.Errorf("%w: line is longer than %d bytes", tiers.ErrRecordTooLarge, limit)}
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%w at line %d: %w", ErrBodyRead, n, err)
		}
		if !isBlank(line) {
			if opts.MaxRecords > 0 && len(recs) >= opts.MaxRecords {
				return nil, &ParseError{Line: n, Err: fmt.Errorf("%w: at most %d records", ErrBatchTooLarge, opts.MaxRecords)}
			}
			rec, perr := parseRecord(line, &opts, &ar)
			if perr != nil {
				return nil, &ParseError{Line: n, Err: perr}
			}
			recs = append(recs, rec)
		}
		if err == io.EOF {
			break
		}
	}
	if len(recs) == 0 {
		return nil, ErrEmptyBatch
	}
	return recs, nil
}

var errLineTooLong = errors.New("line too long")

// readLine appends the next line of br (without its newline) to dst. It
// returns io.EOF with the last, unterminated line.
func readLine(br *bufio.Reader, dst []byte, limit int) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if len(dst)+len(chunk) > limit+1 {
			return dst, errLineTooLong
		}
		dst = append(dst, chunk...)
		switch {
		case err == nil:
			return dst[:len(dst)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return dst, err
		}
	}
}

// isBlank reports whether a line holds only JSON whitespace.
func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// Field bits, to reject a field given twice: with encoding/json the last one
// would silently win.
const (
	fieldKey = 1 << iota
	fieldTS
	fieldTags
	fieldValue
	fieldValueB64
)

// ParseTS parses a timestamp as the API accepts it in query parameters:
// RFC 3339 (fractional seconds to the nanosecond) or integer Unix
// nanoseconds. It returns Unix nanoseconds.
func ParseTS(s string) (int64, error) {
	if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ns, nil
	}
	return parseRFC3339(s)
}

// The instants an int64 of Unix nanoseconds can hold.
var (
	minTS = time.Unix(0, math.MinInt64)
	maxTS = time.Unix(0, math.MaxInt64)
)

func parseRFC3339(s string) (int64, error) {
	// time.Parse takes any number of fractional digits and drops those
	// past the nanosecond: a ts that cannot be stored as given is refused.
	if i := strings.IndexByte(s, '.'); i >= 0 {
		n := 0
		for j := i + 1; j < len(s) && isDigit(s[j]); j++ {
			n++
		}
		if n > 9 {
			return 0, fmt.Errorf("%w: %q has %d fractional digits; at most 9 (nanoseconds)", ErrInvalidTS, s, n)
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not RFC 3339 (e.g. 2026-11-22T10:00:00.123456789Z)", ErrInvalidTS, s)
	}
	if t.Before(minTS) || t.After(maxTS) {
		return 0, fmt.Errorf("%w: %q is outside the years 1678–2262 that Unix nanoseconds can hold", ErrInvalidTS, s)
	}
	return t.UnixNano(), nil
}
