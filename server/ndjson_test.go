package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/tiers"
)

const ingestTS = 1_800_000_000_000_000_000

func TestParseNDJSONAccepts(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []tiers.Record
	}{
		{"all fields", `{"key":"k","ts":"2026-11-22T10:00:00.123456789Z","tags":["a","b"],"value":{"x": [1, 2]}}`,
			[]tiers.Record{{TS: 1795341600123456789, Key: "k", Tags: []string{"a", "b"}, Value: []byte(`{"x":[1,2]}`), JSON: true}}},
		{"minimal object", `{}`, []tiers.Record{{TS: ingestTS}}},
		{"ts as integer ns", `{"ts":-5}`, []tiers.Record{{TS: -5}}},
		{"ts with zone offset", `{"ts":"2026-11-22T12:00:00+02:00"}`, []tiers.Record{{TS: 1795341600000000000}}},
		{"ts null means ingest time", `{"ts":null,"value":1}`, []tiers.Record{{TS: ingestTS, Value: []byte("1"), JSON: true}}},
		{"value null is stored", `{"value":null}`, []tiers.Record{{TS: ingestTS, Value: []byte("null"), JSON: true}}},
		{"value string keeps escapes", `{"value":"a\"b\u00e9"}`, []tiers.Record{{TS: ingestTS, Value: []byte(`"a\"b\u00e9"`), JSON: true}}},
		{"value number keeps its text", `{"value":1.50e+3}`, []tiers.Record{{TS: ingestTS, Value: []byte(`1.50e+3`), JSON: true}}},
		{"value_b64 binary", `{"value_b64":"AP8Kew=="}`, []tiers.Record{{TS: ingestTS, Value: []byte{0, 0xff, '\n', '{'}}}},
		{"value_b64 empty", `{"value_b64":""}`, []tiers.Record{{TS: ingestTS}}},
		// The hint is set where the parser checked the value, never on
		// bytes that came as base64 (pqfile.IsJSON decides for those).
		{"value_b64 holding JSON has no hint", `{"value_b64":"eyJhIjoxfQ=="}`, []tiers.Record{{TS: ingestTS, Value: []byte(`{"a":1}`)}}},
		{"blank lines and CRLF", "\n  \r\n{\"key\":\"a\"}\r\n\n{\"key\":\"b\"}", []tiers.Record{{TS: ingestTS, Key: "a"}, {TS: ingestTS, Key: "b"}}},
		{"trailing newline", "{\"key\":\"a\"}\n", []tiers.Record{{TS: ingestTS, Key: "a"}}},
		{"key null is no key", `{"key":null,"tags":null}`, []tiers.Record{{TS: ingestTS}}},
		{"key at the limit", `{"key":"` + strings.Repeat("k", tiers.MaxKeyBytes) + `"}`, []tiers.Record{{TS: ingestTS, Key: strings.Repeat("k", tiers.MaxKeyBytes)}}},
		{"value at the limit", `{"value":"` + strings.Repeat("v", 98) + `"}`, []tiers.Record{{TS: ingestTS, Value: []byte(`"` + strings.Repeat("v", 98) + `"`), JSON: true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseNDJSON(strings.NewReader(c.body), ParseOptions{MaxRecordBytes: 100, IngestTS: ingestTS})
			if err != nil {
				t.Fatalf("ParseNDJSON: %v", err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d records, want %d", len(got), len(c.want))
			}
			for i := range got {
				if !got[i].Equal(&c.want[i]) || got[i].JSON != c.want[i].JSON {
					t.Errorf("record %d = %+v (value %q), want %+v (value %q)", i, got[i], got[i].Value, c.want[i], c.want[i].Value)
				}
			}
		})
	}
}

func TestParseNDJSONRejects(t *testing.T) {
	cases := []struct {
		name string
		body string
		want error
		line int // 0: no ParseError expected
	}{
		{"empty body", "", ErrEmptyBatch, 0},
		{"only blank lines", "\n \n\t\n", ErrEmptyBatch, 0},
		{"syntax error names its line", "{}\n\n{\"key\":}", ErrInvalidJSON, 3},
		{"not an object", `[1]`, ErrInvalidJSON, 1},
		{"a bare string", `"x"`, ErrInvalidJSON, 1},
		{"two objects on a line", `{} {}`, ErrInvalidJSON, 1},
		{"object split across lines", "{\n}", ErrInvalidJSON, 1},
		{"truncated object", `{"key":"a"`, ErrInvalidJSON, 1},
		{"invalid UTF-8", "{\"key\":\"\xff\"}", ErrInvalidJSON, 1},
		{"unknown field", `{"kye":"a"}`, tiers.ErrInvalidRecord, 1},
		{"field name case matters", `{"Key":"a"}`, tiers.ErrInvalidRecord, 1},
		{"offset is not an input", `{"offset":3}`, tiers.ErrInvalidRecord, 1},
		{"repeated field", `{"key":"a","key":"b"}`, tiers.ErrInvalidRecord, 1},
		{"value and value_b64", `{"value":1,"value_b64":"AA=="}`, tiers.ErrInvalidRecord, 1},
		{"key not a string", `{"key":5}`, tiers.ErrInvalidRecord, 1},
		{"tags not strings", `{"tags":[1]}`, tiers.ErrInvalidRecord, 1},
		{"tags not an array", `{"tags":"a"}`, tiers.ErrInvalidRecord, 1},
		{"ts not RFC 3339", `{"ts":"yesterday"}`, ErrInvalidTS, 1},
		{"ts a float", `{"ts":1.5}`, ErrInvalidTS, 1},
		{"ts beyond int64 ns", `{"ts":"2300-01-01T00:00:00Z"}`, ErrInvalidTS, 1},
		{"ts integer overflow", `{"ts":9223372036854775808}`, ErrInvalidTS, 1},
		{"ts a bool", `{"ts":true}`, ErrInvalidTS, 1},
		{"bad base64", `{"value_b64":"!!"}`, ErrInvalidBase64, 1},
		{"url base64 is not standard", `{"value_b64":"_-8="}`, ErrInvalidBase64, 1},
		{"key too large", `{"key":"` + strings.Repeat("k", tiers.MaxKeyBytes+1) + `"}`, tiers.ErrKeyTooLarge, 1},
		{"value too large", `{"value":"` + strings.Repeat("v", 99) + `"}`, tiers.ErrRecordTooLarge, 1},
		{"value_b64 too large", `{"value_b64":"` + base64.StdEncoding.EncodeToString(make([]byte, 101)) + `"}`, tiers.ErrRecordTooLarge, 1},
		{"line too long", "{}\n" + `{"key":"` + strings.Repeat("k", lineLimit(100)) + `"}`, tiers.ErrRecordTooLarge, 2},
		{"bad line after good ones", "{}\n{}\n{\"value\":nope}\n", ErrInvalidJSON, 3},
		{"too many records", "{}\n{}\n{}\n{}", ErrBatchTooLarge, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseNDJSON(strings.NewReader(c.body), ParseOptions{MaxRecordBytes: 100, MaxRecords: 3, IngestTS: ingestTS})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if got != nil {
				t.Errorf("returned %d records with the error", len(got))
			}
			var pe *ParseError
			if c.line == 0 {
				if errors.As(err, &pe) {
					t.Errorf("got a ParseError for line %d", pe.Line)
				}
				return
			}
			if !errors.As(err, &pe) || pe.Line != c.line {
				t.Fatalf("err %v does not name line %d", err, c.line)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Errorf("message %q does not name the line", err)
			}
		})
	}
}

func TestParseNDJSONReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("{}\n{\"key\":"), iotest.ErrReader(boom))
	_, err := ParseNDJSON(r, ParseOptions{})
	if !errors.Is(err, ErrBodyRead) || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want ErrBodyRead wrapping the cause", err)
	}
}

func TestParseNDJSONLongLines(t *testing.T) {
	// Lines longer than the reader's buffer must be reassembled intact.
	big := strings.Repeat("x", 200<<10)
	body := `{"key":"a","value":"` + big + `"}` + "\n" + `{"value_b64":"` + base64.StdEncoding.EncodeToString([]byte(big)) + `"}`
	got, err := ParseNDJSON(strings.NewReader(body), ParseOptions{MaxRecordBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].Value) != `"`+big+`"` || string(got[1].Value) != big {
		t.Fatalf("long lines not reassembled: %d records", len(got))
	}
}

func TestParseTS(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"-1", -1, true},
		{"1795341600123456789", 1795341600123456789, true},
		{"2026-11-22T10:00:00.123456789Z", 1795341600123456789, true},
		{"2026-11-22T10:00:00Z", 1795341600000000000, true},
		{"2026-11-22T11:00:00.5+01:00", 1795341600500000000, true},
		{"2026-11-22", 0, false},
		{"", 0, false},
		{"1.5", 0, false},
		{"1600-01-01T00:00:00Z", 0, false},
		{"2026-11-22T10:00:00.000000001Z", 1795341600000000001, true},
		{"2026-11-22T10:00:00.0000000010Z", 0, false}, // a 10th digit is refused, not dropped
		{"2026-11-22T10:00:00.1234567891Z", 0, false},
	}
	for _, c := range cases {
		got, err := ParseTS(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseTS(%q) = %d, %v; want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTS) {
			t.Errorf("ParseTS(%q) error %v is not ErrInvalidTS", c.in, err)
		}
	}
}

