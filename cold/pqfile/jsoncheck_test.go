package pqfile

import (
	"encoding/json"
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
