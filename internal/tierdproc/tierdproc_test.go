package tierdproc

import "testing"

// TestParseListening: the address and scheme come from tierd's own
// listening line in either log format, never from another line or a line
// not yet written whole.
func TestParseListening(t *testing.T) {
	cases := []struct {
		out, addr, scheme string
		ok                bool
	}{
		{"time=2026-01-01T00:00:00Z level=INFO msg=\"tierd listening\" addr=127.0.0.1:41234 scheme=http data_dir=/d\n", "127.0.0.1:41234", "http", true},
		{"level=INFO msg=\"cold store answers\" store=file:///x\nlevel=INFO msg=\"tierd listening\" addr=[::]:7070 scheme=https\n", "[::]:7070", "https", true},
		{"level=INFO msg=\"tierd listening\" addr=\"weird host:1\" scheme=http\n", "weird host:1", "http", true},
		{`{"time":"x","level":"INFO","msg":"tierd listening","addr":"127.0.0.1:5","scheme":"https"}` + "\n", "127.0.0.1:5", "https", true},
		{"level=INFO msg=\"tierd listening\" addr=127.0.0.1:41234 scheme=http", "", "", false}, // no newline yet
		{"level=WARN msg=\"no auth.tokens configured\" addr=127.0.0.1:9\n", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		addr, scheme, ok := ParseListening(c.out)
		if addr != c.addr || scheme != c.scheme || ok != c.ok {
			t.Errorf("ParseListening(%q) = %q, %q, %v; want %q, %q, %v", c.out, addr, scheme, ok, c.addr, c.scheme, c.ok)
		}
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:80": "127.0.0.1:80", "[::]:81": "127.0.0.1:81", ":82": "127.0.0.1:82",
		"127.0.0.1:83": "127.0.0.1:83", "[::1]:84": "[::1]:84", "localhost:85": "localhost:85",
	} {
		if got := DialAddr(in); got != want {
			t.Errorf("DialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
