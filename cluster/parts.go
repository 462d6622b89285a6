package cluster

import (
	"context"
	"iter"

	"github.com/tierd/tierd/cluster/registry"
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
	// LastFlushError is the most recent flush's failure, nil once one
	// succeeds.
	LastFlushError() error
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
	Run(ctx context.Context) error
	// Work claims one claimable job and runs it to its commit; ok is false
	// when no job was claimable.
	Work(ctx context.Context) (ok bool, err error)
	// Held counts the jobs this node holds now.
	HeldJobs() int
}

// parts are the Node's parts.
type parts struct {
	seq  appender
	rd   readPath
	comp compaction
	reg  *registry.Registry
}
