package engine

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// TestEveryAcceptedTSIsReadable: records at both ends of the ts range tierd
// accepts are read back from memory, a warm file and a cold object, with
// and without time bounds; the one ts it cannot serve (math.MaxInt64, the
// "no upper bound" of Until) is refused and appends nothing.
func TestEveryAcceptedTSIsReadable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	_, storeURL := fileStore(t)
	e := openWithCold(t, dir, storeURL)
	defer func() { e.Close(ctx) }()

	_, err := e.Append(ctx, "edge", []tiers.Record{{TS: math.MaxInt64, Value: []byte("x")}})
	if !errors.Is(err, tiers.ErrInvalidTS) {
		t.Fatalf("append ts MaxInt64: %v, want ErrInvalidTS", err)
	}
	want := []tiers.Record{
		{TS: math.MinInt64, Value: []byte("min")},
		{TS: tiers.MaxTS, Value: []byte("max")},
		{TS: 0, Key: "k", Value: []byte("zero")},
		{TS: math.MinInt64 + 1, Value: []byte("min+1")},
	}
	if _, err := e.Append(ctx, "edge", want); err != nil {
		t.Fatal(err)
	}
	queries := map[string]tiers.Query{
		"all":           tiers.AllRecords(),
		"bounded":       {To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64},
		"since max":     {To: math.MaxUint64, Since: tiers.MaxTS, Until: math.MaxInt64},
		"until min+1":   {To: math.MaxUint64, Since: math.MinInt64, Until: math.MinInt64 + 1},
		"offset 1 only": {From: 1, To: 1, Since: math.MinInt64, Until: math.MaxInt64},
	}
	check := func(where string, tier tiers.Placement) {
		t.Helper()
		for name, q := range queries {
			var exp []tiers.Record
			for i := range want {
				if q.Match(&want[i]) {
					exp = append(exp, want[i])
				}
			}
			got := readAll(t, e, "edge", q)
			if len(got) != len(exp) || len(exp) == 0 {
				t.Fatalf("%s, %s: read %d records, want %d", where, name, len(got), len(exp))
			}
			for i := range got {
				if !got[i].Record.Equal(&exp[i]) || got[i].Tier != tier {
					t.Errorf("%s, %s: record %d = %+v from %v, want %+v from %v", where, name, i, got[i].Record, got[i].Tier, exp[i], tier)
				}
			}
		}
	}
	for i := range want {
		want[i].Offset = uint64(i)
	}
	check("in memory", tiers.Hot)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	e.Close(ctx)
	e = openWithCold(t, dir, storeURL)
	check("warm", tiers.Warm)
	// The records alternate UTC days, so each is its own segment.
	segs, err := e.catalog.Segments(ctx, "edge")
	if err != nil || len(segs) != len(want) {
		t.Fatalf("%d segments (%v), want one per record: they alternate days", len(segs), err)
	}
	for _, m := range segs {
		if _, err := e.Offload(ctx, "edge", m.Base, false); err != nil {
			t.Fatal(err)
		}
	}
	check("cold", tiers.Cold)
	if rep := wantVerifyClean(t, e); len(rep.Streams) != 1 {
		t.Errorf("verify covered %d streams", len(rep.Streams))
	}
}
