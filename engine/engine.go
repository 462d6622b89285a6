// Package engine assembles tierd's tiers into one archive: it opens the
// catalog, the warm store and the WAL, replays the WAL into the hot tier,
// runs the flusher, and routes every read to the tier that holds the data.
// It is the composition root the server and the benchmarks build on.
package engine

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

// Options configures an Engine. Zero fields take the defaults of
// DefaultOptions.
type Options struct {
	DataDir string

	WALSync         wal.SyncMode
	WALSyncInterval time.Duration
	WALSegmentBytes int64

	HotMaxBytes  int64         // memory budget across all streams
	HotResidency time.Duration // how long a sealed, persisted segment stays in memory

	SegmentMaxBytes int64         // seal the active segment at this size
	SegmentMaxAge   time.Duration // or at this age

	MaxRecordBytes int // cap on a record's value

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time // the ingest clock; time.Now by default
}

// AppendResult is what an acknowledged batch got.
type AppendResult struct {
	First uint64 // offset of the batch's first record
	Last  uint64 // offset of its last record
	Count int
}

// Item is a record as a read returns it, with the tier that served it.
type Item struct {
	tiers.Record
	Tier tiers.Placement
}

// TierUsage counts what one tier holds.
type TierUsage struct {
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
}

// StreamInfo summarises one stream.
type StreamInfo struct {
	Name       string
	NextOffset uint64 // the offset the next record will get
	Records    uint64 // records retained in any tier
	Tiers      map[tiers.Placement]TierUsage
}

// SegmentInfo is a segment as the segments listing shows it. The active
// segment has Active set, a zero SealedAt and the hot placement only.
type SegmentInfo struct {
	tiers.SegmentMeta
	Active bool
}

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

// ErrNotImplemented marks the stub while the engine is being written.
var ErrNotImplemented = errors.New("engine: not implemented")

// Engine is an open archive.
type Engine struct{}

// Open opens (creating if needed) the archive in opts.DataDir and recovers it.
func Open(ctx context.Context, opts Options) (*Engine, error) { return nil, ErrNotImplemented }

// Close flushes and closes everything; pending appends fail with tiers.ErrClosed.
func (e *Engine) Close(ctx context.Context) error { return ErrNotImplemented }

// Append validates recs and appends them to stream as one atomic batch,
// returning once the batch is durable per the WAL sync mode. Offsets in recs
// are ignored and assigned. Errors: tiers.ErrInvalidStreamName,
// tiers.ErrInvalidRecord, tiers.ErrKeyTooLarge, tiers.ErrRecordTooLarge (bad
// input, nothing appended), tiers.ErrBackpressure (retry later),
// tiers.ErrStorageFailed, tiers.ErrClosed.
func (e *Engine) Append(ctx context.Context, stream string, recs []tiers.Record) (AppendResult, error) {
	return AppendResult{}, ErrNotImplemented
}

// Read returns the records of stream matching q in offset order, each with
// the tier that served it. An unknown stream yields tiers.ErrStreamNotFound
// as the first and only element.
func (e *Engine) Read(ctx context.Context, stream string, q tiers.Query) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) { yield(Item{}, ErrNotImplemented) }
}

// Streams lists every stream, ordered by name.
func (e *Engine) Streams(ctx context.Context) ([]StreamInfo, error) { return nil, ErrNotImplemented }

// Segments lists a stream's segments in offset order, the active one last.
func (e *Engine) Segments(ctx context.Context, stream string) ([]SegmentInfo, error) {
	return nil, ErrNotImplemented
}

// Status reports the engine's state.
func (e *Engine) Status(ctx context.Context) Status { return Status{} }
