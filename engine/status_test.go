package engine

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// TestStatusWarmCountsOnlyWarmCopies: Status's warm segments and bytes,
// and Tiers' warm entry, count the segments that have a warm copy on local
// disk: not those moved to cold (the warm file dropped), and not the hot
// ones not yet persisted. A segment both warm and cold counts in both.
func TestStatusWarmCountsOnlyWarmCopies(t *testing.T) {
	ctx := context.Background()
	storeURL := (&url.URL{Scheme: "file", Path: filepath.Join(t.TempDir(), "cold")}).String()
	e := open(t, t.TempDir(), func(o *Options) { o.Cold = openCold(t, storeURL) })
	defer e.Close(ctx)
	fill(t, e, "a", 600)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	segs := sealedSegments(t, e, "a")
	if len(segs) < 3 {
		t.Fatalf("%d sealed segments, the test needs 3", len(segs))
	}
	if _, err := e.Offload(ctx, "a", segs[0].Base, false); err != nil { // cold only
		t.Fatal(err)
	}
	if _, err := e.Offload(ctx, "a", segs[1].Base, true); err != nil { // warm and cold
		t.Fatal(err)
	}
	fill(t, e, "a", 10) // an active segment, hot only

	var wantSegs int
	var wantBytes int64
	for _, s := range sealedSegments(t, e, "a") {
		if s.Placements.Has(tiers.Warm) {
			wantSegs++
			wantBytes += s.Bytes
		}
	}
	if wantSegs != len(segs)-1 {
		t.Fatalf("%d segments placed warm, want %d: the offloads did not do what the test needs", wantSegs, len(segs)-1)
	}
	st := e.Status(ctx)
	if st.WarmSegments != wantSegs || st.WarmBytes != wantBytes {
		t.Errorf("Status: %d warm segments of %d bytes, want %d of %d (only warm copies)", st.WarmSegments, st.WarmBytes, wantSegs, wantBytes)
	}
	ts, err := e.Tiers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w := ts[tiers.Warm]; w.Segments != wantSegs || w.Bytes != wantBytes || w.BudgetUsed != wantBytes {
		t.Errorf("Tiers: warm %d segments, %d bytes, %d budget used; want %d, %d, %d", w.Segments, w.Bytes, w.BudgetUsed, wantSegs, wantBytes, wantBytes)
	}
	if c := ts[tiers.Cold]; c.Segments != 2 {
		t.Errorf("Tiers: %d cold segments, want 2", c.Segments)
	}
}
