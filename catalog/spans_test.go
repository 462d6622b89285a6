package catalog_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// Spans names every offset of a read: expired below the watermark and in
// tombstoned segments (merged into one run), held by live segments, and
// missing (damage) where nothing holds an offset at or above the watermark.
func TestSpans(t *testing.T) {
	dead := tiers.SegmentMeta{Base: 10, Last: 19, Tombstoned: time.Unix(1, 0)}
	live := tiers.SegmentMeta{Base: 20, Last: 29}
	later := tiers.SegmentMeta{Base: 40, Last: 49}
	segs := []tiers.SegmentMeta{dead, live, later}
	got := catalog.Spans(segs, 0, 45, 20)
	want := []catalog.Span{
		{From: 0, To: 20, Expired: true}, // below the watermark, then tombstoned: one run
		{From: 20, To: 30, Seg: &segs[1]},
		{From: 30, To: 40}, // nothing holds it, above the watermark: missing
		{From: 40, To: 46, Seg: &segs[2]},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Spans =\n%+v\nwant\n%+v", got, want)
	}
	if got := catalog.Spans(nil, 5, 7, 0); !reflect.DeepEqual(got, []catalog.Span{{From: 5, To: 8}}) {
		t.Fatalf("Spans with no segment and nothing retained away = %+v; want one missing run", got)
	}
}
