package client

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLines(t *testing.T) {
	rec := `{"offset":0,"ts":"2026-11-22T10:00:00Z","value":1,"tier":"hot"}`
	boom := errors.New("reset")
	cases := []struct {
		name    string
		body    io.Reader
		want    int    // complete lines yielded
		wantErr string // "" for a clean end; "api:<code>" for an *APIError
	}{
		{"empty body", strings.NewReader(""), 0, ""},
		{"two lines", strings.NewReader(rec + "\n" + rec + "\n"), 2, ""},
		{"long line", strings.NewReader(`{"value":"` + strings.Repeat("x", 300<<10) + `"}` + "\n"), 1, ""},
		{"cut inside a line", strings.NewReader(rec + "\n" + rec[:10]), 1, "unexpected EOF"},
		{"error line ends the read", strings.NewReader(rec + "\n" + `{"error":{"code":"corruption","message":"bad crc"}}` + "\n"), 1, "api:corruption"},
		{"undecodable error line", strings.NewReader(`{"error":5}` + "\n"), 0, "undecodable"},
		{"connection error", io.MultiReader(strings.NewReader(rec+"\n"), iotest.ErrReader(boom)), 1, "reset"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := 0
			var gotErr error
			for line, err := range lines(c.body) {
				if err != nil {
					gotErr = err
					break
				}
				if bytes.HasSuffix(line, []byte("\n")) {
					t.Errorf("line %d keeps its newline", n)
				}
				n++
			}
			if n != c.want {
				t.Errorf("%d lines, want %d", n, c.want)
			}
			switch {
			case c.wantErr == "" && gotErr != nil:
				t.Errorf("unexpected error %v", gotErr)
			case strings.HasPrefix(c.wantErr, "api:"):
				var ae *APIError
				if !errors.As(gotErr, &ae) || ae.Code != strings.TrimPrefix(c.wantErr, "api:") {
					t.Errorf("err = %v, want an APIError %s", gotErr, c.wantErr)
				}
			case c.wantErr != "" && (gotErr == nil || !strings.Contains(gotErr.Error(), c.wantErr)):
				t.Errorf("err = %v, want one mentioning %q", gotErr, c.wantErr)
			}
		})
	}
}

// FuzzDecodeResponse feeds arbitrary bytes to the read-response decoder as
// if a server had sent them: it must end every body with a clean finish or an
// error, never a panic, and every record it accepts must be whole.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"offset":3,"ts":"2026-11-22T10:00:00.5Z","key":"k","tags":["a"],"value":{"x":1},"tier":"warm"}` + "\n"))
	f.Add([]byte(`{"offset":0,"ts":"1970-01-01T00:00:00Z","value_b64":"AP8=","tier":"hot"}` + "\n" + `{"error":{"code":"x","message":"y"}}` + "\n"))
	f.Add([]byte(`{"offset":1` + "\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		seen := 0
		for line, err := range lines(bytes.NewReader(body)) {
			if err != nil {
				return
			}
			if bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line holds a newline: %q", line)
			}
			seen += len(line) + 1
			if seen > len(body) {
				t.Fatalf("yielded %d bytes from a %d-byte body", seen, len(body))
			}
			if _, err := decodeRecord(line); err != nil {
				return
			}
		}
		if len(body) > 0 && body[len(body)-1] != '\n' {
			t.Fatalf("a body not ending in a newline finished cleanly")
		}
	})
}
