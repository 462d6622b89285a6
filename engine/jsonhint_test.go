package engine

import (
	"context"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// TestJSONHintReachesTheWarmSegment: the JSON hint an append's records
// carry (the server's parser sets it) goes through the memory tier into the
// warm segment the seal writes, which is what the offload converts; the
// offload's cold copy reads back as the records appended.
func TestJSONHintReachesTheWarmSegment(t *testing.T) {
	ctx := context.Background()
	_, storeURL := fileStore(t)
	e := openClocked(t, t.TempDir(), storeURL, newClock(t0))
	defer e.Close(ctx)
	recs := batch(30, 0)
	for i := range recs {
		recs[i].Value = []byte(`{"n":1}`)
		recs[i].JSON = i%2 == 0
	}
	if _, err := e.Append(ctx, "s", recs); err != nil {
		t.Fatal(err)
	}
	if res, err := e.Seal(ctx, "s"); err != nil || !res.Sealed {
		t.Fatalf("Seal = %+v, %v", res, err)
	}
	r, err := e.warm.Acquire("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rec, err := range r.Scan(tiers.AllRecords()) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.JSON != recs[rec.Offset].JSON {
			t.Fatalf("warm offset %d has JSON hint %v, appended with %v", rec.Offset, rec.JSON, recs[rec.Offset].JSON)
		}
		n++
	}
	r.Release()
	if n != len(recs) {
		t.Fatalf("warm segment holds %d records, want %d", n, len(recs))
	}
	m, err := e.Offload(ctx, "s", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for rec, err := range e.cold.Scan(ctx, m, tiers.AllRecords()) {
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Equal(&recs[rec.Offset]) {
			t.Fatalf("cold offset %d: %+v, appended %+v", rec.Offset, rec, recs[rec.Offset])
		}
		got++
	}
	if got != len(recs) {
		t.Fatalf("cold copy holds %d records, want %d", got, len(recs))
	}
}
