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
// the conformance suite in catalog/catalogtest, which checks every sentence
// below that says what a call returns or changes.
//
// Rules every method keeps:
//   - Safe for concurrent use. Each call sees one consistent snapshot: a
//     reader running beside a writer sees the catalog before or after each
//     of the writer's calls, never in between.
//   - A context that is already done fails the call with an error wrapping
//     ctx.Err() and changes nothing.
//   - Calls after Close (with arguments that pass the checks done before
//     any transaction) fail with an error wrapping tiers.ErrClosed.
//   - Every change a call reports as done is durable: it survives Close and
//     a reopen of the same catalog (and a crash of the process).
//   - Hot residency is volatile and never stored: tiers.Hot is dropped from
//     every placement set written (PutSegment, UpdateSegment, CommitMove) and
//     never appears in one read. The engine overlays what it holds in memory.
//   - Segments are keyed by (stream, base). Lists of segments are ordered by
//     base, lists of streams by name, lists of intents and failures by stream
//     name and then base. An empty list is an empty slice and no error.
//   - Lookups of an unknown stream wrap tiers.ErrStreamNotFound; of a missing
//     segment (of a known stream or not) tiers.ErrSegmentNotFound. A damaged
//     value is a *tiers.CorruptionError, never a guess.

// Reads is what routing a read, listing segments and verifying a stream
// need.
type Reads interface {
	// Streams lists every stream the catalog knows, ordered by name, with
	// its durable totals. A stream exists from its first PutSegment on and
	// stays when its segments are deleted; its NextOffset and RetainedFrom
	// never move backwards.
	Streams(ctx context.Context) ([]StreamInfo, error)
	// Segment returns the segment (stream, base) as stored: the metadata
	// last put, updated or committed, tiers.Hot dropped. Anything else
	// wraps tiers.ErrSegmentNotFound.
	Segment(ctx context.Context, stream string, base uint64) (tiers.SegmentMeta, error)
	// Segments returns every segment of a known stream ordered by base,
	// tombstoned ones included (Tombstoned set). An unknown stream wraps
	// tiers.ErrStreamNotFound.
	Segments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error)
	// Locate returns the segments of stream that hold any offset in
	// [from, to] — both inclusive — ordered by base, tombstoned ones
	// included so that the router can name an expired range, and the
	// stream's retention watermark (retainedFrom), read from the same
	// snapshot. from > to yields no segments. Its cost follows the answer,
	// not the stream's length. An offset below retainedFrom that no
	// segment holds was deleted by retention; one at or above it is
	// damage. An unknown stream wraps tiers.ErrStreamNotFound.
	Locate(ctx context.Context, stream string, from, to uint64) ([]tiers.SegmentMeta, uint64, error)
	// Retained returns the stream's retention watermark from (offsets
	// below it were deleted by retention), its next offset (one past the
	// highest offset ever catalogued) and the segment starting exactly at
	// from when it is live (ok; false when there is none or it is
	// tombstoned). An unknown stream wraps tiers.ErrStreamNotFound.
	Retained(ctx context.Context, stream string) (from, next uint64, first tiers.SegmentMeta, ok bool, err error)
	// Coverage checks that every retained offset [RetainedFrom, NextOffset)
	// is held by exactly one segment and reports, in offset order, the
	// gaps, the overlaps, the segments misplaced against the watermark and
	// the tombstoned ones (see the Coverage type). An unknown stream wraps
	// tiers.ErrStreamNotFound.
	Coverage(ctx context.Context, stream string) (Coverage, error)
}

// Appends is what persisting a sealed segment needs.
type Appends interface {
	// PutSegment registers m, creating its stream (stamping CreatedAt)
	// when it is new, or replaces the segment with the same (Stream, Base).
	// It drops tiers.Hot from m.Placements. Metadata breaking an invariant
	// (see Catalog.PutSegment: dense offsets, warm or cold among the
	// placements, SealedAt set, ...) or a Base below the stream's
	// retention watermark wraps ErrInvalidSegment; offsets intersecting a
	// different segment of the stream wrap ErrOverlap. Either refusal
	// changes nothing. On success the stream's NextOffset is at least
	// m.Last+1 and its totals count m once.
	PutSegment(ctx context.Context, m tiers.SegmentMeta) error
}

