package hot

import (
	"iter"
	"time"

	"github.com/tierd/tierd/tiers"
)

// Snapshot is a consistent read view of one stream's memory: the records
// that were durable when it was taken, in the segments resident then.
// Taking it costs one lock; reading it takes none, and a segment evicted
// afterwards stays readable through the view.
type Snapshot struct {
	Known bool   // the tier knows the stream
	Next  uint64 // offsets below Next are durable and readable somewhere
	views []view
}

// SegmentState describes one resident segment at snapshot time.
type SegmentState struct {
	Base, Last   uint64
	Count        uint64
	Bytes        int64
	MinTS, MaxTS int64
	SealedAt     time.Time // zero for the active segment
	Active       bool
	Persisted    bool
}

// Snapshot returns a read view of stream.
func (t *Tier) Snapshot(name string) Snapshot {
	s := t.getStream(name)
	if s == nil {
		return Snapshot{}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	end := s.visible.Load()
	sn := Snapshot{Known: true, Next: end}
	sn.views = make([]view, 0, len(s.mu.segs))
	for _, seg := range s.mu.segs {
		if seg.base >= end {
			break
		}
		v := seg.viewLocked(end)
		v.state = SegmentState{Bytes: seg.bytes, SealedAt: seg.sealed, Active: seg == s.mu.active, Persisted: seg.persisted}
		sn.views = append(sn.views, v)
	}
	return sn
}

// First returns the lowest offset resident in memory, or Next if none is.
func (sn *Snapshot) First() uint64 {
	if len(sn.views) == 0 {
		return sn.Next
	}
	return sn.views[0].base
}

// Segments describes the resident segments in offset order.
func (sn *Snapshot) Segments() []SegmentState {
	out := make([]SegmentState, len(sn.views))
	for i := range sn.views {
		v := &sn.views[i]
		out[i] = v.state
		out[i].Base, out[i].Last, out[i].Count, out[i].MinTS, out[i].MaxTS = v.base, v.last(), uint64(len(v.idx)), v.minTS, v.maxTS
	}
	return out
}

// Resident reports whether the segment starting at base is in memory.
func (sn *Snapshot) Resident(base uint64) bool {
	for i := range sn.views {
		if sn.views[i].base == base {
			return true
		}
	}
	return false
}

// Get returns the record at offset if it is resident.
func (sn *Snapshot) Get(offset uint64) (tiers.Record, bool, error) {
	lo, hi := 0, len(sn.views)
	for lo < hi { // the last view with base <= offset
		m := (lo + hi) / 2
		if sn.views[m].base <= offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return tiers.Record{}, false, nil
	}
	v := &sn.views[lo-1]
	if offset > v.last() {
		return tiers.Record{}, false, nil
	}
	r, err := v.get(offset)
	return r, err == nil, err
}

// Scan yields the resident records matching q in offset order. Values alias
// immutable memory and stay valid after eviction.
func (sn *Snapshot) Scan(q tiers.Query) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		for i := range sn.views {
			for r, err := range sn.views[i].scan(&q) {
				if !yield(r, err) || err != nil {
					return
				}
			}
		}
	}
}
