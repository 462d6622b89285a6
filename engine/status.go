package engine

import (
	"context"
	"time"

	"github.com/tierd/tierd/tiers"
)

// Status is the engine's state at a glance.
type Status struct {
	Started        time.Time
	Streams        int
	HotBytes       int64 // memory in use by all streams
	HotMaxBytes    int64
	HotUnpersisted int64 // bytes not yet persisted warm
	HotSegments    int
	WarmBytes      int64
	WarmSegments   int
	WALFiles       int
	WALBytes       int64
	WALSync        string
	WALFailed      string // the sticky storage error, if writes are disabled
}

// Status reports the engine's state.
func (e *Engine) Status(ctx context.Context) Status {
	hs := e.hot.Stats()
	st := Status{
		Started: e.started, Streams: hs.Streams,
		HotBytes: hs.Bytes, HotMaxBytes: hs.MaxBytes, HotUnpersisted: hs.Unpersisted, HotSegments: hs.Segments,
		WALFiles: hs.WAL.Files, WALBytes: hs.WAL.Bytes, WALSync: hs.WAL.Sync,
	}
	if hs.WAL.Failed != nil {
		st.WALFailed = hs.WAL.Failed.Error()
	}
	if cs, err := e.catalog.Streams(ctx); err == nil {
		for _, s := range cs {
			st.WarmSegments += s.Segments
			st.WarmBytes += s.Bytes
		}
	}
	return st
}

// TierStatus summarises what one tier holds across every stream.
type TierStatus struct {
	Streams  int // streams with at least one segment in the tier
	Segments int
	Bytes    int64 // for cold, the objects' size
	// OldestTS and NewestTS bound the records' ts (Unix ns) in the tier,
	// when Segments > 0.
	OldestTS, NewestTS int64
	// OldestSealedAt is when the tier's oldest sealed segment sealed, what
	// the policies' ages count from; zero when the tier holds only the
	// active segment.
	OldestSealedAt time.Time
	// BudgetBytes is the tier's budget (hot.max_bytes, warm.max_bytes), 0
	// for none; BudgetUsed is what counts against it: memory in use for
	// hot, the files on local disk for warm.
	BudgetBytes, BudgetUsed int64
}

// Tiers summarises each tier: every tier appears, empty ones with zero
// segments; cold only when the engine has a cold tier.
func (e *Engine) Tiers(ctx context.Context) (map[tiers.Placement]TierStatus, error) {
	out := map[tiers.Placement]TierStatus{tiers.Hot: {}, tiers.Warm: {}}
	if e.cold != nil {
		out[tiers.Cold] = TierStatus{}
	}
	for _, name := range e.hot.StreamNames() {
		segs, err := e.Segments(ctx, name)
		if err != nil {
			return nil, err
		}
		seen := map[tiers.Placement]bool{}
		for _, s := range segs {
			for _, p := range s.Placements.List() {
				t := out[p]
				if !seen[p] {
					seen[p] = true
					t.Streams++
				}
				if t.Segments == 0 || s.MinTS < t.OldestTS {
					t.OldestTS = s.MinTS
				}
				if t.Segments == 0 || s.MaxTS > t.NewestTS {
					t.NewestTS = s.MaxTS
				}
				if !s.Active && (t.OldestSealedAt.IsZero() || s.SealedAt.Before(t.OldestSealedAt)) {
					t.OldestSealedAt = s.SealedAt
				}
				t.Segments++
				if p == tiers.Cold && s.ColdBytes > 0 {
					t.Bytes += s.ColdBytes
				} else {
					t.Bytes += s.Bytes
				}
				out[p] = t
			}
		}
	}
	hs := e.hot.Stats()
	h := out[tiers.Hot]
	h.BudgetBytes, h.BudgetUsed = hs.MaxBytes, hs.Bytes
	out[tiers.Hot] = h
	w := out[tiers.Warm]
	w.BudgetBytes, w.BudgetUsed = e.opts.WarmMaxBytes, w.Bytes
	out[tiers.Warm] = w
	return out, nil
}
