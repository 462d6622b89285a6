package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func benchBody(n, size int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"key":"k%d","ts":"2026-11-22T10:00:00.123456789Z","tags":["fill"],"value":"%s"}`+"\n", i%16, strings.Repeat("a", size-2))
	}
	return b.Bytes()
}

// BenchmarkParseNDJSON parses a batch of 100 records of 200 bytes, the
// batch tierbench's HTTP ingest sends.
func BenchmarkParseNDJSON(b *testing.B) {
	for _, size := range []int{200, 1024} {
		body := benchBody(100, size)
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for i := 0; i < b.N; i++ {
				if _, err := ParseNDJSON(bytes.NewReader(body), ParseOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzParseRecordGrammar holds the hand-written scanner to encoding/json:
// a line it accepts is valid JSON whose fields decode to the same record,
// and a line that is not valid JSON is rejected as invalid JSON.
func FuzzParseRecordGrammar(f *testing.F) {
	for _, s := range []string{
		`{"key":"k","ts":"2026-11-22T10:00:00.123456789Z","tags":["a","b"],"value":{"x": [1, 2.5e3, -0, true, null, "s\u00e9\ud83d\ude00"]}}`,
		`{"value_b64":"AP8="}`, `{"ts":-5,"value":[ ]}`, `{"key":"a\"b\\c\/\b\f\n\r\t"}`, `{}`, ` { } `, `{"value":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.ContainsAny(line, "\n") || isBlank(line) {
			return
		}
		var ar arena
		rec, err := parseRecord(line, &ParseOptions{MaxRecordBytes: 1 << 20}, &ar)
		// Unlike encoding/json, which replaces them, the API rejects
		// invalid UTF-8 bytes: they are a malformed line.
		valid := json.Valid(line) && utf8.Valid(line)
		if !valid {
			if err == nil || !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("invalid JSON %q: err = %v, want ErrInvalidJSON", line, err)
			}
			return
		}
		if err != nil {
			if errors.Is(err, ErrInvalidJSON) && bytes.HasPrefix(bytes.TrimLeft(line, " \t\r"), []byte("{")) {
				t.Fatalf("valid JSON object %q rejected as invalid JSON: %v", line, err)
			}
			return
		}
		var want struct {
			Key   *string         `json:"key"`
			Tags  []string        `json:"tags"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(line, &want); err != nil {
			t.Fatalf("accepted %q but encoding/json says %v", line, err)
		}
		if want.Key != nil && *want.Key != rec.Key {
			t.Fatalf("%q: key %q, encoding/json %q", line, rec.Key, *want.Key)
		}
		if len(want.Tags) != len(rec.Tags) {
			t.Fatalf("%q: tags %q, encoding/json %q", line, rec.Tags, want.Tags)
		}
		for i := range want.Tags {
			if want.Tags[i] != rec.Tags[i] {
				t.Fatalf("%q: tags %q, encoding/json %q", line, rec.Tags, want.Tags)
			}
		}
		if want.Value != nil {
			var c bytes.Buffer
			json.Compact(&c, want.Value)
			if !bytes.Equal(c.Bytes(), rec.Value) {
				t.Fatalf("%q: value %q, compacted by encoding/json %q", line, rec.Value, c.Bytes())
			}
		}
	})
}

func TestPlain8(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(w [8]byte) {
		want := true
		for _, c := range w {
			if special(c) {
				want = false
			}
		}
		if got := plain8(binary.LittleEndian.Uint64(w[:])); got != want {
			t.Fatalf("plain8(%q) = %v, want %v", w[:], got, want)
		}
	}
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			for _, bg := range []byte{'a', 0xff, 0x80, 0x21, 0x5d, 0x23, 0x00} {
				w := [8]byte{bg, bg, bg, bg, bg, bg, bg, bg}
				w[pos] = byte(c)
				check(w)
			}
		}
	}
	for i := 0; i < 200000; i++ {
		var w [8]byte
		for j := range w {
			w[j] = byte(rng.Uint32())
		}
		check(w)
	}
}
