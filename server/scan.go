package server

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tierd/tierd/tiers"
)

// The record parser is a hand-written, allocation-light JSON scanner: the
// generic encoding/json token walk cost about 14 µs per record, which capped
// HTTP ingest far below the disk. It accepts exactly the JSON grammar
// (RFC 8259) and reports the byte of the line where a syntax error is.

// maxDepth bounds the nesting of a value, as encoding/json does.
const maxDepth = 10000

// recordScanner walks one line.
type recordScanner struct {
	b     []byte
	i     int
	arena *arena
}

func (s *recordScanner) syntaxErr(what string) error {
	if s.i >= len(s.b) {
		return fmt.Errorf("%w: unexpected end of line", ErrInvalidJSON)
	}
	return fmt.Errorf("%w: %s at byte %d of the line (%q)", ErrInvalidJSON, what, s.i+1, s.b[s.i])
}

func (s *recordScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *recordScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *recordScanner) expect(c byte, what string) error {
	s.ws()
	if s.peek() != c {
		return s.syntaxErr("expected " + what)
	}
	s.i++
	return nil
}

// str scans a string at s.i and returns its decoded bytes. Without escapes
// the result aliases the line.
func (s *recordScanner) str() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.syntaxErr("expected a string")
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			out := s.b[start:s.i]
			s.i++
			return out, nil
		case c == '\\':
			return s.strSlow(start)
		case c < 0x20:
			return nil, s.syntaxErr("control character in a string")
		}
		s.i++
	}
	return nil, s.syntaxErr("unterminated string")
}

// strSlow decodes a string with escapes, from its first byte at start.
func (s *recordScanner) strSlow(start int) ([]byte, error) {
	out := append([]byte(nil), s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return out, nil
		case c < 0x20:
			return nil, s.syntaxErr("control character in a string")
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		s.i++
		if s.i >= len(s.b) {
			return nil, s.syntaxErr("unterminated escape")
		}
		e := s.b[s.i]
		s.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, s.syntaxErr("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A valid pair makes one rune; anything else is U+FFFD, as
				// encoding/json decodes it.
				save := s.i
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					r2, ok := s.hex4()
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						continue
					}
				}
				s.i = save
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			s.i--
			return nil, s.syntaxErr("bad escape")
		}
	}
	return nil, s.syntaxErr("unterminated string")
}

func (s *recordScanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// SWAR constants: eight bytes are tested at once for a quote, a backslash or
// a control character, the only bytes that end the fast run of a string.
const (
	ones   = 0x0101010101010101
	highs  = 0x8080808080808080
	quotes = '"' * ones
	slashs = '\\' * ones
)

// plain8 reports whether none of the eight bytes of x is '"', '\\' or
// below 0x20. (v-ones)&^v&highs is non-zero exactly when a byte of v is
// zero; (x-0x20*ones)&^x&highs when a byte of x is below 0x20.
func plain8(x uint64) bool {
	q, b := x^quotes, x^slashs
	return ((q-ones)&^q|(b-ones)&^b|(x-0x20*ones)&^x)&highs == 0
}

// skipString moves past a string without decoding it.
func (s *recordScanner) skipString() error {
	s.i++ // the opening quote
	for s.i+8 <= len(s.b) && plain8(binary.LittleEndian.Uint64(s.b[s.i:])) {
		s.i += 8
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return nil
		case c < 0x20:
			return s.syntaxErr("control character in a string")
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return s.syntaxErr("unterminated escape")
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				if _, ok := s.hex4(); !ok {
					return s.syntaxErr("bad \\u escape")
				}
			default:
				return s.syntaxErr("bad escape")
			}
		default:
			s.i++
		}
	}
	return s.syntaxErr("unterminated string")
}

// number moves past a number (RFC 8259 grammar) and reports whether it is
// an integer (no fraction or exponent).
func (s *recordScanner) number() (integer bool, err error) {
	integer = true
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for s.i++; isDigit(s.peek()); s.i++ {
		}
	default:
		return false, s.syntaxErr("bad number")
	}
	if s.peek() == '.' {
		integer = false
		s.i++
		if !isDigit(s.peek()) {
			return false, s.syntaxErr("bad number")
		}
		for s.i++; isDigit(s.peek()); s.i++ {
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		integer = false
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !isDigit(s.peek()) {
			return false, s.syntaxErr("bad number")
		}
		for s.i++; isDigit(s.peek()); s.i++ {
		}
	}
	return integer, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (s *recordScanner) literal(word string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return s.syntaxErr("bad literal")
	}
	s.i += len(word)
	return nil
}

