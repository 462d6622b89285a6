package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CheckSchedule reports whether spec is a schedule the migrator's
// robfig/cron/v3 standard parser (cron.ParseStandard) accepts: five fields
// (minute hour day-of-month month day-of-week) with *, ?, lists, ranges,
// steps and month/day names; a descriptor (@yearly, @annually, @monthly,
// @weekly, @daily, @midnight, @hourly); or "@every DURATION" in Go's
// time.ParseDuration syntax — all optionally prefixed "CRON_TZ=Zone " or
// "TZ=Zone ".
//
// It mirrors that grammar here because the cron library is the migrator's
// dependency, not the configuration's, and because it is stricter where
// the library is surprising: "@every" with a negative or sub-second
// duration (which cron silently rounds up to 1 s) is rejected, and so is a
// zone prefix with no schedule after it (on which ParseStandard panics).
func CheckSchedule(spec string) error {
	if strings.TrimSpace(spec) == "" {
		return fmt.Errorf("is empty; want a cron spec such as \"@every 30s\" or \"*/5 * * * *\"")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		i := strings.IndexByte(spec, ' ')
		if i < 0 {
			return fmt.Errorf("%q has a time zone but no schedule after it", spec)
		}
		zone := spec[strings.IndexByte(spec, '=')+1 : i]
		if zone == "" || strings.ContainsAny(zone, "\x00\\") || strings.Contains(zone, "..") {
			return fmt.Errorf("%q: bad time zone %q", spec, zone)
		}
		if _, err := time.LoadLocation(zone); err != nil {
			return fmt.Errorf("%q: bad time zone %q: %v", spec, zone, err)
		}
		spec = strings.TrimSpace(spec[i:])
	}
	if strings.HasPrefix(spec, "@") {
		return checkDescriptor(spec)
	}
	fields := strings.Fields(spec)
	if len(fields) != 5 {
		return fmt.Errorf("%q has %d fields; want 5 (minute hour day-of-month month day-of-week) or a descriptor such as @every 30s", spec, len(fields))
	}
	for i, b := range cronFields() {
		if err := checkCronField(fields[i], b); err != nil {
			return fmt.Errorf("%q: %s field: %v", spec, b.name, err)
		}
	}
	return nil
}

// checkDescriptor checks an @-spec exactly as cron matches it (no extra
// spaces are trimmed: "@daily " is an error there too).
func checkDescriptor(spec string) error {
	switch spec {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return nil
	}
	const every = "@every "
	if !strings.HasPrefix(spec, every) {
		return fmt.Errorf("%q is not a descriptor (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every DURATION)", spec)
	}
	d, err := time.ParseDuration(spec[len(every):])
	if err != nil {
		return fmt.Errorf("%q: %v (units ns, us, ms, s, m, h; no d)", spec, err)
	}
	if d < time.Second {
		return fmt.Errorf("%q: the interval must be at least 1s", spec)
	}
	return nil
}

// cronBounds is one field of a five-field spec.
type cronBounds struct {
	name     string
	min, max int
	names    map[string]int
}

func cronFields() []cronBounds {
	return []cronBounds{
		{name: "minute", min: 0, max: 59},
		{name: "hour", min: 0, max: 23},
		{name: "day-of-month", min: 1, max: 31},
		{name: "month", min: 1, max: 12, names: map[string]int{
			"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
			"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
		}},
		{name: "day-of-week", min: 0, max: 6, names: map[string]int{
			"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
		}},
	}
}

// checkCronField checks a comma-separated list of ranges: * or ?, N, N-M,
// each optionally with /STEP.
func checkCronField(field string, b cronBounds) error {
	for expr := range strings.SplitSeq(field, ",") {
		if expr == "" {
			continue // cron skips empty list items
		}
		rangeAndStep := strings.Split(expr, "/")
		if len(rangeAndStep) > 2 {
			return fmt.Errorf("too many slashes in %q", expr)
		}
		lowHigh := strings.Split(rangeAndStep[0], "-")
		start, end := b.min, b.max
		if lowHigh[0] != "*" && lowHigh[0] != "?" {
			var err error
			if start, err = cronValue(lowHigh[0], b); err != nil {
				return err
			}
			switch len(lowHigh) {
			case 1:
				end = start
			case 2:
				if end, err = cronValue(lowHigh[1], b); err != nil {
					return err
				}
			default:
				return fmt.Errorf("too many hyphens in %q", expr)
			}
		}
		if len(rangeAndStep) == 2 {
			step, err := cronNumber(rangeAndStep[1])
			if err != nil {
				return err
			}
			if step == 0 {
				return fmt.Errorf("the step of %q must be positive", expr)
			}
			if len(lowHigh) == 1 {
				end = b.max
			}
		}
		switch {
		case start < b.min:
			return fmt.Errorf("%d is below %d in %q", start, b.min, expr)
		case end > b.max:
			return fmt.Errorf("%d is above %d in %q", end, b.max, expr)
		case start > end:
			return fmt.Errorf("range %q runs backwards", expr)
		}
	}
	return nil
}

func cronValue(s string, b cronBounds) (int, error) {
	if n, ok := b.names[strings.ToLower(s)]; ok {
		return n, nil
	}
	return cronNumber(s)
}

// cronNumber parses as cron does (strconv.Atoi), rejecting negatives.
func cronNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < 0 {
		return 0, fmt.Errorf("%d is negative", n)
	}
	return n, nil
}
