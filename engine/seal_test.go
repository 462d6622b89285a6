package engine

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// segmentAt returns the listing's row of the segment starting at base.
func segmentAt(t *testing.T, e *Engine, stream string, base uint64) SegmentInfo {
	t.Helper()
	segs, err := e.Segments(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if s.Base == base {
			return s
		}
	}
	t.Fatalf("no segment of %s at %d in %+v", stream, base, segs)
	return SegmentInfo{}
}

// TestSealAnswersTheListing: a seal persists the active segment warm and
// answers it as the listing shows it; with nothing appended since, it
// answers the same segment with Sealed false; the segment can be
// offloaded at once, and the offload's segment (Describe) is the
// listing's too, hot while resident.
func TestSealAnswersTheListing(t *testing.T) {
	ctx := context.Background()
	_, storeURL := fileStore(t)
	e := openClocked(t, t.TempDir(), storeURL, newClock(t0))
	defer e.Close(ctx)
	fill(t, e, "s", 20) // well under a segment: all active
	res, err := e.Seal(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Sealed || !res.HasSegment || res.Segment.Base != 0 || res.Segment.Last != 19 || res.Segment.Active {
		t.Fatalf("Seal = %+v", res)
	}
	if want := tiers.Of(tiers.Hot, tiers.Warm); res.Segment.Placements != want || res.Segment.Digest.IsZero() {
		t.Fatalf("sealed segment placed %s (digest %v), want %s and a digest", res.Segment.Placements, res.Segment.Digest, want)
	}
	if row := segmentAt(t, e, "s", 0); !reflect.DeepEqual(row, res.Segment) {
		t.Fatalf("Seal answered %+v, the listing says %+v", res.Segment, row)
	}

	again, err := e.Seal(ctx, "s")
	if err != nil || again.Sealed || !again.HasSegment || !reflect.DeepEqual(again.Segment, res.Segment) {
		t.Fatalf("Seal with nothing to seal = %+v, %v; want the last sealed segment, Sealed false", again, err)
	}

	m, err := e.Offload(ctx, "s", 0, false)
	if err != nil {
		t.Fatalf("offload right after the seal: %v", err)
	}
	got := e.Describe(m)
	if want := tiers.Of(tiers.Hot, tiers.Cold); got.Placements != want {
		t.Fatalf("offloaded segment described as %s, want %s (still resident)", got.Placements, want)
	}
	if row := segmentAt(t, e, "s", 0); !reflect.DeepEqual(row, got) {
		t.Fatalf("offload answered %+v, the listing says %+v", got, row)
	}

	fill(t, e, "s", 10)
	if res, err = e.Seal(ctx, "s"); err != nil || !res.Sealed || res.Segment.Base != 20 {
		t.Fatalf("second seal = %+v, %v", res, err)
	}
	if n := len(readAll(t, e, "s", tiers.AllRecords())); n != 30 {
		t.Fatalf("read %d records, want 30", n)
	}

	if _, err := e.Seal(ctx, "nope"); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("Seal of an unknown stream: %v", err)
	}
	if _, err := e.Seal(ctx, "../x"); !errors.Is(err, tiers.ErrInvalidStreamName) {
		t.Fatalf("Seal of an invalid name: %v", err)
	}
}

// TestSealAfterARestart: a stream known from the catalog after a restart,
// everything persisted and nothing resident, has nothing to seal: the
// answer is its last segment from the catalog, placed warm only.
func TestSealAfterARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := open(t, dir, nil)
	fill(t, e, "s", 10)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	e.Close(ctx)
	e = open(t, dir, func(o *Options) { o.HotResidency = 1 }) // nothing resident
	defer e.Close(ctx)
	res, err := e.Seal(ctx, "s")
	if err != nil || res.Sealed || !res.HasSegment || res.Segment.Base != 0 || res.Segment.Placements != tiers.Of(tiers.Warm) {
		t.Fatalf("Seal after a restart = %+v, %v; want the warm segment 0, not sealed now", res, err)
	}
}

// TestVerifyCountsRecordsOnlyInMemory: records not yet persisted are not
// checked, and verify says how many there are instead of 0 0 0 0.
func TestVerifyCountsRecordsOnlyInMemory(t *testing.T) {
	ctx := context.Background()
	e := open(t, t.TempDir(), nil)
	defer e.Close(ctx)
	fill(t, e, "mem", 250) // ~40 KiB: sealed by size more than once, none persisted yet
	rep, err := e.Verify(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Streams) != 1 {
		t.Fatalf("streams %+v", rep.Streams)
	}
	sc := rep.Streams[0]
	persisted := sc.Next
	if sc.UnpersistedRecords+persisted != 250 || sc.UnpersistedSegments == 0 && sc.UnpersistedRecords > 0 {
		t.Fatalf("verify of 250 records: %+v; want persisted + unpersisted = 250", sc)
	}
	if _, err := e.Seal(ctx, "mem"); err != nil {
		t.Fatal(err)
	}
	rep, err = e.Verify(ctx, "mem", nil)
	if err != nil {
		t.Fatal(err)
	}
	sc = rep.Streams[0]
	if sc.Next != 250 || sc.UnpersistedRecords != 0 || sc.UnpersistedSegments != 0 || sc.Segments == 0 || len(rep.Findings) != 0 {
		t.Fatalf("verify after a seal: %+v, findings %+v", sc, rep.Findings)
	}
	fill(t, e, "mem", 10)
	rep, err = e.Verify(ctx, "mem", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc = rep.Streams[0]; sc.UnpersistedRecords != 10 || sc.UnpersistedSegments != 1 || sc.Next != 250 {
		t.Fatalf("verify with 10 new records: %+v", sc)
	}
}