// skipValue validates and moves past any JSON value; spaced reports
// whitespace inside it (outside strings), which means it needs compacting.
func (s *recordScanner) skipValue(depth int) (spaced bool, err error) {
	if depth > maxDepth {
		return false, s.syntaxErr("value nested too deeply")
	}
	switch c := s.peek(); {
	case c == '"':
		return false, s.skipString()
	case c == '-' || isDigit(c):
		_, err := s.number()
		return false, err
	case c == 't':
		return false, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return false, s.literal("null")
	case c == '[' || c == '{':
		closer := byte(']')
		if c == '{' {
			closer = '}'
		}
		s.i++
		mark := s.i
		s.ws()
		spaced = s.i != mark
		if s.peek() == closer {
			s.i++
			return spaced, nil
		}
		for {
			if c == '{' {
				if s.peek() != '"' {
					return false, s.syntaxErr("expected a field name")
				}
				if err := s.skipString(); err != nil {
					return false, err
				}
				mark = s.i
				s.ws()
				if s.peek() != ':' {
					return false, s.syntaxErr("expected ':'")
				}
				s.i++
				s.ws()
				spaced = spaced || s.i != mark+1
			}
			sp, err := s.skipValue(depth + 1)
			if err != nil {
				return false, err
			}
			mark = s.i
			s.ws()
			spaced = spaced || sp || s.i != mark
			switch s.peek() {
			case ',':
				s.i++
				mark = s.i
				s.ws()
				spaced = spaced || s.i != mark
			case closer:
				s.i++
				return spaced, nil
			default:
				return false, s.syntaxErr("expected ',' or '" + string(closer) + "'")
			}
		}
	}
	return false, s.syntaxErr("expected a value")
}

// typeErr reports a well-formed field value of the wrong type; the value is
// skipped first so that a syntax error inside it is reported as one.
func (s *recordScanner) typeErr(name, want string) error {
	start := s.i
	if _, err := s.skipValue(0); err != nil {
		return err
	}
	kind := map[byte]string{'"': "string", '{': "object", '[': "array", 't': "bool", 'f': "bool", 'n': "null"}[s.b[start]]
	if kind == "" {
		kind = "number"
	}
	return fmt.Errorf("%w: field %q must be %s, not %s", tiers.ErrInvalidRecord, name, want, kind)
}

func (s *recordScanner) isNull() bool {
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// parseRecord decodes one non-blank line into a record. Field names are
// matched exactly (encoding/json would ignore case) and a field given twice
// is an error (encoding/json would keep the last). A line that is malformed
// JSON is reported as such even when a field error comes first in it, since
// that is the more basic fault.
func parseRecord(line []byte, opts *ParseOptions, ar *arena) (tiers.Record, error) {
	rec, err := scanRecord(line, opts, ar)
	if err != nil && !errors.Is(err, ErrInvalidJSON) {
		s := &recordScanner{b: line}
		s.ws()
		if _, serr := s.skipValue(0); serr != nil {
			return rec, serr
		}
		if s.ws(); s.i != len(s.b) {
			return rec, fmt.Errorf("%w: more than one JSON value on the line (byte %d)", ErrInvalidJSON, s.i+1)
		}
	}
	return rec, err
}

func scanRecord(line []byte, opts *ParseOptions, ar *arena) (tiers.Record, error) {
	var rec tiers.Record
	if !utf8.Valid(line) {
		return rec, fmt.Errorf("%w: line is not valid UTF-8", ErrInvalidJSON)
	}
	s := &recordScanner{b: line, arena: ar}
	if s.ws(); s.peek() != '{' {
		if _, err := s.skipValue(0); err != nil {
			return rec, err
		}
		return rec, fmt.Errorf("%w: a record must be a JSON object", ErrInvalidJSON)
	}
	s.i++
	var (
		seen     int
		value    []byte
		valueB64 []byte
	)
	rec.TS = opts.IngestTS
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			s.ws()
			name, err := s.str()
			if err != nil {
				return rec, err
			}
			if err := s.expect(':', "':'"); err != nil {
				return rec, err
			}
			s.ws()
			var bit int
			switch string(name) {
			case "key":
				bit = fieldKey
				if !s.isNull() {
					if s.peek() != '"' {
						return rec, s.typeErr("key", "a string")
					}
					k, err := s.str()
					if err != nil {
						return rec, err
					}
					rec.Key = string(k)
				}
			case "ts":
				bit = fieldTS
				if err = s.ts(&rec.TS); err != nil {
					return rec, err
				}
			case "tags":
				bit = fieldTags
				if rec.Tags, err = s.tags(); err != nil {
					return rec, err
				}
			case "value":
				bit = fieldValue
				start := s.i
				spaced, err := s.skipValue(0)
				if err != nil {
					return rec, err
				}
				value = line[start:s.i]
				if spaced {
					var buf bytes.Buffer
					if err := json.Compact(&buf, value); err != nil {
						return rec, fmt.Errorf("%w: %v", ErrInvalidJSON, err)
					}
					value = buf.Bytes()
				}
			case "value_b64":
				bit = fieldValueB64
				if !s.isNull() {
					if s.peek() != '"' {
						return rec, s.typeErr("value_b64", "a base64 string")
					}
					if valueB64, err = s.str(); err != nil {
						return rec, err
					}
					if valueB64 == nil {
						valueB64 = []byte{}
					}
				}
			default:
				return rec, fmt.Errorf("%w: unknown field %q", tiers.ErrInvalidRecord, name)
			}
			if seen&bit != 0 {
				return rec, fmt.Errorf("%w: field %q given twice", tiers.ErrInvalidRecord, name)
			}
			seen |= bit
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			if err := s.expect('}', "',' or '}'"); err != nil {
				return rec, err
			}
			break
		}
	}
	if s.ws(); s.i != len(s.b) {
		return rec, fmt.Errorf("%w: more than one JSON value on the line (byte %d)", ErrInvalidJSON, s.i+1)
	}
	if seen&fieldValue != 0 && seen&fieldValueB64 != 0 {
		return rec, fmt.Errorf("%w: give value or value_b64, not both", tiers.ErrInvalidRecord)
	}
	switch {
	case value != nil:
		// The line is valid UTF-8 and skipValue checked value's grammar,
		// so the record carries the JSON hint (FuzzParseNDJSON checks it
		// against pqfile.IsJSON).
		rec.Value = ar.copy(value)
		rec.JSON = true
	case valueB64 != nil:
		if base64.StdEncoding.DecodedLen(len(valueB64)) > opts.MaxRecordBytes+3 {
			return rec, fmt.Errorf("%w: value_b64 decodes to more than %d bytes", tiers.ErrRecordTooLarge, opts.MaxRecordBytes)
		}
		dst := ar.alloc(base64.StdEncoding.DecodedLen(len(valueB64)))
		n, err := base64.StdEncoding.Decode(dst, valueB64)
		if err != nil {
			return rec, fmt.Errorf("%w: %v", ErrInvalidBase64, err)
		}
		if n > 0 {
			rec.Value = dst[:n:n]
		}
	}
	if err := rec.Validate(opts.MaxRecordBytes); err != nil {
		return rec, err
	}
	return rec, nil
}

