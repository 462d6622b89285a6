package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseHTTP(t *testing.T) {
	c, err := Parse("tierd.yaml", []byte("http:\n  read_timeout: 30s\n  idle_timeout: 5m\n  max_connections: 2000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (HTTPConfig{ReadTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute, MaxConnections: 2000}); c.HTTP != want {
		t.Fatalf("http = %+v, want %+v", c.HTTP, want)
	}
	c, err = Parse("tierd.yaml", []byte("http: {max_connections: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (HTTPConfig{ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxConnections: 1}); c.HTTP != want {
		t.Fatalf("http = %+v, want the defaults but max_connections %+v", c.HTTP, want)
	}
}

func TestParseHTTPErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []loc
	}{
		{"zero read timeout", "http:\n  read_timeout: 0s\n", []loc{{2, "http.read_timeout", "must be positive"}}},
		{"negative idle timeout", "http: {idle_timeout: -1m}\n", []loc{{1, "http.idle_timeout", "must be positive"}}},
		{"timeout without unit", "http: {read_timeout: 60}\n", []loc{{1, "http.read_timeout", "lacks a unit"}}},
		{"no connections", "\nhttp: {max_connections: 0}\n", []loc{{2, "http.max_connections", "0 is not from 1 to"}}},
		{"connections not an integer", "http: {max_connections: many}\n", []loc{{1, "http.max_connections", "must be an integer"}}},
		{"too many connections", "http: {max_connections: 100000000}\n", []loc{{1, "http.max_connections", "is not from 1 to"}}},
		{"unknown field", "http: {write_timeout: 1m}\n", []loc{{1, "http.write_timeout", "unknown field (want one of read_timeout, idle_timeout, max_connections)"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("tierd.yaml", []byte(tc.in))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse = %+v, %v; want a *ValidationError", got, err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ve.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				fe := ve.Errors[i]
				if fe.File != "tierd.yaml" || fe.Line != w.line || fe.Field != w.field || !strings.Contains(fe.Msg, w.msg) {
					t.Errorf("error %d = %+v\nwant line %d, field %q, message containing %q", i, fe, w.line, w.field, w.msg)
				}
			}
		})
	}
	if err := (func() Config { c := Default(); c.HTTP.IdleTimeout = 0; return c })().Validate(); err == nil || !strings.Contains(err.Error(), "http.idle_timeout") {
		t.Errorf("Validate of a zero idle timeout = %v", err)
	}
}
