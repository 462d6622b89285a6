package colproj

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzCols covers every type, nested and indexed paths, quoted keys and
// two columns on one path.
var fuzzCols = []Column{
	{Name: "s", Path: "$.s", Type: String},
	{Name: "i", Path: "$.i", Type: Int64},
	{Name: "d", Path: "$.d", Type: Double},
	{Name: "b", Path: "$.b", Type: Bool},
	{Name: "t", Path: "$.t", Type: Timestamp},
	{Name: "m", Path: "$.m", Type: Decimal, Precision: 9, Scale: 3},
	{Name: "ms", Path: "$.a.b[1]", Type: Decimal, Precision: 18, Scale: 0},
	{Name: "nested", Path: "$.a.b[0]", Type: String},
	{Name: "as_int", Path: "$.d", Type: Int64},
	{Name: "odd", Path: "$['x y']", Type: String},
	{Name: "top", Path: "$[0]", Type: Double},
	{Name: "whole", Path: "$", Type: Int64},
}

// FuzzProject checks, on any bytes, that Project never panics, that its
// verdict is utf8.Valid && json.Valid, and that each column equals a
// reference built on encoding/json's tokenizer.
func FuzzProject(f *testing.F) {
	for _, seed := range []string{
		`{"s":"x","i":1,"d":1.5,"b":true,"t":"2026-12-02T08:15:00Z","m":"1.25","a":{"b":["q",12]},"x y":"z"}`,
		`{"s":"\ud83d\ude00","i":-9223372036854775808,"d":1e308,"m":12.5e-1,"t":"1969-12-31 23:59:59.999999999-01:30"}`,
		`{"i":1,"i":2,"a":{"b":[1]},"a":null}`, `[1.5,2]`, `12`, `null`, `"s"`, "\xff", `{"s":"a\u0000"}`,
		`[[[[[[[[[[]]]]]]]]]]`, `{"d":-0.0,"m":999999.9995}`, `{"m":"1e3","t":"2024-02-29T23:59:59.1+23:59"}`,
	} {
		f.Add([]byte(seed))
	}
	p, err := New(fuzzCols)
	if err != nil {
		f.Fatal(err)
	}
	out := make([]Value, len(fuzzCols))
	f.Fuzz(func(t *testing.T, value []byte) {
		before := p.Misses()
		ok := p.ProjectValid(value, out)
		if want := utf8.Valid(value) && json.Valid(value); ok != want {
			t.Fatalf("Project reports %v, utf8.Valid && json.Valid %v", ok, want)
		}
		if Valid(value) != ok {
			t.Fatalf("Valid disagrees with Project (%v)", ok)
		}
		after := p.Misses()
		var doc any
		if ok {
			doc, err = refDecode(value)
			if err != nil {
				t.Fatalf("reference decoder failed on a valid value: %v", err)
			}
		}
		for c, col := range fuzzCols {
			want, null := Value{}, false
			if ok {
				want, null = refProject(doc, col)
			}
			if out[c] != want {
				t.Errorf("column %s (%s %s) = %+v, reference %+v", col.Name, col.Type, col.Path, out[c], want)
			}
			if miss := after[c] - before[c]; miss != map[bool]int64{true: 1}[!want.Valid && !null] {
				t.Errorf("column %s counted %d misses; reference valid %v null %v", col.Name, miss, want.Valid, null)
			}
		}
	})
}

// refObject is an object with its keys in order, duplicates kept.
type refObject struct {
	keys []string
	vals []any
}

// dupValue marks a path with a duplicate key.
type dupValue struct{}

// refDecode decodes value with encoding/json's tokenizer into refObject,
// []any, json.Number, string, bool and nil.
func refDecode(value []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(value))
	d.UseNumber()
	v, err := refValue(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the value")
	}
	return v, nil
}

func refValue(d *json.Decoder) (any, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &refObject{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return nil, err
			}
			v, err := refValue(d)
			if err != nil {
				return nil, err
			}
			o.keys = append(o.keys, k.(string))
			o.vals = append(o.vals, v)
		}
		_, err := d.Token()
		return o, err
	case json.Delim('['):
		var a []any
		for d.More() {
			v, err := refValue(d)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := d.Token()
		return a, err
	}
	return tok, nil
}