// encodeInput writes records in the append form, the way a producer would,
// choosing "value" when the bytes are compact JSON.
func encodeInput(recs []tiers.Record) []byte {
	var buf, scratch bytes.Buffer
	for _, r := range recs {
		m := map[string]any{"ts": r.TS}
		if r.Key != "" {
			m["key"] = r.Key
		}
		if len(r.Tags) > 0 {
			m["tags"] = r.Tags
		}
		if len(r.Value) > 0 {
			if isCompactJSON(r.Value, &scratch) {
				m["value"] = json.RawMessage(r.Value)
			} else {
				m["value_b64"] = r.Value
			}
		}
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // else "&" in a value comes back as \u0026
		if err := enc.Encode(m); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

func FuzzParseNDJSON(f *testing.F) {
	f.Add([]byte(`{"key":"k","ts":"2026-11-22T10:00:00.123456789Z","tags":["a"],"value":{"x":1}}`))
	f.Add([]byte("{}\n\n{\"value_b64\":\"AP8=\",\"ts\":5}\r\n"))
	f.Add([]byte(`{"value":[1, "two", null, {"a": true}]}`))
	f.Add([]byte(`{"key":"a","key":"b"}`))
	f.Add([]byte(`{"ts":"2026-11-22T12:00:00+02:00","value":"\u2028"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		opts := ParseOptions{MaxRecordBytes: 4096, MaxRecords: 1000, IngestTS: ingestTS}
		recs, err := ParseNDJSON(bytes.NewReader(body), opts)
		if err != nil {
			if recs != nil {
				t.Fatalf("records returned with error %v", err)
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("no error and no records")
		}
		for i := range recs {
			if err := recs[i].Validate(opts.MaxRecordBytes); err != nil {
				t.Fatalf("record %d accepted but invalid: %v", i, err)
			}
			// The cold tier trusts the JSON hint instead of checking
			// the value again: it must never be set on a value that
			// pqfile.IsJSON would refuse.
			if recs[i].JSON && !pqfile.IsJSON(recs[i].Value) {
				t.Fatalf("record %d has the JSON hint, but its value %q is not JSON to the cold tier", i, recs[i].Value)
			}
		}
		// What was accepted must survive a read → append round trip.
		again, err := ParseNDJSON(bytes.NewReader(encodeInput(recs)), opts)
		if err != nil {
			t.Fatalf("re-encoded records rejected: %v", err)
		}
		if len(again) != len(recs) {
			t.Fatalf("round trip: %d records, want %d", len(again), len(recs))
		}
		for i := range recs {
			if !again[i].Equal(&recs[i]) {
				t.Fatalf("round trip of record %d: %+v, want %+v", i, again[i], recs[i])
			}
		}
	})
}

// TestJSONHintAgreesWithIsJSON: every value the parser accepts from the
// value field carries the JSON hint, and pqfile.IsJSON agrees with the hint
// on every one of them, over values built at random from JSON tokens and
// the near misses that break them. The cold tier writes a hinted value to
// its JSON column without checking it again, so a disagreement here would
// put a non-JSON value in that column.
func TestJSONHintAgreesWithIsJSON(t *testing.T) {
	tokens := []string{
		`{`, `}`, `[`, `]`, `:`, `,`, ` `, "\t", `"a"`, `"k"`, `""`, `"é"`, `"\u00e9"`, `"\ud800"`, `"\ud83d\ude00"`,
		`"\u12"`, `"\x"`, `"\"`, `"` + "\x01" + `"`, `"` + "\x7f" + `"`, `"` + "\u2028" + `"`, `"`, `\`,
		`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e`, `1e+9`, `2E-3`, `1.5e`, `+1`, `123456789012345678901234567890`,
		`true`, `false`, `null`, `tru`, `nul`, `True`, `NaN`, `x`,
	}
	rng := rand.New(rand.NewPCG(14, 2026))
	opts := ParseOptions{MaxRecordBytes: 4096, IngestTS: ingestTS}
	accepted := 0
	for i := 0; i < 100_000; i++ {
		var b strings.Builder
		for n := 1 + rng.IntN(12); n > 0; n-- {
			b.WriteString(tokens[rng.IntN(len(tokens))])
		}
		value := b.String()
		recs, err := ParseNDJSON(strings.NewReader(`{"value":`+value+`}`), opts)
		if err != nil {
			continue
		}
		accepted++
		r := recs[0]
		if !r.JSON {
			t.Fatalf("value %q was accepted without the JSON hint", value)
		}
		if !pqfile.IsJSON(r.Value) {
			t.Fatalf("value %q was stored as %q with the JSON hint, which pqfile.IsJSON refuses", value, r.Value)
		}
	}
	// The test must have something to check: about a tenth of the
	// values are JSON.
	if accepted < 2000 {
		t.Fatalf("only %d of 100000 random values were accepted", accepted)
	}
	t.Logf("%d of 100000 random values accepted, each with the hint and JSON to pqfile.IsJSON", accepted)
}
