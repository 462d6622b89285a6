package tiers

import (
	"math"
	"testing"
	"time"
)

// TestUTCDay: the day of a ts is the UTC calendar day that holds it, before
// the epoch too (floor, not truncation toward zero), to the nanosecond at
// midnight.
func TestUTCDay(t *testing.T) {
	mid := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	d := mid.Unix() / 86400
	for _, c := range []struct {
		ts   int64
		want int64
	}{
		{0, 0},
		{1, 0},
		{-1, -1},
		{-nsPerDay, -1},
		{-nsPerDay - 1, -2},
		{nsPerDay - 1, 0},
		{nsPerDay, 1},
		{mid.UnixNano() - 1, d - 1},
		{mid.UnixNano(), d},
		{math.MaxInt64, math.MaxInt64 / nsPerDay},
		{math.MinInt64, math.MinInt64/nsPerDay - 1},
	} {
		if got := UTCDay(c.ts); got != c.want {
			t.Errorf("UTCDay(%d) = %d, want %d", c.ts, got, c.want)
		}
		if c.ts != math.MinInt64 && c.ts != math.MaxInt64 {
			day := time.Unix(0, c.ts).UTC().Truncate(24 * time.Hour)
			if time.Unix(0, c.ts).UTC().Before(day) {
				day = day.Add(-24 * time.Hour)
			}
			if want := day.Unix() / 86400; c.want != want {
				t.Errorf("case %d: table says day %d, time says %d", c.ts, c.want, want)
			}
		}
	}
}