// ts reads a ts field: an RFC 3339 string, integer Unix nanoseconds, or
// null (ingest time, *ts unchanged).
func (s *recordScanner) ts(ts *int64) error {
	if s.isNull() {
		return nil
	}
	start := s.i
	switch c := s.peek(); {
	case c == '"':
		v, err := s.str()
		if err != nil {
			return err
		}
		*ts, err = parseRFC3339(string(v))
		return err
	case c == '-' || isDigit(c):
		integer, err := s.number()
		if err != nil {
			return err
		}
		raw := s.b[start:s.i]
		if !integer {
			return fmt.Errorf("%w: %s is neither an RFC 3339 string nor an integer of Unix nanoseconds", ErrInvalidTS, raw)
		}
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %s does not fit in int64 Unix nanoseconds", ErrInvalidTS, raw)
		}
		*ts = v
		return nil
	}
	if _, err := s.skipValue(0); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s is neither an RFC 3339 string nor an integer of Unix nanoseconds", ErrInvalidTS, s.b[start:s.i])
}

// tags reads a tags field: an array of strings, or null.
func (s *recordScanner) tags() ([]string, error) {
	if s.isNull() {
		return nil, nil
	}
	if s.peek() != '[' {
		return nil, s.typeErr("tags", "an array of strings")
	}
	start := s.i
	s.i++
	var out []string
	s.ws()
	if s.peek() == ']' {
		s.i++
		return []string{}, nil
	}
	for {
		s.ws()
		if s.peek() != '"' {
			s.i = start
			return nil, s.typeErr("tags", "an array of strings")
		}
		t, err := s.str()
		if err != nil {
			return nil, err
		}
		out = append(out, string(t))
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return out, nil
		default:
			return nil, s.syntaxErr("expected ',' or ']'")
		}
	}
}

// arena hands out byte slices carved from large chunks, so a batch's values
// cost a few allocations instead of one each. Slices never move.
type arena struct{ buf []byte }

const arenaChunk = 64 << 10

func (a *arena) alloc(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(arenaChunk, n))
	}
	l := len(a.buf)
	a.buf = a.buf[:l+n]
	return a.buf[l : l+n : l+n]
}

func (a *arena) copy(b []byte) []byte {
	out := a.alloc(len(b))
	copy(out, b)
	return out
}
