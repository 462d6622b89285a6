package cluster

import (
	"context"
	"iter"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// The Node holds each part through the few calls it makes of it: the seams
// where Open plugs in cluster/sequencer, cluster/reader,
// cluster/compactor and cluster/registry (open.go adapts each).

// appender is the write path (cluster/sequencer).
type appender interface {
	// Append sequences one batch: its first offset, and whether it was an
	// idempotent producer's retry answered with the first attempt's
	// offsets.
	Append(ctx context.Context, stream string, p tiers.Producer, recs []tiers.Record) (first uint64, dup bool, err error)
	// Fenced is the error that stopped the sequencer for good (a newer
	// epoch of this node_id), or nil.
	Fenced() error
	// Close flushes what is pending and stops taking batches.
	Close(ctx context.Context) error
}

// readPath is the read path (cluster/reader).
type readPath interface {
	Read(ctx context.Context, stream string, q tiers.Query) iter.Seq2[engine.Item, error]
	WaitFor(ctx context.Context, stream string, offset uint64) error
	// CacheBytes is what the memory and disk caches hold now.
	CacheBytes() (mem, disk int64)
	Close() error
}

// compaction is the compactor (cluster/compactor).
type compaction interface {
	// Run plans, works and collects garbage until ctx ends.
	Run(ctx context.Context)
	// Compact makes a job of stream's uncompacted ranges now, whatever
	// their size and age, and works it; it returns the segment committed,
	// and false when there was nothing to compact.
	Compact(ctx context.Context, stream string) (tiers.SegmentMeta, bool, error)
}

// membership is the node registry (cluster/registry).
type membership interface {
	Epoch() int64
	Nodes(ctx context.Context) ([]NodeInfo, error)
	Leave(ctx context.Context) error
}

// parts are the Node's parts.
type parts struct {
	seq  appender
	rd   readPath
	comp compaction
	reg  membership
}
