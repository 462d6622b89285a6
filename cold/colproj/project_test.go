package colproj

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The writer's seam (pqfile.Projector) is Project without a result.
var _ interface{ Project([]byte, []Value) } = (*Projector)(nil)

func v(i int64) Value     { return Value{Valid: true, I: i} }
func f(x float64) Value   { return Value{Valid: true, F: x} }
func s(x string) Value    { return Value{Valid: true, S: x} }
func bv(x bool) Value     { return Value{Valid: true, B: x} }
func ts(x string) Value   { t, _ := time.Parse(time.RFC3339Nano, x); return v(t.UnixMicro()) }
func null() Value         { return Value{} }
func col(t Type) []Column { return []Column{{Name: "c", Path: "$.x", Type: t}} }

// TestProjectTypes is the semantics of each type, one value at a time:
// what projects, what is NULL, and which NULLs count as misses.
func TestProjectTypes(t *testing.T) {
	dec := func(p, s int) []Column {
		return []Column{{Name: "c", Path: "$.x", Type: Decimal, Precision: p, Scale: s}}
	}
	cases := []struct {
		name  string
		cols  []Column
		value string
		want  Value
		miss  bool
	}{
		{"string", col(String), `{"x":"héllo"}`, s("héllo"), false},
		{"string escapes", col(String), `{"x":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"}`, s("a\"b\\c/d\b\f\n\r\té😀"), false},
		{"string lone surrogate", col(String), `{"x":"a\ud800b\udc00"}`, s("a\uFFFDb\uFFFD"), false},
		{"string from number", col(String), `{"x":12}`, null(), true},
		{"string from object", col(String), `{"x":{"y":"z"}}`, null(), true},
		{"null is no miss", col(String), `{"x":null}`, null(), false},
		{"missing field", col(String), `{"y":"x"}`, null(), true},
		{"not an object", col(String), `["x"]`, null(), true},
		{"not JSON", col(String), `{"x":"a"`, null(), true},
		{"binary", col(String), "\x00\x01\xff", null(), true},
		{"empty value", col(String), ``, null(), true},

		{"int64", col(Int64), `{"x":42}`, v(42), false},
		{"int64 negative", col(Int64), `{"x":-7}`, v(-7), false},
		{"int64 minus zero", col(Int64), `{"x":-0}`, v(0), false},
		{"int64 max", col(Int64), `{"x":9223372036854775807}`, v(math.MaxInt64), false},
		{"int64 min", col(Int64), `{"x":-9223372036854775808}`, v(math.MinInt64), false},
		{"int64 overflow", col(Int64), `{"x":9223372036854775808}`, null(), true},
		{"int64 underflow", col(Int64), `{"x":-9223372036854775809}`, null(), true},
		{"int64 20 digits", col(Int64), `{"x":10000000000000000000}`, null(), true},
		{"int64 fraction", col(Int64), `{"x":1.0}`, null(), true},
		{"int64 exponent", col(Int64), `{"x":1e3}`, null(), true},
		{"int64 string", col(Int64), `{"x":"42"}`, null(), true},
		{"int64 bool", col(Int64), `{"x":true}`, null(), true},

		{"double", col(Double), `{"x":1.5}`, f(1.5), false},
		{"double integer", col(Double), `{"x":-3}`, f(-3), false},
		{"double exponent", col(Double), `{"x":6.02E23}`, f(6.02e23), false},
		{"double nearest", col(Double), `{"x":0.1000000000000000055511151231257827}`, f(0.1), false},
		{"double underflow to zero", col(Double), `{"x":1e-400}`, f(0), false},
		{"double overflow", col(Double), `{"x":1e400}`, null(), true},
		{"double string", col(Double), `{"x":"1.5"}`, null(), true},

		{"bool true", col(Bool), `{"x":true}`, bv(true), false},
		{"bool false", col(Bool), `{"x":false}`, bv(false), false},
		{"bool number", col(Bool), `{"x":1}`, null(), true},
		{"bool string", col(Bool), `{"x":"true"}`, null(), true},

		{"timestamp Z", col(Timestamp), `{"x":"2026-12-02T08:15:00Z"}`, ts("2026-12-02T08:15:00Z"), false},
		{"timestamp offset", col(Timestamp), `{"x":"2026-12-02T09:15:00.5+01:00"}`, ts("2026-12-02T08:15:00.5Z"), false},
		{"timestamp negative offset", col(Timestamp), `{"x":"2026-12-01T23:00:00-09:30"}`, ts("2026-12-02T08:30:00Z"), false},
		{"timestamp micros", col(Timestamp), `{"x":"2026-12-02T08:15:00.123456Z"}`, v(1796199300123456), false},
		{"timestamp nanos floor", col(Timestamp), `{"x":"2026-12-02T08:15:00.123456999Z"}`, v(1796199300123456), false},
		{"timestamp before 1970 floors", col(Timestamp), `{"x":"1969-12-31T23:59:59.9999999Z"}`, v(-1), false},
		{"timestamp lower case and space", col(Timestamp), `{"x":"2026-12-02 08:15:00z"}`, ts("2026-12-02T08:15:00Z"), false},
		{"timestamp t", col(Timestamp), `{"x":"2026-12-02t08:15:00-00:00"}`, ts("2026-12-02T08:15:00Z"), false},
		{"timestamp leap day", col(Timestamp), `{"x":"2024-02-29T00:00:00Z"}`, ts("2024-02-29T00:00:00Z"), false},
		{"timestamp year 1", col(Timestamp), `{"x":"0001-01-01T00:00:00Z"}`, v(-62135596800000000), false},
		{"timestamp year 0", col(Timestamp), `{"x":"0000-03-01T00:00:00Z"}`, v(-62162035200000000), false},
		{"timestamp escaped", col(Timestamp), `{"x":"2026-12-02T08:15:00\u005a"}`, ts("2026-12-02T08:15:00Z"), false},
		{"timestamp no leap day", col(Timestamp), `{"x":"2026-02-29T00:00:00Z"}`, null(), true},
		{"timestamp 1900 no leap day", col(Timestamp), `{"x":"1900-02-29T00:00:00Z"}`, null(), true},
		{"timestamp leap second", col(Timestamp), `{"x":"2016-12-31T23:59:60Z"}`, null(), true},
		{"timestamp no zone", col(Timestamp), `{"x":"2026-12-02T08:15:00"}`, null(), true},
		{"timestamp date only", col(Timestamp), `{"x":"2026-12-02"}`, null(), true},
		{"timestamp 10 fraction digits", col(Timestamp), `{"x":"2026-12-02T08:15:00.1234567890Z"}`, null(), true},
		{"timestamp empty fraction", col(Timestamp), `{"x":"2026-12-02T08:15:00.Z"}`, null(), true},
		{"timestamp offset 24h", col(Timestamp), `{"x":"2026-12-02T08:15:00+24:00"}`, null(), true},
		{"timestamp hour 24", col(Timestamp), `{"x":"2026-12-02T24:00:00Z"}`, null(), true},
		{"timestamp month 13", col(Timestamp), `{"x":"2026-13-02T08:15:00Z"}`, null(), true},
		{"timestamp offset without colon", col(Timestamp), `{"x":"2026-12-02T08:15:00+0100"}`, null(), true},
		{"timestamp number", col(Timestamp), `{"x":1796199300}`, null(), true},

		{"decimal", dec(18, 4), `{"x":12.5}`, v(125000), false},
		{"decimal string", dec(18, 4), `{"x":"12.5"}`, v(125000), false},
		{"decimal negative", dec(18, 4), `{"x":-0.0001}`, v(-1), false},
		{"decimal trailing zeros", dec(18, 2), `{"x":1.2300000}`, v(123), false},
		{"decimal exponent", dec(18, 2), `{"x":1.5e2}`, v(15000), false},
		{"decimal negative exponent", dec(18, 4), `{"x":"15E-4"}`, v(15), false},
		{"decimal zero with huge exponent", dec(4, 2), `{"x":0e999999999999}`, v(0), false},
		{"decimal minus zero", dec(4, 2), `{"x":-0.000}`, v(0), false},
		{"decimal precision full", dec(18, 0), `{"x":999999999999999999}`, v(999999999999999999), false},
		{"decimal scale full", dec(4, 4), `{"x":0.9999}`, v(9999), false},
		{"decimal too precise", dec(18, 4), `{"x":1.23456}`, null(), true},
		{"decimal too many digits", dec(18, 0), `{"x":1000000000000000000}`, null(), true},
		{"decimal too large for p", dec(4, 2), `{"x":100}`, null(), true},
		{"decimal huge exponent", dec(18, 2), `{"x":1e999999999999999999999}`, null(), true},
		{"decimal tiny exponent", dec(18, 2), `{"x":1e-999999999999999999999}`, null(), true},
		{"decimal string not a number", dec(18, 2), `{"x":"12,5"}`, null(), true},
		{"decimal string with plus", dec(18, 2), `{"x":"+12.5"}`, null(), true},
		{"decimal string with spaces", dec(18, 2), `{"x":" 12.5"}`, null(), true},
		{"decimal string leading zero", dec(18, 2), `{"x":"012.5"}`, null(), true},
		{"decimal empty string", dec(18, 2), `{"x":""}`, null(), true},
		{"decimal bool", dec(18, 2), `{"x":true}`, null(), true},

		{"whole value", []Column{{Name: "c", Path: "$", Type: Double}}, ` 2.5 `, f(2.5), false},
		{"nested", []Column{{Name: "c", Path: "$.a.b", Type: Int64}}, `{"a":{"z":[1,{"b":9}],"b":7}}`, v(7), false},
		{"index", []Column{{Name: "c", Path: "$.a[2].b", Type: Int64}}, `{"a":[{"b":1},{"b":2},{"b":3}]}`, v(3), false},
		{"index past the end", []Column{{Name: "c", Path: "$.a[3]", Type: Int64}}, `{"a":[1,2,3]}`, null(), true},
		{"quoted key", []Column{{Name: "c", Path: "$['odd key']", Type: Int64}}, `{"odd key":5}`, v(5), false},
		{"escaped key", []Column{{Name: "c", Path: "$.px", Type: Int64}}, `{"p\u0078":5}`, v(5), false},
		{"duplicate key", col(Int64), `{"x":1,"x":2}`, null(), true},
		{"duplicate key escaped", col(Int64), `{"x":1,"\u0078":1}`, null(), true},
		{"duplicate parent", []Column{{Name: "c", Path: "$.a.b", Type: Int64}}, `{"a":{"b":1},"a":{"c":2}}`, null(), true},
		{"duplicate elsewhere is fine", col(Int64), `{"x":1,"y":{"z":1,"z":2},"y":3}`, v(1), false},
		{"invalid after the field", col(Int64), `{"x":1,"y":tru}`, null(), true},
		{"trailing garbage", col(Int64), `{"x":1} x`, null(), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.cols)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]Value, 1)
			ok := p.ProjectValid([]byte(tc.value), out)
			if want := utf8.ValidString(tc.value) && json.Valid([]byte(tc.value)); ok != want {
				t.Errorf("Project reports valid %v, want %v", ok, want)
			}
			if out[0] != tc.want {
				t.Errorf("Project = %+v, want %+v", out[0], tc.want)
			}
			if got := p.Misses()[0]; got != map[bool]int64{true: 1}[tc.miss] {
				t.Errorf("misses = %d, want miss %v", got, tc.miss)
			}
		})
	}
}

