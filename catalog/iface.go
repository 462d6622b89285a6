package catalog

import (
	"context"
	"time"

	"github.com/tierd/tierd/tiers"
)

// The interfaces below are the catalog's contract, cut along its callers:
// the read path (Reads), the append path's persister (Appends) and the
// move protocol (Moves). Each caller holds only the one it uses. The bbolt
// Catalog of this package implements all three (Store); a second
// implementation (a shared PostgreSQL catalog) implements Store and passes
// the conformance suite in catalog/catalogtest.

// Reads is what routing a read, listing segments and verifying a stream
// need. Segments and Locate answer in offset order. An unknown stream wraps
// tiers.ErrStreamNotFound, an unknown segment tiers.ErrSegmentNotFound.
type Reads interface {
	// Streams lists every stream the catalog knows, ordered by name.
	Streams(ctx context.Context) ([]StreamInfo, error)
	// Segment returns one segment's metadata.
	Segment(ctx context.Context, stream string, base uint64) (tiers.SegmentMeta, error)
	// Segments returns a stream's segments, tombstoned ones included.
	Segments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error)
	// Locate returns the live segments holding offsets [from, to) and the
	// stream's first retained offset.
	Locate(ctx context.Context, stream string, from, to uint64) ([]tiers.SegmentMeta, uint64, error)
	// Retained returns the retained offsets [from, next) and the first live
	// segment (ok is false when there is none).
	Retained(ctx context.Context, stream string) (from, next uint64, first tiers.SegmentMeta, ok bool, err error)
	// Coverage checks that every retained offset is held exactly once.
	Coverage(ctx context.Context, stream string) (Coverage, error)
}

// Appends is what persisting a sealed segment needs: registering it creates
// its stream when needed. A segment that overlaps a different one wraps
// ErrOverlap; putting the same segment again replaces it.
type Appends interface {
	PutSegment(ctx context.Context, m tiers.SegmentMeta) error
}

// Moves is what the move protocol (offload, drop-warm, tombstone, delete,
// recovery) needs: intents that survive a crash, atomic commits of a
// segment's new placement or its deletion, and each segment's last failure.
type Moves interface {
	// Segment and Segments as in Reads.
	Segment(ctx context.Context, stream string, base uint64) (tiers.SegmentMeta, error)
	Segments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error)
	Streams(ctx context.Context) ([]StreamInfo, error)
	Retained(ctx context.Context, stream string) (from, next uint64, first tiers.SegmentMeta, ok bool, err error)

	// PutIntent records a move before it starts; a different intent for
	// the same segment wraps ErrIntentConflict.
	PutIntent(ctx context.Context, in Intent) error
	// Intent returns one segment's intent.
	Intent(ctx context.Context, stream string, base uint64) (Intent, bool, error)
	// Intents returns every intent, ordered by stream and base.
	Intents(ctx context.Context) ([]Intent, error)
	// ClearIntent removes one segment's intent; clearing none is no error.
	ClearIntent(ctx context.Context, stream string, base uint64) error
	// UpdateSegment changes one segment's metadata in one transaction.
	UpdateSegment(ctx context.Context, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error)
	// CommitMove changes a segment's metadata and clears its intent in one
	// transaction: both or neither.
	CommitMove(ctx context.Context, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error)
	// Tombstone marks the stream's live segments up to base deleted, oldest
	// first, each justified by justify, and moves the retention watermark.
	Tombstone(ctx context.Context, stream string, base uint64, at time.Time, justify func(*tiers.SegmentMeta) error) ([]tiers.SegmentMeta, error)
	// CommitDelete removes a tombstoned segment and its intent in one
	// transaction.
	CommitDelete(ctx context.Context, stream string, base uint64) error

	// RecordFailure and RecordRefusal keep a segment's last failed attempt
	// (counted), ClearFailure forgets it after a success.
	RecordFailure(ctx context.Context, stream string, base uint64, msg string) error
	RecordRefusal(ctx context.Context, stream string, base uint64, msg string) error
	ClearFailure(ctx context.Context, stream string, base uint64) error
	// LastError returns one segment's last failure, Failures all of them.
	LastError(ctx context.Context, stream string, base uint64) (Failure, bool, error)
	Failures(ctx context.Context) ([]Failure, error)
}

// Store is a whole catalog: what a second implementation provides.
type Store interface {
	Reads
	Appends
	Moves
	// Close releases the catalog; later calls wrap tiers.ErrClosed.
	Close() error
}

var _ Store = (*Catalog)(nil)
