package engine

import (
	"context"
	"time"

	"github.com/tierd/tierd/tiers"
)

// Status is the engine's state at a glance.
type Status struct {
	// Mode is "local" for an engine; a cluster node (package cluster)
	// answers "cluster" with its NodeID and Epoch, both empty here.
	Mode           string
	NodeID         string
	Epoch          uint64
	Started        time.Time
	Streams        int
	HotBytes       int64 // memory in use by all streams
	HotMaxBytes    int64
	HotUnpersisted int64 // bytes not yet persisted warm
	HotSegments    int
	WarmBytes      int64 // files of the segments with a warm copy
	WarmSegments   int   // segments with a warm copy (not those only in cold)
	WALFiles       int
	WALBytes       int64
	WALSync        string
	WALFailed      string // the sticky storage error, if writes are disabled
	// Writes is "ok" while appends can be made durable, else the cause
	// (WriteHealth): wal_failed, disk_full, out_of_descriptors or
	// storage_unavailable. WritesError is its latest error, WritesSince
	// when it began.
	Writes      string
	WritesError string
	WritesSince time.Time
	// ColdStore is the cold store's state: "ok", "unavailable" (a call
	// timed out, cold.read_timeout: calls fail fast until a probe is
	// answered), or "" without a cold tier. ColdStoreError is the timeout
	// and ColdStoreSince when it began, while unavailable.
	ColdStore      string
	ColdStoreError string
	ColdStoreSince time.Time
}

// Status reports the engine's state.
func (e *Engine) Status(ctx context.Context) Status {
	hs := e.hot.Stats()
	st := Status{
		Mode: "local", Started: e.started, Streams: hs.Streams,
		HotBytes: hs.Bytes, HotMaxBytes: hs.MaxBytes, HotUnpersisted: hs.Unpersisted, HotSegments: hs.Segments,
		WALFiles: hs.WAL.Files, WALBytes: hs.WAL.Bytes, WALSync: hs.WAL.Sync,
	}
	if hs.WAL.Failed != nil {
		st.WALFailed = hs.WAL.Failed.Error()
	}
	st.Writes = "ok"
	if h := e.WriteHealth(); h.Cause != "" {
		st.Writes, st.WritesError, st.WritesSince = h.Cause, h.Err.Error(), h.Since
	}
	if e.cold != nil {
		st.ColdStore = "ok"
		if h := e.cold.Health(); !h.Available {
			st.ColdStore, st.ColdStoreError, st.ColdStoreSince = "unavailable", h.Err, h.Since
		}
	}
	// Only segments with a warm copy: the catalog's per-stream totals also
	// count segments moved to cold, whose warm files are gone.
	for _, name := range e.hot.StreamNames() {
		metas, err := e.catalog.Segments(ctx, name)
		if err != nil {
			continue
		}
		for i := range metas {
			if metas[i].Placements.Has(tiers.Warm) {
				st.WarmSegments++
				st.WarmBytes += metas[i].Bytes
			}
		}
	}
	return st
}

// TierStatus summarises what one tier holds across every stream.
type TierStatus struct {
	TierUsage
	Streams int // streams with at least one segment in the tier
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
	infos, err := e.Streams(ctx)
	if err != nil {
		return nil, err
	}
	for i := range infos {
		for p, u := range infos[i].Tiers {
			t := out[p]
			t.Streams++
			t.merge(u)
			out[p] = t
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
