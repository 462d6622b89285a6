package cluster

import (
	"context"
	"fmt"

	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/mover"
	"github.com/tierd/tierd/tiers"
	"github.com/tierd/tierd/warm"
)

// Retention in cluster mode is local mode's: the migrator plans over the
// catalog's segments (all cold: compaction makes them Parquet) and the
// mover executes its expire actions, tombstone then delete after
// cold.delete_delay, each justified again against the configuration and
// the catalog when it runs. The mover runs over the PostgreSQL catalog,
// the cold tier and noWarm: a cluster node has no warm files, so there is
// no upload, drop-warm or eviction to plan. Every node may run it: each
// step is a catalog transaction (Tombstone, CommitDelete) that a second
// node finds done, and deleting a deleted object is no error.

// noWarm is the warm store of a node that has none (mover.Warm).
type noWarm struct{}

func (noWarm) Acquire(stream string, base uint64) (*warm.Reader, error) {
	return nil, fmt.Errorf("cluster mode has no warm files (segment %s/%d): %w", stream, base, tiers.ErrSegmentNotFound)
}

// Remove has nothing to remove: a segment of cluster mode never had a
// warm file.
func (noWarm) Remove(string, uint64) error { return nil }

// Path names no file; intents of cluster mode's deletions carry it.
func (noWarm) Path(stream string, base uint64) string {
	return fmt.Sprintf("(cluster: no warm file)/%s/%020d", stream, base)
}

func (noWarm) List() ([]warm.SegmentFile, error) { return nil, nil }

// newMover is the mover of retention over the node's catalog and cold
// tier, its interrupted deletions settled (a failure is logged: the
// migrator plans the deletion again).
func (n *Node) newMover(ctx context.Context) *mover.Mover {
	mo := mover.Options{Catalog: n.cat, Warm: noWarm{}, Cold: n.cold, Config: n.opts.Config, Logger: n.opts.Logger, Now: n.opts.Now}
	if n.tables != nil {
		mo.Tables = n.tables // a deletion leaves the table before its object goes
	}
	mv := mover.New(mo)
	if err := mv.Recover(ctx); err != nil {
		n.opts.Logger.Warn("cluster: settling interrupted deletions failed; the migrator retries them", "err", err)
	}
	return mv
}

// Executor is what the migrator runs in cluster mode: retention (expire
// actions) over the shared catalog. cmd/tierd starts a migrator on it, so
// migrate, explain and the cron schedule work as in local mode.
func (n *Node) Executor() migrator.Executor { return n.mover }
