package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/tierd/tierd/policy"
)

// Flag values that speak as people write: sizes as 16MiB, durations as
// 30s or 1d, and, when a value is wrong, what was expected instead of the
// parser's error. Each Set returns the part after the value of
//
//	--from: "abc" is not an offset (a whole number ≥ 0)
//
// and flagError puts the flag and the value in front.

// offsetValue is a stream offset.
type offsetValue uint64

func (v *offsetValue) String() string { return strconv.FormatUint(uint64(*v), 10) }
func (v *offsetValue) Type() string   { return "offset" }
func (v *offsetValue) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return errors.New("is not an offset (a whole number ≥ 0)")
	}
	*v = offsetValue(n)
	return nil
}

// countValue is a whole number of at least min; noun names it in errors.
type countValue struct {
	n    *int
	min  int
	noun string
}

func newCount(p *int, def, min int, noun string) *countValue {
	*p = def
	return &countValue{n: p, min: min, noun: noun}
}

func (v *countValue) String() string { return strconv.Itoa(*v.n) }
func (v *countValue) Type() string   { return "int" }
func (v *countValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < v.min {
		return fmt.Errorf("is not %s (a whole number ≥ %d)", v.noun, v.min)
	}
	*v.n = n
	return nil
}

// sizeValue is a byte count written as policy's configuration takes it:
// 16MiB, 512KiB, 1.5GiB, 1000000.
type sizeValue struct {
	n   *int64
	min int64
}

func newSize(p *int64, def, min int64) *sizeValue {
	*p = def
	return &sizeValue{n: p, min: min}
}

func (v *sizeValue) String() string { return policy.FormatSize(*v.n) }
func (v *sizeValue) Type() string   { return "size" }
func (v *sizeValue) Set(s string) error {
	n, err := policy.ParseSize(s)
	if err != nil {
		return errors.New("is not a size (a number with an optional unit: 16MiB, 512KiB, 1000000)")
	}
	if n < v.min {
		return fmt.Errorf("is too small (at least %s)", policy.FormatSize(v.min))
	}
	*v.n = n
	return nil
}

// durationValue is a duration written as policy's configuration takes it
// (500ms, 30s, 1h30m, 1d) and shown the same way.
type durationValue struct {
	d        *time.Duration
	min, max time.Duration
}

func newDuration(p *time.Duration, def, min, max time.Duration) *durationValue {
	*p = def
	return &durationValue{d: p, min: min, max: max}
}

func (v *durationValue) String() string { return policy.FormatDuration(*v.d) }
func (v *durationValue) Type() string   { return "duration" }
func (v *durationValue) Set(s string) error {
	d, err := policy.ParseDuration(s)
	if err != nil {
		return errors.New("is not a duration (a number with a unit: 500ms, 30s, 2m)")
	}
	if d < v.min || d > v.max {
		return fmt.Errorf("is out of range (%s to %s)", policy.FormatDuration(v.min), policy.FormatDuration(v.max))
	}
	*v.d = d
	return nil
}

// flagError rewrites pflag's errors for people: an invalid value names
// the flag, the value and what was expected; an unknown flag suggests the
// flag that was probably meant.
func flagError(cmd *cobra.Command, err error) error {
	var inv *pflag.InvalidValueError
	var unknown *pflag.NotExistError
	switch {
	case errors.As(err, &inv):
		f := inv.GetFlag()
		why := inv.Unwrap().Error()
		if f.Value.Type() == "bool" {
			why = "is not true or false"
		}
		return usageError{fmt.Errorf("%s: %q %s", flagName(f), inv.GetValue(), why)}
	case errors.As(err, &unknown) && unknown.GetSpecifiedShortnames() == "":
		if s := suggestFlag(cmd, unknown.GetSpecifiedName()); s != "" {
			return usagef("unknown flag: --%s (did you mean --%s?)", unknown.GetSpecifiedName(), s)
		}
	}
	return usageError{err}
}

// flagName is how errors name a flag: --lines, or -n/--lines when it has
// a shorthand (the operator may have typed either).
func flagName(f *pflag.Flag) string {
	if f.Shorthand != "" {
		return "-" + f.Shorthand + "/--" + f.Name
	}
	return "--" + f.Name
}

// suggestFlag returns the flag of cmd closest to a mistyped name: one
// that starts with it, or is at most two edits away; "" when none is.
func suggestFlag(cmd *cobra.Command, typed string) string {
	best, bestDist := "", 3
	visit := func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := editDistance(typed, f.Name)
		if strings.HasPrefix(f.Name, typed) && len(typed) >= 2 {
			d = min(d, 1)
		}
		if d < bestDist {
			best, bestDist = f.Name, d
		}
	}
	cmd.LocalFlags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	return best
}

// editDistance is the Levenshtein distance of a and b, in bytes: flag
// names are ASCII.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
