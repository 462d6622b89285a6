package colproj

import (
	"math"
	"slices"
	"strconv"
	"unsafe"
)

// Value is one column's projection of one record value. I holds an int64,
// a timestamp's microseconds since the Unix epoch (UTC), and a decimal's
// unscaled value; F a double; S a string; B a bool. Valid false is NULL.
type Value struct {
	Valid bool
	I     int64
	F     float64
	S     string
	B     bool
}

// Projector projects a fixed list of columns out of JSON values. It is not
// safe for concurrent use: a file writer owns one.
type Projector struct {
	cols   []Column
	root   *node
	scan   scanner
	misses []int64
}

// New returns a Projector of cols, which must pass Validate.
func New(cols []Column) (*Projector, error) {
	if err := Validate(cols); err != nil {
		return nil, err
	}
	p := &Projector{cols: slices.Clone(cols), root: &node{}, misses: make([]int64, len(cols))}
	for c, col := range cols {
		steps, _ := parsePath(col.Path) // checked by Validate
		n := p.root
		n.sub = append(n.sub, c)
		for _, st := range steps {
			n = n.child(st)
			n.sub = append(n.sub, c)
		}
		n.cols = append(n.cols, c)
	}
	p.scan.start = make([]int, len(cols))
	p.scan.end = make([]int, len(cols))
	p.scan.dup = make([]bool, len(cols))
	return p, nil
}

// child returns n's child for st, adding it.
func (n *node) child(st step) *node {
	if st.index >= 0 {
		i, found := slices.BinarySearchFunc(n.idx, st.index, func(c idxChild, k int) int { return c.index - k })
		if !found {
			n.idx = slices.Insert(n.idx, i, idxChild{index: st.index, n: &node{}})
		}
		return n.idx[i].n
	}
	if c := n.key([]byte(st.key)); c != nil {
		return c
	}
	c := &node{}
	n.keys = append(n.keys, keyChild{key: st.key, n: c})
	if len(n.keys) > mapAbove {
		if n.kmap == nil {
			n.kmap = make(map[string]*node, len(n.keys))
			for _, k := range n.keys {
				n.kmap[k.key] = k.n
			}
		}
		n.kmap[st.key] = c
	}
	return c
}

// Columns returns the projector's columns.
func (p *Projector) Columns() []Column { return slices.Clone(p.cols) }

// Misses returns, per column, how many values projected so far were NULL
// because the value was not JSON, lacked the field, held another type or a
// number the column cannot hold exactly, or had a duplicate key on the
// path. A JSON null is not a miss.
func (p *Projector) Misses() []int64 { return slices.Clone(p.misses) }

// ResetMisses sets the miss counts to zero (a writer reports them per file).
func (p *Projector) ResetMisses() { clear(p.misses) }

// Project reads value once and sets out[i] to column i's projection (out
// should have len(Columns()); extra entries are left alone, missing ones
// are not projected). A value that is not JSON and UTF-8 projects NULL in
// every column. It never panics, does not keep value, and works in time
// linear in len(value).
func (p *Projector) Project(value []byte, out []Value) { p.ProjectValid(value, out) }

// ProjectValid is Project, also reporting whether value is JSON and UTF-8,
// exactly as utf8.Valid(value) && json.Valid(value) would: a writer that
// must choose between a JSON and a binary column learns it from the same
// pass.
func (p *Projector) ProjectValid(value []byte, out []Value) bool {
	s := &p.scan
	s.b, s.i = value, 0
	s.gen++
	for c := range p.cols {
		s.start[c] = -1
		s.dup[c] = false
	}
	ok := s.document(p.root)
	for c := range min(len(p.cols), len(out)) {
		v := Value{}
		null := false
		if ok && s.start[c] >= 0 && !s.dup[c] {
			v, null = convert(p.cols[c], value[s.start[c]:s.end[c]])
		}
		out[c] = v
		if !v.Valid && !null {
			p.misses[c]++
		}
	}
	s.b = nil
	return ok
}

// Valid reports whether value is JSON and UTF-8, as utf8.Valid(value) &&
// json.Valid(value) do, in one pass.
func Valid(value []byte) bool {
	s := scanner{b: value}
	return s.document(nil)
}

// convert projects one value's span tok (a valid JSON value) as col; null
// reports a JSON null.
func convert(col Column, tok []byte) (v Value, null bool) {
	if len(tok) == 0 {
		return Value{}, false
	}
	if tok[0] == 'n' {
		return Value{}, true
	}
	switch col.Type {
	case String:
		if tok[0] == '"' {
			return Value{Valid: true, S: stringOf(tok)}, false
		}
	case Bool:
		if tok[0] == 't' || tok[0] == 'f' {
			return Value{Valid: true, B: tok[0] == 't'}, false
		}
	case Int64:
		if i, ok := parseInt(tok); ok {
			return Value{Valid: true, I: i}, false
		}
	case Double:
		if tok[0] == '-' || isDigit(tok[0]) {
			f, err := strconv.ParseFloat(unsafe.String(&tok[0], len(tok)), 64)
			if err == nil && !math.IsInf(f, 0) {
				return Value{Valid: true, F: f}, false
			}
		}
	case Timestamp:
		if tok[0] == '"' {
			if us, ok := parseTimestamp(stringBytes(tok)); ok {
				return Value{Valid: true, I: us}, false
			}
		}
	case Decimal:
		num := tok
		if tok[0] == '"' {
			num = stringBytes(tok)
		}
		if u, ok := parseDecimal(num, col.Precision, col.Scale); ok {
			return Value{Valid: true, I: u}, false
		}
	}
	return Value{}, false
}

// stringBytes returns a JSON string token's text, unescaped (a new slice
// when it has escapes).
func stringBytes(tok []byte) []byte {
	in := tok[1 : len(tok)-1]
	if slices.Contains(in, '\\') {
		return unescape(make([]byte, 0, len(in)), in)
	}
	return in
}

func stringOf(tok []byte) string {
	in := tok[1 : len(tok)-1]
	if slices.Contains(in, '\\') {
		b := unescape(make([]byte, 0, len(in)), in)
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	return string(in)
}

// parseInt parses a JSON integer token (no fraction or exponent) in int64's
// range.
func parseInt(tok []byte) (int64, bool) {
	neg := tok[0] == '-'
	d := tok
	if neg {
		d = d[1:]
	}
	if len(d) == 0 || len(d) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range d {
		if !isDigit(c) {
			return 0, false
		}
		u = u*10 + uint64(c-'0') // 19 digits fit in a uint64
	}
	switch {
	case neg && u <= 1<<63:
		return int64(-u), true
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}
