package catalog

import "github.com/tierd/tierd/tiers"

// Span is a run of offsets [From, To) a read must account for: held by a
// live segment (Seg), expired (tombstoned, or below the retention
// watermark), or else missing (Seg nil, not Expired): damage.
type Span struct {
	From, To uint64
	Seg      *tiers.SegmentMeta
	Expired  bool
}

// Spans accounts for every offset in [from, to] (to < MaxUint64) given
// the segments Locate found and the stream's retention watermark, in
// offset order, with adjacent expired runs merged so that a read names the
// whole range that expired. The engine's read path and the cluster's
// route reads with it.
func Spans(segs []tiers.SegmentMeta, from, to, retained uint64) []Span {
	var out []Span
	add := func(sp Span) {
		if sp.From >= sp.To {
			return
		}
		if n := len(out); n > 0 && sp.Expired && out[n-1].Expired && out[n-1].To == sp.From {
			out[n-1].To = sp.To
			return
		}
		out = append(out, sp)
	}
	unheld := func(a, b uint64) { // no segment holds [a, b)
		add(Span{From: a, To: min(b, max(a, retained)), Expired: true})
		add(Span{From: max(a, retained), To: b})
	}
	expect := from
	for i := range segs {
		seg := &segs[i]
		if seg.Last < expect {
			continue
		}
		if seg.Base > to {
			break
		}
		unheld(expect, seg.Base)
		sp := Span{From: max(seg.Base, expect), To: min(seg.Last, to) + 1, Expired: !seg.Tombstoned.IsZero()}
		if !sp.Expired {
			sp.Seg = seg
		}
		add(sp)
		expect = seg.Last + 1
		if seg.Last >= to {
			return out
		}
	}
	unheld(expect, to+1)
	return out
}
