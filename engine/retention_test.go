package engine

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// TestRetentionFit: the engine's one rule for reads below what retention
// kept. Offsets named below the first retained offset are expired, naming
// the range and the first retained offset; a read that names no start
// begins at the first retained offset, unless its time range ends before
// the first retained record; nothing is expired while nothing was deleted.
func TestRetentionFit(t *testing.T) {
	const ts100 = int64(1_700_000_000_000_000_000)
	ret := Retention{First: 100, FirstTS: ts100, HasFirstTS: true, Next: 300}
	q := func(from, to uint64, fromRetained bool, until int64) tiers.Query {
		q := tiers.AllRecords()
		q.From, q.To, q.FromRetained, q.Until = from, to, fromRetained, until
		return q
	}
	for _, c := range []struct {
		name     string
		ret      Retention
		q        tiers.Query
		wantErr  string // a substring of the ErrExpired message; "" for none
		wantFrom uint64
	}{
		{"from 0", ret, q(0, math.MaxUint64, false, math.MaxInt64), "offsets [0, 100) of stream s were deleted by retention; the first retained offset is 100", 0},
		{"from and to below", ret, q(3, 5, false, math.MaxInt64), "offsets [3, 6)", 0},
		{"just below", ret, q(99, math.MaxUint64, false, math.MaxInt64), "offsets [99, 100)", 0},
		{"across the first", ret, q(0, 110, false, math.MaxInt64), "offsets [0, 100)", 0},
		{"to below, no from", ret, q(0, 99, true, math.MaxInt64), "offsets [0, 100)", 0},
		{"at the first", ret, q(100, math.MaxUint64, false, math.MaxInt64), "", 100},
		{"no from", ret, q(0, math.MaxUint64, true, math.MaxInt64), "", 100},
		{"no from, until after", ret, q(0, math.MaxUint64, true, ts100+1), "", 100},
		{"no from, until at the first record", ret, q(0, math.MaxUint64, true, ts100), "before 2023-11-14T22:13:20Z were deleted by retention; the first retained record is offset 100 at 2023-11-14T22:13:20Z", 0},
		{"from and until before", ret, q(100, math.MaxUint64, false, ts100), "", 100},
		{"nothing deleted", Retention{Next: 10}, q(0, 5, false, math.MaxInt64), "", 0},
	} {
		q := c.q
		err := c.ret.fit("s", &q)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr == "" && q.From != c.wantFrom:
			t.Errorf("%s: the read starts at %d, want %d", c.name, q.From, c.wantFrom)
		case c.wantErr != "" && (!errors.Is(err, tiers.ErrExpired) || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: %v, want ErrExpired saying %q", c.name, err, c.wantErr)
		}
	}
}
