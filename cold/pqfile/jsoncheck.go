package pqfile

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// IsJSON reports whether Write stores a value in format 2's value column
// (else in value_bin): it is UTF-8
// (Parquet's JSON annotation is on UTF-8 strings; encoding/json accepts
// invalid UTF-8 inside strings) and one JSON value, whitespace allowed. The
// bytes are stored as they are either way.
//
// It answers exactly utf8.Valid(v) && json.Valid(v) (FuzzIsJSON and
// TestIsJSONRandom check that) for about a third of the CPU time:
// encoding/json's scanner calls a state function per byte, which cost half
// of a format 1.2 conversion's CPU time (tierbench cold).
func IsJSON(v []byte) bool {
	return len(v) > 0 && validJSON(v)
}

// maxJSONDepth is encoding/json's nesting limit, which json.Valid applies:
// deeper values are not valid there, so not here either.
const maxJSONDepth = 10000

// plainStringByte marks the ASCII bytes a JSON string holds as they are:
// not a control character, quote or backslash. Bytes ≥ 0x80 start UTF-8
// sequences, which stringRest decodes: outside strings JSON's grammar
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

// swarOnes and swarHigh are 0x01 and 0x80 in each byte of a word.
const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// validJSON checks b's JSON syntax (one value, whitespace around it)
// without recursion: a loop over tokens with a stack of the open
// containers, strings scanned eight bytes at a time. What it costs is a
// few instructions per token: on small values (tierbench's are about 90
// bytes and 25 tokens) that is most of it, so the common layouts (no
// whitespace, a key right after a comma) take the fewest branches.
func validJSON(b []byte) bool {
	var stackBuf [64]byte
	stack := stackBuf[:0] // '{' or '[' per open container
	inObj := false        // the innermost open container is an object
	n := len(b)
	i := 0
	var c byte
value: // a value starts at i, after optional whitespace
	if i >= n {
		return false
	}
	c = b[i]
	if c <= ' ' {
		for i < n && jsonSpace[b[i]] {
			i++
		}
		if i >= n {
			return false
		}
		c = b[i]
	}
	switch c {
	case '"':
		// The string is scanned eight bytes at a time: qf flags the
		// quotes and bad the bytes a string cannot hold as they are (a
		// control character, a backslash, a byte ≥ 0x80). For ASCII
		// bytes both flags are exact (t+0x7f has bit 7 set unless t is
		// zero, x+0x60 unless x < 0x20, and neither carries). A byte ≥
		// 0x80 may carry into the byte after it, but it is bad itself,
		// so the flags up to the first bad byte are exact, which is all
		// the loop uses. The same loop follows keyBody, written twice
		// on purpose: one loop reached by goto from both places was
		// 6-10 % slower (median of 301 alternations), and a call costs
		// more than a short string does.
		i++
		for {
			if n-i >= 8 {
				x := binary.LittleEndian.Uint64(b[i:])
				qf := ^((x ^ (swarOnes * '"')) + swarOnes*0x7f) & swarHigh
				bad := (x | ^(x + swarOnes*0x60) | ^((x ^ (swarOnes * '\\')) + swarOnes*0x7f)) & swarHigh
				if bad&(qf^(qf-1)) == 0 { // no bad byte up to the first quote
					if qf != 0 {
						i += bits.TrailingZeros64(qf)>>3 + 1
						break
					}
					i += 8
					continue
				}
				i += bits.TrailingZeros64(bad) >> 3
			} else {
				for i < n && plainStringByte[b[i]] {
					i++
				}
				if i >= n {
					return false
				}
			}
			if b[i] == '"' {
				i++
				break
			}
			if i = stringRest(b, i); i < 0 {
				return false
			}
		}
	case '{', '[':
		if len(stack) >= maxJSONDepth {
			return false
		}
		stack = append(stack, c)
		inObj = c == '{'
		i++
		if i < n && b[i] <= ' ' {
			for i < n && jsonSpace[b[i]] {
				i++
			}
		}
		if i < n && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
			i++
			stack = stack[:len(stack)-1]
			inObj = len(stack) > 0 && stack[len(stack)-1] == '{'
			goto after
		}
		if inObj {
			goto key
		}
		goto value
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
	default: // a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
		if c == '-' {
			i++
			if i >= n {
				return false
			}
			c = b[i]
		}
		if c-'1' < 9 {
			i++
			for i < n && b[i]-'0' < 10 {
				i++
			}
		} else if c == '0' {
			i++
		} else {
			return false
		}
		if i < n && (b[i] == '.' || b[i]|0x20 == 'e') {
			if i = fracExp(b, i); i < 0 {
				return false
			}
		}
	}
after: // a value ended at i
	if i < n && b[i] <= ' ' {
		for i < n && jsonSpace[b[i]] {
			i++
		}
	}
	if i < n {
		c = b[i]
		if c == ',' && len(stack) > 0 {
			i++
			if inObj {
				if i < n && b[i] == '"' { // the common case: no whitespace
					goto keyBody
				}
				goto key
			}
			goto value
		}
	}
	if len(stack) == 0 {
		return i == n
	}
	if i >= n || b[i] != stack[len(stack)-1]+2 {
		return false
	}
	i++
	stack = stack[:len(stack)-1]
	inObj = len(stack) > 0 && stack[len(stack)-1] == '{'
	goto after
key: // an object key starts at i, after optional whitespace
	if i < n && b[i] <= ' ' {
		for i < n && jsonSpace[b[i]] {
			i++
		}
	}
	if i >= n || b[i] != '"' {
		return false
	}
keyBody: // b[i] is the key's opening quote; its string is scanned as a value's is
	i++
	for {
		if n-i >= 8 {
			x := binary.LittleEndian.Uint64(b[i:])
			qf := ^((x ^ (swarOnes * '"')) + swarOnes*0x7f) & swarHigh
			bad := (x | ^(x + swarOnes*0x60) | ^((x ^ (swarOnes * '\\')) + swarOnes*0x7f)) & swarHigh
			if bad&(qf^(qf-1)) == 0 { // no bad byte up to the first quote
				if qf != 0 {
					i += bits.TrailingZeros64(qf)>>3 + 1
					break
				}
				i += 8
				continue
			}
			i += bits.TrailingZeros64(bad) >> 3
		} else {
			for i < n && plainStringByte[b[i]] {
				i++
			}
			if i >= n {
				return false
			}
		}
		if b[i] == '"' {
			i++
			break
		}
		if i = stringRest(b, i); i < 0 {
			return false
		}
	}
	if i < n && b[i] == ':' {
		i++
		goto value
	}
	for i < n && jsonSpace[b[i]] {
		i++
	}
	if i >= n || b[i] != ':' {
		return false
	}
	i++
	goto value
}

// stringRest checks the special byte at b[i] inside a string (not its
// closing quote): an escape, a UTF-8 sequence or a control character. It
// returns the index after it, or -1.
func stringRest(b []byte, i int) int {
	switch c := b[i]; {
	case c == '\\':
		i++
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			return i + 1
		case 'u':
			if len(b)-i < 5 || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
				return -1
			}
			return i + 5
		}
		return -1
	case c >= 0x80:
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return -1
		}
		return i + size
	}
	return -1 // a control character
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// fracExp checks a number's fraction and exponent, starting at b[i] ('.',
// 'e' or 'E'), and returns the index after them, or -1.
func fracExp(b []byte, i int) int {
	n := len(b)
	if b[i] == '.' {
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
