// Package mover owns moving segments between tiers: the move protocol of
// docs/architecture.md (intents, offload with upload, verify and commit,
// drop-warm, evict, tombstone and delete), the recovery at start-up of moves
// a crash interrupted, settling while tierd runs, per-segment move locks,
// the justification of every deletion (justify.go) and each segment's record
// of its last failure, which the catalog keeps.
//
// It works over narrow interfaces: catalog.Moves, and the Warm, Cold and Hot
// interfaces below, so it is tested with a real warm store, a real cold
// store and a real catalog and no hot tier. It imports no hot package: what
// the hot tier must tell it (what is in memory) and do for it (evict) is
// the Hot interface, which the engine implements over its hot tier.
package mover

import (
	"context"
	"iter"
	"log/slog"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/internal/keylock"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
	"github.com/tierd/tierd/warm"
)

// Warm is what moves need of the warm store (*warm.Store): read a segment
// file to upload it, remove one, name its path, and list them at start-up.
type Warm interface {
	Acquire(stream string, base uint64) (*warm.Reader, error)
	Remove(stream string, base uint64) error
	Path(stream string, base uint64) string
	List() ([]warm.SegmentFile, error)
}

// Cold is what moves need of the cold tier (*cold.Tier): put a segment's
// object and verify it (Upload), check an object against the catalogued
// segment (Check, returning its size), delete it, and ask whether the store
// answers at all (CheckStore).
type Cold interface {
	Upload(ctx context.Context, m tiers.SegmentMeta, records iter.Seq2[tiers.Record, error]) (int64, error)
	Check(ctx context.Context, m tiers.SegmentMeta) (int64, error)
	Delete(ctx context.Context, m tiers.SegmentMeta) error
	CheckStore(ctx context.Context) error
}

// Hot is what the hot tier tells the mover and does for it. The engine
// implements it over its hot tier; a mover without one (nil) sees nothing
// in memory.
type Hot interface {
	// Resident returns the bases of the stream's segments in memory, in
	// offset order (persisted or not), and whether the hot tier knows the
	// stream at all.
	Resident(stream string) (bases []uint64, known bool)
	// Evict drops the stream's persisted resident segments that end below
	// upTo from memory: a tombstoned segment leaves memory with its
	// tombstone.
	Evict(stream string, upTo uint64)
}

// Tables is what moves need of the Iceberg tables over the cold tier
// (tablesync.Loop). Remove takes segments out of their stream's table in a
// new snapshot: a deletion removes the cold object only after Remove
// returned nil, so no table ever lists an object that is gone. Published
// says that a cold placement of stream was committed; it must not block (the
// loop commits the snapshot later, several placements in one).
type Tables interface {
	Remove(ctx context.Context, stream string, segs []tiers.SegmentMeta) error
	Published(stream string)
}

// Options configures a Mover.
type Options struct {
	Catalog catalog.Moves
	Warm    Warm
	// Cold is the cold tier, or nil for none: an interface holding a nil
	// *cold.Tier is not none, so leave the field unset instead.
	Cold Cold
	// Hot is the hot tier's view, or nil for none.
	Hot Hot
	// Tables are the Iceberg tables over the cold tier, or nil for none
	// (tables.enabled false, or no cold tier).
	Tables Tables
	// Config is what every destructive step is justified against when it
	// executes (justify.go): nil refuses every deletion.
	Config *policy.Config
	Logger *slog.Logger
	Now    func() time.Time
}

// Mover performs moves. It is safe for concurrent use: moves of one segment
// run one at a time, moves of different segments in parallel.
type Mover struct {
	cat   catalog.Moves
	warm  Warm
	cold  Cold
	hot   Hot
	tbl   Tables
	cfg   *policy.Config
	log   *slog.Logger
	now   func() time.Time
	locks keylock.Map[segKey] // one move of a segment at a time
}

// New returns a Mover over opts' catalog and tiers.
func New(opts Options) *Mover {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Mover{cat: opts.Catalog, warm: opts.Warm, cold: opts.Cold, hot: opts.Hot, tbl: opts.Tables, cfg: opts.Config, log: opts.Logger, now: opts.Now}
}

// Lock takes the move lock of segment (stream, base), for steps outside the
// mover that must not run beside a move of it (verify's repair), and
// returns its release.
func (mv *Mover) Lock(stream string, base uint64) (unlock func()) {
	return mv.locks.Lock(segKey{stream, base})
}

// Busy reports whether a move of segment (stream, base) is running now.
func (mv *Mover) Busy(stream string, base uint64) bool { return mv.locks.Busy(segKey{stream, base}) }

// segKey names one segment.
type segKey struct {
	stream string
	base   uint64
}
