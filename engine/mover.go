package engine

import (
	"context"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/mover"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// The move protocol lives in package mover; the engine builds the Mover over
// its catalog and tiers (Open) and keeps the methods the server, tierctl
// and the migrator call, which delegate to it.

// Errors of moves, as the server and tierctl know them (mover's sentinels).
var (
	// ErrNotPersisted reports a segment that is still active or only in
	// memory: it must be sealed and persisted warm before it can move.
	ErrNotPersisted = mover.ErrNotPersisted
	// ErrNoColdTier reports an offload on an engine without a cold store.
	ErrNoColdTier = mover.ErrNoColdTier
	// ErrRefused reports a destructive step that the catalog and the
	// configuration do not justify.
	ErrRefused = mover.ErrRefused
)

// PlanInput is mover.Mover.PlanInput.
func (e *Engine) PlanInput(ctx context.Context, stream string) ([]policy.Segment, error) {
	return e.mover.PlanInput(ctx, stream)
}

// Execute is mover.Mover.Execute: it performs one planned action.
func (e *Engine) Execute(ctx context.Context, a policy.Action) error {
	return e.mover.Execute(ctx, a)
}

// Settle is mover.Mover.Settle.
func (e *Engine) Settle(ctx context.Context) error { return e.mover.Settle(ctx) }

// LastFailure is mover.Mover.LastFailure: a segment's last failed move as
// the catalog keeps it.
func (e *Engine) LastFailure(ctx context.Context, stream string, base uint64) (msg string, at time.Time, attempts int, ok bool, err error) {
	return e.mover.LastFailure(ctx, stream, base)
}

// Failures is mover.Mover.Failures: every segment's last failed move.
func (e *Engine) Failures(ctx context.Context) ([]catalog.Failure, error) {
	return e.mover.Failures(ctx)
}

// Offload is mover.Mover.Offload: it moves one sealed segment to the cold
// tier now.
func (e *Engine) Offload(ctx context.Context, stream string, base uint64, keepWarm bool) (tiers.SegmentMeta, error) {
	return e.mover.Offload(ctx, stream, base, keepWarm)
}

// hotView is the hot tier as the mover sees it (mover.Hot). It reads e.hot
// when called: the mover recovers moves before the hot tier opens, and
// asks nothing of it then.
type hotView struct{ e *Engine }

func (h hotView) Resident(stream string) ([]uint64, bool) {
	sn := h.e.hot.Snapshot(stream)
	segs := sn.Segments()
	bases := make([]uint64, len(segs))
	for i, s := range segs {
		bases[i] = s.Base
	}
	return bases, sn.Known
}

func (h hotView) Evict(stream string, upTo uint64) { h.e.hot.Evict(stream, upTo) }

// Table describes stream's Iceberg table (server.TablesBackend):
// tablesync.ErrDisabled without tables, tablesync.ErrNoTable before it has
// one.
func (e *Engine) Table(ctx context.Context, stream string) (api.Table, error) {
	return e.tables.Table(ctx, stream)
}

// SyncTables makes the table of stream (every stream when "") exactly its
// retained cold segments now (server.TablesBackend).
func (e *Engine) SyncTables(ctx context.Context, stream string) (api.TableSyncReport, error) {
	return e.tables.SyncTables(ctx, stream)
}

// TablesEnabled reports whether the engine publishes Iceberg tables
// (server.TablesBackend): tables.enabled with a cold store.
func (e *Engine) TablesEnabled() bool { return e.tables.Enabled() }
