package policy

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Binary size units, for configuration defaults and callers' arithmetic.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
	TiB = 1 << 40
)

// Calendar-free duration units: a day is always 24 h, a week 7 d and a year
// 365 d. Retention is counted on the ingest clock, so leap seconds and days
// do not matter.
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
	Year = 365 * Day
)

// sizeUnit returns the multiplier of a size unit. Binary units (KiB…TiB) are
// powers of 1024, decimal ones (KB…TB) powers of 1000, as on disk labels.
func sizeUnit(u string) (uint64, bool) {
	switch u {
	case "", "B":
		return 1, true
	case "KiB":
		return KiB, true
	case "MiB":
		return MiB, true
	case "GiB":
		return GiB, true
	case "TiB":
		return TiB, true
	case "KB":
		return 1e3, true
	case "MB":
		return 1e6, true
	case "GB":
		return 1e9, true
	case "TB":
		return 1e12, true
	}
	return 0, false
}

// errSizeRange reports a size that does not fit in an int64.
var errSizeRange = errors.New("too large")

// ParseSize parses a byte count: a plain integer ("1048576") or a number with
// a unit, B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of
// 1000), optionally separated by spaces ("64MiB", "1.5 GiB"). A fraction must
// come to a whole number of bytes. Negative sizes are rejected.
func ParseSize(s string) (int64, error) {
	orig := s
	s = strings.Trim(s, asciiSpace)
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("size %q is negative", orig)
	}
	s = strings.TrimPrefix(s, "+")
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == '_') {
		i++
	}
	num, unit := s[:i], strings.Trim(s[i:], asciiSpace)
	whole, frac, _ := strings.Cut(strings.ReplaceAll(num, "_", ""), ".")
	if whole == "" && frac == "" || strings.Contains(frac, ".") {
		return 0, fmt.Errorf("size %q is not a number with an optional unit, such as 64MiB", orig)
	}
	mult, ok := sizeUnit(unit)
	if !ok {
		return 0, fmt.Errorf("size %q has unknown unit %q (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", orig, unit)
	}
	var n uint64
	if whole != "" {
		w, err := strconv.ParseUint(whole, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("size %q is %w", orig, errSizeRange)
		}
		hi, lo := bits.Mul64(w, mult)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("size %q is %w", orig, errSizeRange)
		}
		n = lo
	}
	if frac = strings.TrimRight(frac, "0"); frac != "" {
		if len(frac) > 19 {
			return 0, fmt.Errorf("size %q has too many decimals", orig)
		}
		f, err := strconv.ParseUint(frac, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("size %q is not a number", orig)
		}
		scale := uint64(1)
		for range len(frac) {
			scale *= 10
		}
		// f/scale < 1, so f*mult/scale < mult and the division cannot
		// overflow.
		hi, lo := bits.Mul64(f, mult)
		q, rem := bits.Div64(hi, lo, scale)
		if rem != 0 {
			return 0, fmt.Errorf("size %q is not a whole number of bytes", orig)
		}
		if n+q > math.MaxInt64 {
			return 0, fmt.Errorf("size %q is %w", orig, errSizeRange)
		}
		n += q
	}
	return int64(n), nil
}

