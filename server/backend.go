package server

import (
	"context"
	"iter"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// Backend is what the server serves: every call a handler makes, and
// nothing more. A local node's *engine.Engine is one; a cluster node is
// another, so the HTTP API, its errors and its metrics stay one code path
// for both modes. The answers are the engine's types, and the errors are
// those classify maps (the tiers sentinels, *tiers.CorruptionError,
// engine.ErrNotPersisted, engine.ErrNoColdTier, cold.ErrStoreUnavailable,
// context errors): a backend that returns another error answers 500.
type Backend interface {
	// AppendAs appends recs to stream as one batch of producer p (a zero
	// p: no deduplication) and answers once the batch is durable, with its
	// dense offsets; a retry of p's last batch answers the first
	// attempt's offsets with Duplicate set. Refusals: tiers.ErrProducerSequence,
	// the tiers.Err*TooLarge and ErrInvalid* sentinels; "nothing written,
	// retry": tiers.ErrBackpressure, tiers.ErrStorageUnavailable; sticky:
	// tiers.ErrStorageFailed; tiers.ErrClosed while shutting down.
	AppendAs(ctx context.Context, stream string, p tiers.Producer, recs []tiers.Record) (engine.AppendResult, error)
	// Read yields the records of stream matching q in offset order, each
	// with where it was served from. An unknown stream is
	// tiers.ErrStreamNotFound and offsets below retention tiers.ErrExpired,
	// either as the first and only element; damage is a
	// *tiers.CorruptionError, never a wrong record.
	Read(ctx context.Context, stream string, q tiers.Query) iter.Seq2[engine.Item, error]
	// WaitFor blocks until stream holds a readable record at offset or
	// above, or ctx is done (its error). A stream that does not exist yet
	// is waited for too. Long-polling reads use it.
	WaitFor(ctx context.Context, stream string, offset uint64) error
	// Retention reports stream's retained range; an unknown stream is
	// tiers.ErrStreamNotFound. Explain uses it to refuse unknown streams.
	Retention(ctx context.Context, stream string) (engine.Retention, error)
	// Streams lists every stream, ordered by name.
	Streams(ctx context.Context) ([]engine.StreamInfo, error)
	// Segments lists stream's segments in offset order, the active one
	// (if any) last; an unknown stream is tiers.ErrStreamNotFound.
	Segments(ctx context.Context, stream string) ([]engine.SegmentInfo, error)
	// Describe is a segment Offload returned, as Segments would list it
	// right after.
	Describe(m tiers.SegmentMeta) engine.SegmentInfo
	// Seal seals stream's active segment and answers once every record
	// appended before the call is in a sealed, persisted segment.
	Seal(ctx context.Context, stream string) (engine.SealResult, error)
	// Offload moves (keepWarm: copies) one sealed segment to the cold tier
	// and answers its catalog entry; tiers.ErrSegmentNotFound,
	// engine.ErrNotPersisted and engine.ErrNoColdTier are the refusals.
	Offload(ctx context.Context, stream string, base uint64, keepWarm bool) (tiers.SegmentMeta, error)
	// Verify checks stream (every stream when "") end to end and reports
	// what it found; an error means verify could not proceed. progress,
	// when set, is called as segments are checked.
	Verify(ctx context.Context, stream string, progress engine.VerifyProgress) (engine.VerifyReport, error)
	// Status is the node's state for GET /v1/status; its flat fields are
	// rendered by reflection, so a backend's fields show up as they are.
	Status(ctx context.Context) engine.Status
	// Tiers summarises each tier the backend has.
	Tiers(ctx context.Context) (map[tiers.Placement]engine.TierStatus, error)
	// WriteHealth reports whether appends can be made durable now; a
	// non-empty Cause makes /healthz answer 503.
	WriteHealth() engine.WriteHealth
}
