package pqfile

import (
	"encoding/binary"
	"unicode/utf8"
)

// IsJSON reports whether Write stores a value in format 2's value column
// (else in value_bin): it is UTF-8
// (Parquet's JSON annotation is on UTF-8 strings; encoding/json accepts
// invalid UTF-8 inside strings) and one JSON value, whitespace allowed. The
// bytes are stored as they are either way.
//
// It answers exactly utf8.Valid(v) && json.Valid(v) (FuzzIsJSON checks
// that) for several times less CPU: encoding/json's scanner calls a state
// function per byte, which cost half of a format 1.2 conversion's CPU time
// (tierbench cold).
func IsJSON(v []byte) bool {
	return len(v) > 0 && validJSON(v)
}

// maxJSONDepth is encoding/json's nesting limit, which json.Valid applies:
// deeper values are not valid there, so not here either.
const maxJSONDepth = 10000

// plainStringByte marks the ASCII bytes a JSON string holds as they are:
// not a control character, quote or backslash. Bytes ≥ 0x80 start UTF-8
// sequences, which jsonString decodes: outside strings JSON's grammar
// allows only ASCII, so checking UTF-8 inside strings is utf8.Valid of the
// whole value for every value that parses.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// jsonSpace marks JSON's four whitespace bytes.
var jsonSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// validJSON checks b's JSON syntax (one value, whitespace around it)
// without recursion: a loop over tokens with a stack of the open
// containers, which is what made it faster than encoding/json's scanner
// (a function call per byte).
func validJSON(b []byte) bool {
	var stackBuf [64]byte
	stack := stackBuf[:0] // '{' or '[' per open container
	n := len(b)
	i := 0
	var c byte
value: // a value starts at i, after optional whitespace
	if i < n && jsonSpace[b[i]] {
		for i < n && jsonSpace[b[i]] {
			i++
		}
	}
	if i >= n {
		return false
	}
	switch c = b[i]; c {
	case '{', '[':
		if len(stack) >= maxJSONDepth {
			return false
		}
		stack = append(stack, c)
		i++
		for i < n && jsonSpace[b[i]] {
			i++
		}
		if i < n && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
			i++
			stack = stack[:len(stack)-1]
			goto after
		}
		if c == '{' {
			goto key
		}
		goto value
	case '"':
		if i = jsonString(b, i); i < 0 {
			return false
		}
	case 't':
		if n-i < 4 || string(b[i:i+4]) != "true" {
			return false
		}
		i += 4
	case 'f':
		if n-i < 5 || string(b[i:i+5]) != "false" {
			return false
		}
		i += 5
	case 'n':
		if n-i < 4 || string(b[i:i+4]) != "null" {
			return false
		}
		i += 4
	default:
		if i = jsonNumber(b, i); i < 0 {
			return false
		}
	}
after: // a value ended at i
	if i < n && jsonSpace[b[i]] {
		for i < n && jsonSpace[b[i]] {
			i++
		}
	}
	if len(stack) == 0 {
		return i == n
	}
	if i >= n {
		return false
	}
	switch c, top := b[i], stack[len(stack)-1]; {
	case c == ',':
		i++
		if top == '[' {
			goto value
		}
		if i < n && b[i] == '"' { // the common case: no whitespace
			goto key
		}
		for i < n && jsonSpace[b[i]] {
			i++
		}
		goto key
	case c == top+2:
		i++
		stack = stack[:len(stack)-1]
		goto after
	default:
		return false
	}
key: // an object key starts at i (whitespace skipped)
	if i >= n || b[i] != '"' {
		return false
	}
	if i = jsonString(b, i); i < 0 {
		return false
	}
	if i < n && b[i] != ':' {
		for i < n && jsonSpace[b[i]] {
			i++
		}
	}
	if i >= n || b[i] != ':' {
		return false
	}
	i++
	goto value
}

// jsonString checks the string whose opening quote is at b[i] and returns
// the index after its closing quote, or -1.
func jsonString(b []byte, i int) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	i++
	for {
		// Eight bytes at a time while none is special: a control
		// character, '"', '\\' or a byte ≥ 0x80. (Each test may flag a
		// byte after a special one too; then the byte loop looks.)
		for len(b)-i >= 8 {
			x := binary.LittleEndian.Uint64(b[i:])
			q, bs := x^(ones*'"'), x^(ones*'\\')
			if (x|((x-ones*0x20)&^x)|((q-ones)&^q)|((bs-ones)&^bs))&high != 0 {
				break
			}
			i += 8
		}
		for i < len(b) && plainStringByte[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(b)-i < 5 || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return -1
				}
				i += 5
			default:
				return -1
			}
		case c >= 0x80:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return -1
			}
			i += size
		default: // a control character
			return -1
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// jsonNumber checks the number at b[i] and returns the index after it, or
// -1: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(b []byte, i int) int {
	n := len(b)
	if b[i] == '-' {
		i++
	}
	if i >= n {
		return -1
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < n && b[i]-'0' < 10 {
			i++
		}
	default:
		return -1
	}
	if i < n && b[i] == '.' {
		i++
		start := i
		for i < n && b[i]-'0' < 10 {
			i++
		}
		if i == start {
			return -1
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < n && b[i]-'0' < 10 {
			i++
		}
		if i == start {
			return -1
		}
	}
	return i
}
