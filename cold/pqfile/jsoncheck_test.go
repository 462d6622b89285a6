package pqfile

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonCases are values at the edges of JSON's grammar and of UTF-8.
var jsonCases = []string{
	``, ` `, `{}`, `[]`, ` {} `, "\t[1,2]\r\n", `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `[1,]`, `[,1]`,
	`"x"`, `"x`, `"\u00e9"`, `"\u00g9"`, `"\ud800"`, `"\x"`, `"\/"`, "\"a\tb\"", "\"a\x7fb\"",
	`0`, `-0`, `01`, `-`, `1.`, `.1`, `1.5e10`, `1E+2`, `1e`, `1e-`, `-1.0E-0`, `1 2`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `NaN`, `Infinity`,
	"\"\xff\"", "\"\xc3\xa9\"", "{\"k\":\"\xe6\x97\xa5\"}", "\xef\xbb\xbf{}", `{"a":[{"b":null}]}`, `[[[]]]`, `[[[]]`,
	`{"a":1}}`, `{"a":{"b":2}`, "{\"a\":\"b\"\x00}", `{"":""}`, `[true,false,null,-1.5e3,"s",{}]`,
}

func TestIsJSONAgreesWithEncodingJSON(t *testing.T) {
	cases := append([]string(nil), jsonCases...)
	// encoding/json's nesting limit: 10000 levels are valid, 10001 not.
	for _, n := range []int{maxJSONDepth, maxJSONDepth + 1} {
		cases = append(cases, strings.Repeat("[", n)+strings.Repeat("]", n))
		cases = append(cases, strings.Repeat(`{"a":`, n)+"1"+strings.Repeat("}", n))
	}
	// Every byte at every position of the eight-byte words jsonString
	// tests at once, alone and after another byte that borrows.
	for c := range 256 {
		for p := range 12 {
			for _, before := range []byte{'a', 0x00, '"', 0x1f, 0x80} {
				s := []byte(`["` + strings.Repeat("a", 12) + `"]`)
				if p > 0 {
					s[2+p-1] = before
				}
				s[2+p] = byte(c)
				cases = append(cases, string(s))
			}
		}
	}
	for _, c := range cases {
		want := utf8.ValidString(c) && json.Valid([]byte(c))
		if got := IsJSON([]byte(c)); got != want {
			t.Errorf("IsJSON(%.60q) = %t, utf8.Valid && json.Valid = %t", c, got, want)
		}
	}
}

// FuzzIsJSON: IsJSON is exactly utf8.Valid && json.Valid.
func FuzzIsJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	for _, r := range benchRecords(20) {
		f.Add(r.Value)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := IsJSON(b), utf8.Valid(b) && json.Valid(b); got != want {
			t.Fatalf("IsJSON(%q) = %t, utf8.Valid && json.Valid = %t", b, got, want)
		}
	})
}

// TestIsJSONRandom compares IsJSON with encoding/json on values built from
// JSON's tokens, bytes that break them, and the bench's values mutated: a
// fuzzer reaches these too, but this runs in every 'make test'.
func TestIsJSONRandom(t *testing.T) {
	pieces := []string{
		`{`, `}`, `[`, `]`, `:`, `,`, ` `, "\t", "\n", `"`, `\`, `"k"`, `"ab\"c"`, `"\u00e9"`, `"\ud83d\ude00"`,
		`0`, `-`, `1`, `23456789`, `.`, `e`, `E`, `+`, `true`, `false`, `null`, `tru`, "\x00", "\x1f", "\x7f",
		"\xc3\xa9", "\xe6\x97\xa5", "\xff", "\xc3", "\xed\xa0\x80", `"0123456789abcdef"`, `-0.5e-7`, `1E+9`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	bench := benchRecords(64)
	check := func(b []byte) {
		if got, want := IsJSON(b), utf8.Valid(b) && json.Valid(b); got != want {
			t.Fatalf("IsJSON(%q) = %t, utf8.Valid && json.Valid = %t", b, got, want)
		}
	}
	for range 200_000 {
		var b []byte
		for range rng.IntN(24) {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		check(b)
		// A valid value with one byte changed, removed or inserted.
		v := append([]byte(nil), bench[rng.IntN(len(bench))].Value...)
		p := rng.IntN(len(v))
		switch rng.IntN(3) {
		case 0:
			v[p] = byte(rng.IntN(256))
		case 1:
			v = append(v[:p], v[p+1:]...)
		default:
			v = append(v[:p], append([]byte{byte(rng.IntN(256))}, v[p:]...)...)
		}
		check(v)
	}
}
