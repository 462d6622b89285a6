package policy

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1024", 1024},
		{"1_000", 1000},
		{"7B", 7},
		{"1KiB", 1 << 10},
		{"64MiB", 64 << 20},
		{"64 MiB", 64 << 20},
		{" 1GiB ", 1 << 30},
		{"2TiB", 2 << 40},
		{"1.5GiB", 3 << 29},
		{"0.5KiB", 512},
		{"1.50MiB", 3 << 19},
		{"1KB", 1000},
		{"5MB", 5_000_000},
		{"3GB", 3_000_000_000},
		{"1TB", 1_000_000_000_000},
		{"1.5KB", 1500},
		{"+3MiB", 3 << 20},
		{"9223372036854775807", math.MaxInt64},
		{"8388607TiB", 8388607 << 40},
	}
	for _, tc := range good {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "not a number"},
		{"MiB", "not a number"},
		{"10X", `unknown unit "X"`},
		{"10mib", `unknown unit "mib"`},
		{"10Mi", `unknown unit "Mi"`},
		{"10 MiB extra", `unknown unit`},
		{"-1MiB", "negative"},
		{"-0", "negative"},
		{"1.2.3MiB", "not a number"},
		{"0.3B", "whole number of bytes"},
		{"1.0000001KiB", "whole number of bytes"},
		{"8388608TiB", "too large"},
		{"9223372036854775808", "too large"},
		{"99999999999999999999", "too large"},
		{"1e6", `unknown unit "e6"`},
	}
	for _, tc := range bad {
		got, err := ParseSize(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseSize(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.msg)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"10ms", 10 * time.Millisecond},
		{"1.5s", 1500 * time.Millisecond},
		{"5m", 5 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1d", 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{"1w", 7 * 24 * time.Hour},
		{"2w3d", 17 * 24 * time.Hour},
		{"1y", 365 * 24 * time.Hour},
		{"365d", 365 * 24 * time.Hour},
		{"100us", 100 * time.Microsecond},
		{"100µs", 100 * time.Microsecond},
		{"7ns", 7},
		{"-5m", -5 * time.Minute},
		{"292y", 292 * Year},
	}
	for _, tc := range good {
		got, err := ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty"},
		{"10", "lacks a unit"},
		{"1h30", "lacks a unit"},
		{"10x", `unknown unit "x"`},
		{"1D", `unknown unit "D"`},
		{"1 h", `unknown unit " h"`},
		{"h", "not a number"},
		{".s", "not a number"},
		{"293y", "out of range"},
		{"99999999999999999999ns", "out of range"},
	}
	for _, tc := range bad {
		got, err := ParseDuration(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseDuration(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.msg)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	sizes := map[int64]string{0: "0B", 1: "1B", 1000: "1000B", 1024: "1KiB", 64 << 20: "64MiB", 1536 << 20: "1536MiB", 100 << 30: "100GiB", 3 << 40: "3TiB", math.MaxInt64: "9223372036854775807B"}
	for n, want := range sizes {
		s := FormatSize(n)
		if s != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, s, want)
		}
		if back, err := ParseSize(s); err != nil || back != n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	}
	durations := map[time.Duration]string{
		0: "0s", 10 * time.Millisecond: "10ms", 10 * time.Minute: "10m", 90 * time.Minute: "1h30m",
		Day: "1d", 36 * time.Hour: "1d12h", Week: "7d", Year: "365d", 1500 * time.Millisecond: "1.5s",
		time.Hour + time.Nanosecond: "1h1ns", -5 * time.Minute: "-5m", 61 * time.Second: "1m1s",
		math.MaxInt64: "106751d23h47m16.854775807s", math.MinInt64: "-106751d23h47m16.854775808s",
	}
	for d, want := range durations {
		s := FormatDuration(d)
		if s != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, s, want)
		}
		if back, err := ParseDuration(s); err != nil || back != d {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", d, back, err)
		}
	}
}

// FuzzParseDuration holds ParseDuration to time.ParseDuration wherever the
// grammars overlap, and to FormatDuration's round trip everywhere.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"10ms", "1h30m", "1.5d", "-2w", ".5s", "1.s", "9223372036854775807ns", "0", "1µs", "1.0000000001h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDuration(s)
		want, goErr := time.ParseDuration(s)
		if goErr == nil && (err != nil || got != want) {
			t.Fatalf("ParseDuration(%q) = %v, %v; time.ParseDuration says %v", s, got, err, want)
		}
		if goErr != nil && err == nil && !strings.ContainsAny(s, "dwy \t\n\v\f\r") {
			t.Fatalf("ParseDuration(%q) = %v; time.ParseDuration rejects it: %v", s, got, goErr)
		}
		if err == nil {
			if back, err := ParseDuration(FormatDuration(got)); err != nil || back != got {
				t.Fatalf("round trip of %v via %q: %v, %v", got, FormatDuration(got), back, err)
			}
		}
	})
}

// FuzzParseSize checks that what ParseSize accepts is a size FormatSize
// writes back exactly.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64MiB", "1.5GiB", "1000", "1KB", "0.5KiB", "-1B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Fatalf("round trip of %d via %q: %d, %v", n, FormatSize(n), back, err)
		}
	})
}