// TestProjectMany projects several columns, sharing and overlapping paths,
// over several values: one parse each, and each column's misses counted.
func TestProjectMany(t *testing.T) {
	cols := []Column{
		{Name: "px", Path: "$.px", Type: Double},
		{Name: "qty", Path: "$.qty", Type: Int64},
		{Name: "side", Path: "$.side", Type: String},
		{Name: "venue", Path: "$.meta.venue", Type: String},
		{Name: "meta", Path: "$.meta", Type: String}, // an object: always a miss
		{Name: "first", Path: "$.fills[0].px", Type: Decimal, Precision: 10, Scale: 2},
		{Name: "second", Path: "$.fills[1].px", Type: Decimal, Precision: 10, Scale: 2},
		{Name: "at", Path: "$.meta.at", Type: Timestamp},
		{Name: "px2", Path: "$['px']", Type: Double},
	}
	p, err := New(cols)
	if err != nil {
		t.Fatal(err)
	}
	values := []string{
		`{"px":101.25,"qty":3,"side":"buy","meta":{"venue":"X","at":"2026-12-02T08:00:00Z"},"fills":[{"px":"101.20"},{"px":101.3}]}`,
		`{"side":"sell","qty":1.5,"fills":[],"meta":{"venue":null}}`,
		`not json`,
	}
	want := [][]Value{
		{f(101.25), v(3), s("buy"), s("X"), null(), v(10120), v(10130), ts("2026-12-02T08:00:00Z"), f(101.25)},
		{null(), null(), s("sell"), null(), null(), null(), null(), null(), null()},
		{null(), null(), null(), null(), null(), null(), null(), null(), null()},
	}
	out := make([]Value, len(cols))
	for i, val := range values {
		p.Project([]byte(val), out)
		for c := range cols {
			if out[c] != want[i][c] {
				t.Errorf("value %d column %s = %+v, want %+v", i, cols[c].Name, out[c], want[i][c])
			}
		}
	}
	// venue was null in value 1: no miss there.
	wantMisses := []int64{2, 2, 1, 1, 3, 2, 2, 2, 2}
	got := p.Misses()
	for c := range cols {
		if got[c] != wantMisses[c] {
			t.Errorf("misses of %s = %d, want %d", cols[c].Name, got[c], wantMisses[c])
		}
	}
	p.ResetMisses()
	if m := p.Misses(); m[0] != 0 {
		t.Errorf("after ResetMisses: %v", m)
	}
	// A short out is filled as far as it goes, never past it.
	short := make([]Value, 2)
	p.ProjectValid([]byte(values[0]), short)
	if short[0] != f(101.25) || short[1] != v(3) {
		t.Errorf("short out = %+v", short)
	}
}

