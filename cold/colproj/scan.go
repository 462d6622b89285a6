package colproj

import (
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit (scanner.go maxNestingDepth):
// a value nested deeper is invalid there, so it is here too, and the
// scanner's stack is bounded.
const maxDepth = 10000

// node is one step of the paths of a Projector's columns: the columns that
// end here, and where the paths go on.
type node struct {
	cols []int // columns whose path ends here
	sub  []int // columns whose path goes through or ends here
	keys []keyChild
	kmap map[string]*node // keys as a map when there are many
	idx  []idxChild       // sorted by index
	// stamp is the Project call that last reached this node: reaching it
	// twice in one value means a duplicate key on the path.
	stamp uint64
}

type keyChild struct {
	key string
	n   *node
}

type idxChild struct {
	index int
	n     *node
}

// mapAbove is how many keys a node holds in a slice before it uses a map.
const mapAbove = 8

func (n *node) hasChildren() bool { return len(n.keys) > 0 || len(n.idx) > 0 }

func (n *node) key(k []byte) *node {
	if n.kmap != nil {
		return n.kmap[string(k)]
	}
	for _, c := range n.keys {
		if c.key == string(k) {
			return c.n
		}
	}
	return nil
}

// scanner is one Project call's pass over a value.
type scanner struct {
	b   []byte
	i   int
	gen uint64
	// stack is the containers the skipper is inside, a bit each (1 an
	// object, 0 an array): a fixed array, so that Valid allocates nothing.
	stack [(maxDepth + 63) / 64]uint64
	keyb  []byte // a key with escapes, unescaped
	start []int  // per column: the value's span, or -1
	end   []int
	dup   []bool // per column: its path had a duplicate key
}

// class of each byte inside a JSON string: 0 plain ASCII, 1 stop ('"',
// '\\', a control byte or a non-ASCII byte that needs a closer look).
var strStop = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80
	}
	return
}()

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// document scans the whole value from root: exactly one JSON value with
// optional whitespace around it.
func (s *scanner) document(root *node) bool {
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	if !s.value(root, 0) {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

// value scans the value at s.i (not whitespace, s.i in range) reached
// through n (nil: no column's path goes here) at nesting depth.
func (s *scanner) value(n *node, depth int) bool {
	if n == nil {
		return s.skip(depth)
	}
	if n.stamp == s.gen {
		for _, c := range n.sub {
			s.dup[c] = true
		}
		return s.skip(depth)
	}
	n.stamp = s.gen
	start := s.i
	var ok bool
	switch {
	case n.hasChildren() && s.b[s.i] == '{':
		ok = s.object(n, depth)
	case n.hasChildren() && s.b[s.i] == '[':
		ok = s.array(n, depth)
	default:
		ok = s.skip(depth)
	}
	if !ok {
		return false
	}
	for _, c := range n.cols {
		s.start[c], s.end[c] = start, s.i
	}
	return true
}

// object scans an object whose keys may lead to columns.
func (s *scanner) object(n *node, depth int) bool {
	if depth++; depth > maxDepth {
		return false
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		kstart := s.i + 1
		esc, ok := s.str()
		if !ok {
			return false
		}
		var child *node
		if len(n.keys) > 0 {
			k := s.b[kstart : s.i-1]
			if esc {
				s.keyb = unescape(s.keyb[:0], k)
				k = s.keyb
			}
			child = n.key(k)
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if s.i >= len(s.b) || !s.value(child, depth) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// array scans an array whose elements may lead to columns.
func (s *scanner) array(n *node, depth int) bool {
	if depth++; depth > maxDepth {
		return false
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true
	}
	next := 0 // n.idx[next] is the first child not passed yet
	for k := 0; ; k++ {
		var child *node
		for next < len(n.idx) && n.idx[next].index < k {
			next++
		}
		if next < len(n.idx) && n.idx[next].index == k {
			child = n.idx[next].n
		}
		if s.i >= len(s.b) || !s.value(child, depth) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// skip scans and validates one value no column wants, at s.i (not
// whitespace), iteratively: its nesting is bounded by maxDepth only.
func (s *scanner) skip(depth int) bool {
	b := s.b
	n := 0 // containers open, their kinds in s.stack
	for {
		// A value starts at s.i (after whitespace).
		s.ws()
		if s.i >= len(b) {
			return false
		}
		switch c := b[s.i]; c {
		case '{', '[':
			if depth+n+1 > maxDepth {
				return false
			}
			s.i++
			s.ws()
			if s.i < len(b) && (c == '{' && b[s.i] == '}' || c == '[' && b[s.i] == ']') {
				s.i++
				break
			}
			if c == '{' {
				s.stack[n/64] |= 1 << (n % 64)
			} else {
				s.stack[n/64] &^= 1 << (n % 64)
			}
			n++
			if c == '{' && !s.member() {
				return false
			}
			continue // to the first element's value
		case '"':
			if _, ok := s.str(); !ok {
				return false
			}
		case 't':
			if !s.lit("true") {
				return false
			}
		case 'f':
			if !s.lit("false") {
				return false
			}
		case 'n':
			if !s.lit("null") {
				return false
			}
		default:
			if !s.num() {
				return false
			}
		}
		// After a value: close containers, or go on to the next element.
		for {
			if n == 0 {
				return true
			}
			s.ws()
			if s.i >= len(b) {
				return false
			}
			obj := s.stack[(n-1)/64]&(1<<((n-1)%64)) != 0
			c := b[s.i]
			if c == ',' {
				s.i++
				if obj {
					s.ws()
					if !s.member() {
						return false
					}
				}
				break
			}
			if obj && c == '}' || !obj && c == ']' {
				s.i++
				n--
				continue
			}
			return false
		}
	}
}

// member scans an object member's key and colon, at s.i (not whitespace).
func (s *scanner) member() bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	if _, ok := s.str(); !ok {
		return false
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return false
	}
	s.i++
	return true
}

func (s *scanner) lit(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// str scans a string at s.i ('"'), checking its escapes and that it is
// UTF-8, and reports whether it has escapes.
func (s *scanner) str() (esc, ok bool) {
	b := s.b
	i := s.i + 1
	for {
		for i < len(b) && !strStop[b[i]] {
			i++
		}
		if i >= len(b) {
			return false, false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return esc, true
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return false, false
				}
				for _, h := range b[i+2 : i+6] {
					if hexVal(h) < 0 {
						return false, false
					}
				}
				i += 6
			default:
				return false, false
			}
		case c < 0x20:
			return false, false
		default: // non-ASCII
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return false, false
			}
			i += size
		}
	}
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// num scans a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) num() bool {
	b := s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	s.i = i
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// unescape appends the text of a JSON string's contents k (escapes already
// checked by str) to dst, as encoding/json decodes it: a \u escape of a
// lone UTF-16 surrogate becomes U+FFFD.
func unescape(dst, k []byte) []byte {
	for i := 0; i < len(k); {
		c := k[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch k[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(k[i+2:])
			i += 6
			if r >= 0xD800 && r < 0xDC00 && i+6 <= len(k) && k[i] == '\\' && k[i+1] == 'u' {
				if r2 := hex4(k[i+2:]); r2 >= 0xDC00 && r2 < 0xE000 {
					dst = utf8.AppendRune(dst, (r-0xD800)<<10+(r2-0xDC00)+0x10000)
					i += 6
					continue
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // " \ /
			dst = append(dst, k[i+1])
		}
		i += 2
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r = r<<4 | rune(hexVal(c))
	}
	return r
}