// refProject is the documented semantics, written the obvious way.
func refProject(doc any, col Column) (v Value, null bool) {
	steps, _ := parsePath(col.Path)
	for _, st := range steps {
		switch n := doc.(type) {
		case *refObject:
			if st.index >= 0 {
				return Value{}, false
			}
			found := 0
			for i, k := range n.keys {
				if k == st.key {
					found++
					doc = n.vals[i]
				}
			}
			if found != 1 {
				return Value{}, false
			}
		case []any:
			if st.index < 0 || st.index >= len(n) {
				return Value{}, false
			}
			doc = n[st.index]
		default:
			return Value{}, false
		}
	}
	switch x := doc.(type) {
	case nil:
		return Value{}, true
	case string:
		switch col.Type {
		case String:
			return Value{Valid: true, S: x}, false
		case Timestamp:
			return refTimestamp(x)
		case Decimal:
			return refDecimal(x, col)
		}
	case bool:
		if col.Type == Bool {
			return Value{Valid: true, B: x}, false
		}
	case json.Number:
		switch col.Type {
		case Int64:
			if !strings.ContainsAny(string(x), ".eE") {
				if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
					return Value{Valid: true, I: i}, false
				}
			}
		case Double:
			if fl, err := strconv.ParseFloat(string(x), 64); err == nil && !math.IsInf(fl, 0) {
				return Value{Valid: true, F: fl}, false
			}
		case Decimal:
			return refDecimal(string(x), col)
		}
	}
	return Value{}, false
}

// refTimestamp parses with the time package (after mapping the spellings
// RFC 3339 allows that it does not: t, z, a space) and floors to micros.
func refTimestamp(s string) (Value, bool) {
	if len(s) < 20 || len(s) > 35 || strings.ContainsAny(s, ",") {
		return Value{}, false
	}
	norm := []byte(s)
	if norm[10] == 't' || norm[10] == ' ' {
		norm[10] = 'T'
	}
	if norm[len(norm)-1] == 'z' {
		norm[len(norm)-1] = 'Z'
	}
	// The time package accepts what RFC 3339 does not (a 24:00 offset, no
	// colon); reject the shapes the grammar excludes before asking it.
	tail := norm[19:]
	if i := bytes.IndexAny(tail, "Z+-"); i < 0 || (tail[i] != 'Z' && len(tail)-i != 6) || (tail[i] == 'Z' && i != len(tail)-1) {
		return Value{}, false
	} else if frac := tail[:i]; len(frac) > 0 && (frac[0] != '.' || len(frac) < 2 || len(frac) > 10 || bytes.ContainsFunc(frac[1:], func(r rune) bool { return r < '0' || r > '9' })) {
		return Value{}, false
	}
	tm, err := time.Parse(time.RFC3339Nano, string(norm))
	if err != nil {
		return Value{}, false
	}
	us := tm.Unix()*1_000_000 + int64(tm.Nanosecond()/1000)
	return Value{Valid: true, I: us}, false
}

// refDecimal uses math/big: the number times 10^scale must be an integer
// of at most p digits.
func refDecimal(s string, col Column) (Value, bool) {
	sc := scanner{b: []byte(s)}
	if s == "" || !sc.num() || sc.i != len(s) {
		return Value{}, false
	}
	mant, exp := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.ParseInt(strings.TrimPrefix(s[i+1:], "+"), 10, 64)
		if err != nil || e > 10000 || e < -10000 { // beyond any value of the fuzzer's length
			if strings.Trim(mant, "-0.") == "" {
				return Value{Valid: true}, false
			}
			return Value{}, false
		}
		exp = e
	}
	r, ok := new(big.Rat).SetString(mant)
	if !ok {
		return Value{}, false
	}
	shift := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(abs(exp+int64(col.Scale))), nil))
	if exp+int64(col.Scale) >= 0 {
		r.Mul(r, shift)
	} else {
		r.Quo(r, shift)
	}
	if !r.IsInt() {
		return Value{}, false
	}
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(col.Precision)), nil)
	n := r.Num()
	if new(big.Int).Abs(n).Cmp(limit) >= 0 {
		return Value{}, false
	}
	return Value{Valid: true, I: n.Int64()}, false
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