// TestValidMatchesStdlib: Project's and Valid's verdict is exactly
// utf8.Valid && json.Valid, on the cases where scanners usually differ.
func TestValidMatchesStdlib(t *testing.T) {
	values := []string{
		``, ` `, `0`, `-0`, `-`, `01`, `1.`, `.5`, `1e`, `1e+`, `1E-2`, `+1`, `1.5e3`, `0x10`, `NaN`, `Infinity`, `-Infinity`,
		`true`, `tru`, `truex`, `null`, `nul`, `""`, `"`, `"\"`, `"\u12"`, `"\u12G4"`, `"\x"`, `"\'"`, "\"a\tb\"", "\"a\x7fb\"",
		"\"\xff\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\xf4\x90\x80\x80\"", "\"é\"", "\"\xe2\x82\"",
		`{}`, `{ }`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{1:2}`, `{'a':1}`, `{"a":1}}`,
		`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[[[]]`, `[]]`, "\t\r\n[1]\n", "\v[1]", "\u00a0[1]", "[1]\x00",
		"\xef\xbb\xbf{}", `{"a":[1,{"b":null}],"c":"d"}`, "{\"a\":\"\xff\"}", "[\"\xff\"]",
	}
	p, _ := New([]Column{{Name: "a", Path: "$.a", Type: String}, {Name: "b", Path: "$[0]", Type: String}})
	out := make([]Value, 2)
	for _, val := range values {
		want := utf8.ValidString(val) && json.Valid([]byte(val))
		if got := Valid([]byte(val)); got != want {
			t.Errorf("Valid(%q) = %v, want %v", val, got, want)
		}
		if got := p.ProjectValid([]byte(val), out); got != want {
			t.Errorf("Project(%q) reports %v, want %v", val, got, want)
		}
	}
}

// TestDepthLimit: nesting up to encoding/json's 10000 is JSON, one more is
// not, wherever the nesting is (under a column's path or not).
func TestDepthLimit(t *testing.T) {
	p, _ := New([]Column{{Name: "a", Path: "$[0][0]", Type: Int64}, {Name: "b", Path: "$.a", Type: Int64}})
	out := make([]Value, 2)
	for _, d := range []int{maxDepth - 1, maxDepth, maxDepth + 1, 100000} {
		for _, val := range []string{
			strings.Repeat("[", d) + strings.Repeat("]", d),
			`{"a":` + strings.Repeat("[", d-1) + strings.Repeat("]", d-1) + `}`,
			strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d),
		} {
			want := json.Valid([]byte(val))
			if got := Valid([]byte(val)); got != want {
				t.Errorf("depth %d: Valid = %v, json.Valid = %v", d, got, want)
			}
			if got := p.ProjectValid([]byte(val), out); got != want {
				t.Errorf("depth %d: Project = %v, json.Valid = %v", d, got, want)
			}
		}
	}
}

// TestHostile: values built to cost a naive projector dearly are scanned
// in time linear in their size. Generous bounds: a hang is minutes.
func TestHostile(t *testing.T) {
	var cols []Column
	for i := range 64 {
		cols = append(cols, Column{Name: "c" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Path: "$.k" + strings.Repeat("y", i), Type: String})
	}
	cols = append(cols, Column{Name: "deep", Path: "$.a[1000000]", Type: Int64})
	p, err := New(cols)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Value, len(cols))
	many := func(n int, item string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strings.ReplaceAll(item, "#", string(rune('0'+i%10))))
		}
		b.WriteString("}")
		return b.String()
	}
	values := []string{
		many(200000, `"ky#":1`), // many keys near the columns' names
		many(100000, `"kyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy#":"v"`), // long near-miss keys
		`{"a":[` + strings.Repeat("1,", 1<<20) + `1]}`,                      // a long array under an indexed path
		strings.Repeat("[", 1<<20),                                          // deep, never closed
		`{"k":"` + strings.Repeat(`\u00e9`, 1<<18) + `"}`,                   // a long escaped string to project
		many(100000, `"k":"x"`),                                             // one column's key, 100 000 times
	}
	start := time.Now()
	for _, val := range values {
		got := p.ProjectValid([]byte(val), out)
		if want := json.Valid([]byte(val)); got != want {
			t.Errorf("Project of a %d-byte value: valid %v, want %v", len(val), got, want)
		}
	}
	if el := time.Since(start); el > time.Minute {
		t.Errorf("hostile values took %v", el)
	}
	if out[0].Valid {
		t.Errorf("a key given 100000 times projected %+v", out[0])
	}
}