// FormatSize renders n in the largest binary unit that divides it exactly
// ("64MiB", "1000B"), so that ParseSize(FormatSize(n)) == n for n >= 0.
func FormatSize(n int64) string {
	if n == 0 {
		return "0B"
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// durationUnit returns the length of a duration unit: Go's ns, us (µs), ms,
// s, m, h, plus d, w and y.
func durationUnit(u string) (uint64, bool) {
	switch u {
	case "ns":
		return uint64(time.Nanosecond), true
	case "us", "µs", "μs": // U+00B5 and U+03BC, as time.ParseDuration
		return uint64(time.Microsecond), true
	case "ms":
		return uint64(time.Millisecond), true
	case "s":
		return uint64(time.Second), true
	case "m":
		return uint64(time.Minute), true
	case "h":
		return uint64(time.Hour), true
	case "d":
		return uint64(Day), true
	case "w":
		return uint64(Week), true
	case "y":
		return uint64(Year), true
	}
	return 0, false
}

// asciiSpace is the white space sizes and durations may carry around them;
// Unicode spaces are not trimmed ("\u20000" is no duration).
const asciiSpace = " \t\n\v\f\r"

// ParseDuration parses a duration as time.ParseDuration does ("10ms",
// "1h30m", "1.5h") and also accepts d (24 h), w (7 d) and y (365 d):
// "7d", "1w", "1y", "1d12h". "0" needs no unit.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.Trim(s, asciiSpace)
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("duration %q is empty", orig)
	}
	var total uint64
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		whole := s[:i]
		s = s[i:]
		frac := ""
		if s != "" && s[0] == '.' {
			i = 1
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
			frac, s = s[1:i], s[i:]
		}
		if whole == "" && frac == "" {
			return 0, fmt.Errorf("duration %q is not a number with a unit, such as 10s or 1h30m", orig)
		}
		i = 0
		for i < len(s) && s[i] != '.' && (s[i] < '0' || s[i] > '9') {
			i++
		}
		u := s[:i]
		s = s[i:]
		unit, ok := durationUnit(u)
		if !ok {
			if u == "" {
				return 0, fmt.Errorf("duration %q lacks a unit (ms, s, m, h, d, w or y)", orig)
			}
			return 0, fmt.Errorf("duration %q has unknown unit %q (want ns, us, ms, s, m, h, d, w or y)", orig, u)
		}
		v := uint64(0)
		if whole != "" {
			w, err := strconv.ParseUint(whole, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q is out of range", orig)
			}
			hi, lo := bits.Mul64(w, unit)
			if hi != 0 {
				return 0, fmt.Errorf("duration %q is out of range", orig)
			}
			v = lo
		}
		if f, scale := leadingFraction(frac); f > 0 {
			// Exactly as time.ParseDuration, so that both agree to the
			// nanosecond on every input they share.
			fv := uint64(float64(f) * (float64(unit) / scale))
			if v+fv < v {
				return 0, fmt.Errorf("duration %q is out of range", orig)
			}
			v += fv
		}
		if total += v; total < v || total > 1<<63 {
			return 0, fmt.Errorf("duration %q is out of range", orig)
		}
	}
	if neg {
		return -time.Duration(total), nil
	}
	if total > math.MaxInt64 {
		return 0, fmt.Errorf("duration %q is out of range", orig)
	}
	return time.Duration(total), nil
}

// leadingFraction is time's: the fraction digits as an integer, dropping
// digits that would overflow, and the power of ten they are scaled by.
func leadingFraction(s string) (x uint64, scale float64) {
	scale = 1
	overflow := false
	for i := 0; i < len(s); i++ {
		if overflow {
			continue
		}
		if x > (1<<63-1)/10 {
			overflow = true
			continue
		}
		y := x*10 + uint64(s[i]-'0')
		if y > 1<<63 {
			overflow = true
			continue
		}
		x = y
		scale *= 10
	}
	return x, scale
}

// FormatDuration renders d with days as the largest unit ("7d", "1d12h",
// "10m", "1.5s"), so that ParseDuration(FormatDuration(d)) == d.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = -u
	}
	for _, unit := range []struct {
		name string
		len  uint64
	}{{"d", uint64(Day)}, {"h", uint64(time.Hour)}, {"m", uint64(time.Minute)}} {
		if u >= unit.len {
			b.WriteString(strconv.FormatUint(u/unit.len, 10))
			b.WriteString(unit.name)
			u %= unit.len
		}
	}
	if u != 0 {
		// Less than a minute is left, which time.Duration prints exactly.
		b.WriteString(time.Duration(u).String())
	}
	return b.String()
}