// Moves is what the move protocol (offload, drop-warm, tombstone, delete,
// recovery) needs: intents that survive a crash, atomic commits of a
// segment's new placement or its deletion, and each segment's last failure.
//
// An intent is recorded before a move writes its destination and cleared
// with the move's commit (CommitMove, CommitDelete) or its rollback
// (ClearIntent), so that recovery at start-up finds, in Intents, every move
// a crash interrupted: losing an intent leaks or loses a copy. There is at
// most one intent per segment.
type Moves interface {
	// Segment, Segments, Streams and Retained as in Reads.
	Segment(ctx context.Context, stream string, base uint64) (tiers.SegmentMeta, error)
	Segments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error)
	Streams(ctx context.Context) ([]StreamInfo, error)
	Retained(ctx context.Context, stream string) (from, next uint64, first tiers.SegmentMeta, ok bool, err error)

	// PutIntent records that a move of segment (in.Stream, in.Base)
	// starts; the segment must exist (tiers.ErrSegmentNotFound). A zero
	// Started is stamped with the current time. If the segment already has
	// an intent of the same kind (a retry, or recovery resuming it), only
	// its Key changes: Started, Attempts and LastError are kept. An intent
	// of another kind wraps ErrIntentConflict, an empty or oversized Kind
	// or an oversized Key ErrInvalidIntent; both change nothing.
	PutIntent(ctx context.Context, in Intent) error
	// Intent returns segment (stream, base)'s intent; ok is false, with no
	// error, when it has none (whether or not the segment exists).
	Intent(ctx context.Context, stream string, base uint64) (Intent, bool, error)
	// Intents returns every intent, ordered by stream and base, including
	// those recorded before the catalog was last closed.
	Intents(ctx context.Context) ([]Intent, error)
	// ClearIntent forgets segment (stream, base)'s intent (a rollback, or
	// a committed move whose source is gone). The last failure stays: a
	// rollback is no success. Clearing an absent intent is no error.
	ClearIntent(ctx context.Context, stream string, base uint64) error
	// UpdateSegment applies fn to the stored segment and stores the result
	// in one transaction, returning the segment as stored. Only
	// Placements and ColdBytes may change (anything else wraps
	// ErrInvalidSegment: only Tombstone tombstones), tiers.Hot is dropped,
	// and the result must keep warm or cold (ErrInvalidSegment). fn's error
	// is returned as is. Any refusal changes nothing. fn runs inside the
	// transaction: it must be quick and must not call the Store. A missing
	// segment wraps tiers.ErrSegmentNotFound.
	UpdateSegment(ctx context.Context, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error)
	// CommitMove is a move's commit: in one transaction it applies fn as
	// UpdateSegment does, clears the segment's intent and forgets its last
	// failure. All three happen, or — when fn errs (its error returned as
	// is) or a check refuses — none: the segment, its intent and its last
	// failure stay as they were. A segment without an intent wraps
	// ErrNoIntent (the intent may have been rolled back, and with it the
	// destination) and changes nothing.
	CommitMove(ctx context.Context, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error)
	// Tombstone starts the deletion by retention of segment (stream, base):
	// in one transaction it sets Tombstoned to at on it and on every live
	// segment between the retention watermark and it (retention deletes
	// oldest first) and moves the watermark to base's Last+1. justify is
	// called for each of those segments, lowest base first, inside the
	// transaction (quick, no calls to the Store); an error from it refuses
	// the whole run: it is returned wrapped (errors.Is finds it; justify
	// returns ErrUnjustified by convention) and nothing changes, watermark
	// included. A gap above the watermark is a *tiers.CorruptionError
	// wrapping ErrRetainedGap, an at before a SealedAt wraps
	// ErrInvalidSegment; both change nothing. A segment already tombstoned
	// below the watermark makes it a repeated call: nothing changes and no
	// segment is returned. It returns the segments it tombstoned, lowest
	// base first.
	Tombstone(ctx context.Context, stream string, base uint64, at time.Time, justify func(*tiers.SegmentMeta) error) ([]tiers.SegmentMeta, error)
	// CommitDelete is the last step of a deletion by retention: in one
	// transaction it forgets segment (stream, base), its intent and its
	// last failure, and takes the segment out of its stream's totals (the
	// stream stays; its NextOffset does not move back). The segment must
	// be tombstoned and below the watermark: otherwise it wraps
	// ErrNotTombstoned and nothing changes. An already forgotten segment
	// is no error (its intent and failure are still cleared), so recovery
	// can repeat it.
	CommitDelete(ctx context.Context, stream string, base uint64) error

	// RecordFailure notes a failed move of segment (stream, base) with its
	// message (cut to 4 KiB on a UTF-8 boundary): the intent, when there is
	// one, counts it in Attempts and keeps it as LastError; the segment's
	// last failure (LastError, Failures) is replaced by one carrying the
	// intent's Kind, the current time and Attempts counted since the last
	// success. RecordRefusal does the same and marks the failure Refused (a
	// destructive step nothing justified; verify reports it). Neither needs
	// the segment to exist.
	RecordFailure(ctx context.Context, stream string, base uint64, msg string) error
	RecordRefusal(ctx context.Context, stream string, base uint64, msg string) error
	// ClearFailure forgets the segment's last failure after a success; its
	// intent stays. Clearing an absent failure is no error.
	ClearFailure(ctx context.Context, stream string, base uint64) error
	// LastError returns one segment's last failure (ok false when none),
	// Failures every one, ordered by stream and base.
	LastError(ctx context.Context, stream string, base uint64) (Failure, bool, error)
	Failures(ctx context.Context) ([]Failure, error)
}

// Store is a whole catalog: what a second implementation provides.
type Store interface {
	Reads
	Appends
	Moves
	// Close releases the catalog; every later call wraps tiers.ErrClosed.
	// What was committed before it is found again by the next open.
	Close() error
}

var _ Store = (*Catalog)(nil)
