// Package engine assembles tierd's tiers into one archive: it opens the
// catalog, the warm store and the hot tier (which replays the WAL), persists
// sealed segments warm, and routes every read to the tier that holds the
// data. It is the composition root the server and the benchmarks build on.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/hot"
	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/internal/vfs"
	"github.com/tierd/tierd/mover"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
	"github.com/tierd/tierd/warm"
)

// Options configures an Engine. Zero fields take defaults.
type Options struct {
	DataDir string

	WALSync         tiers.SyncMode
	WALSyncInterval time.Duration
	WALSegmentBytes int64
	// ProducerTTL is how long an idempotent producer's last batch is
	// remembered (wal.producer_ttl); 0 means the WAL's default, 7 days.
	ProducerTTL time.Duration
	// FS is the filesystem of the WAL and the warm store; nil means
	// vfs.Default (the OS). The catalog, which bbolt opens itself, and the
	// retention markers stay on the OS's, in DataDir. Crash tests run the
	// engine on a vfs.MemFS (give the cold tier's file store the same).
	FS vfs.FS
	// Catalog is the catalog the engine routes reads and moves through;
	// nil means the bbolt catalog at DataDir/catalog.db, opened by Open.
	// The engine closes it on Close, or when Open fails. Any catalog.Store that
	// passes catalog/catalogtest will do.
	Catalog catalog.Store
	// WALOpenFile opens WAL files (wal.Options.OpenFile): a seam for tests
	// of storage conditions; nil means FS's.
	WALOpenFile func(path string, flag int, perm os.FileMode) (wal.SegmentFile, error)
	// WALRetryInterval bounds the WAL's own retries of a refused group
	// (wal.Options.RetryInterval); 0 means its default, 1s.
	WALRetryInterval time.Duration

	HotMaxBytes  int64         // memory budget across all streams
	WarmMaxBytes int64         // local disk budget (warm.max_bytes): reported by Tiers; the migrator enforces it
	HotResidency time.Duration // how long a sealed, persisted segment stays in memory (hot.max_age; StreamPolicy's per stream): the hot tier alone evicts

	// WarmMapCacheBytes bounds the memory of the warm readers kept open
	// between reads (warm.map_cache_bytes); 0 means warm's default.
	WarmMapCacheBytes int64

	SegmentMaxBytes int64         // seal the active segment at this size
	SegmentMaxAge   time.Duration // or at this age

	// StreamPolicy gives a stream's own segment and residency settings;
	// nil means the values above for every stream. HotTick is how often
	// the flusher checks ages (default: a tenth of the smallest, 20 ms–1 s).
	StreamPolicy func(stream string) hot.StreamPolicy
	HotTick      time.Duration

	MaxRecordBytes int // cap on a record's value

	// Cold is the cold tier, or nil for none. The engine closes it.
	Cold *cold.Tier

	// Tables opens the publishing of the cold segments as Apache Iceberg
	// tables over the engine's catalog (tables.enabled; internal/boot
	// builds it over package tables), or nil for none. Open calls it once
	// the catalog is open, before moves are recovered (a deletion a crash
	// interrupted leaves the table first), starts the loop once the engine
	// is open, and Close closes it.
	Tables func(ctx context.Context, src tablesync.CatalogSource) (*tablesync.Loop, error)

	// Config is the configuration the migrator plans with. Every
	// destructive action is justified again against it, and against the
	// catalog, when it executes (mover/justify.go): nil refuses every deletion.
	Config *policy.Config

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time // the ingest clock; time.Now by default
}

func (o *Options) setDefaults() {
	if o.DataDir == "" {
		o.DataDir = policy.DefaultDataDir
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = tiers.DefaultMaxRecordBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// AppendResult is what an acknowledged batch got.
type AppendResult struct {
	First uint64 // offset of the batch's first record
	Last  uint64 // offset of its last record
	Count int
	// Duplicate is set when the batch was an idempotent producer's retry
	// of a batch already appended: nothing was appended now, and the
	// offsets are those the first attempt got.
	Duplicate bool
}

// Engine is an open archive.
type Engine struct {
	opts    Options
	started time.Time
	catalog catalog.Store
	warm    *warm.Store
	hot     *hot.Tier
	cold    *cold.Tier
	mover   *mover.Mover
	tables  *tablesync.Loop // nil without tables
	metrics *metrics
	// walFailed is when WriteHealth first saw the WAL's sticky failure.
	walFailed atomic.Pointer[time.Time]
}

// Open opens (creating if needed) the archive in opts.DataDir and recovers
// it: warm files the catalog never committed are removed (the WAL still holds
// their records), then the WAL is replayed above each stream's persisted
// offset.
func Open(ctx context.Context, opts Options) (*Engine, error) {
	opts.setDefaults()
	// On the OS's filesystem whatever opts.FS is: the catalog lives there.
	if err := vfs.MkdirAllSync(vfs.Default, opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e := &Engine{opts: opts, started: opts.Now(), cold: opts.Cold, metrics: newMetrics(opts.Registerer)}
	var err error
	if e.catalog = opts.Catalog; e.catalog == nil {
		if e.catalog, err = catalog.Open(filepath.Join(opts.DataDir, "catalog.db"), catalog.Options{
			Logger: opts.Logger, Registerer: opts.Registerer, Now: opts.Now,
			RetentionDir: RetentionDir(opts.DataDir),
		}); err != nil {
			return nil, fmt.Errorf("engine: open catalog: %w", err)
		}
	}
	if e.warm, err = warm.Open(filepath.Join(opts.DataDir, "warm"), warm.Options{MapCacheBytes: opts.WarmMapCacheBytes, Logger: opts.Logger, Registerer: opts.Registerer, FS: opts.FS}); err != nil {
		e.catalog.Close()
		return nil, fmt.Errorf("engine: open warm store: %w", err)
	}
	mo := mover.Options{Catalog: e.catalog, Warm: e.warm, Hot: hotView{e}, Config: opts.Config, Logger: opts.Logger, Now: opts.Now}
	if e.cold != nil {
		mo.Cold = e.cold
		if opts.Tables != nil {
			if e.tables, err = opts.Tables(ctx, tablesync.CatalogSource{Catalog: e.catalog, Rewrite: e.rewriteCold}); err != nil {
				e.closeStores()
				return nil, fmt.Errorf("engine: open tables: %w", err)
			}
			mo.Tables = e.tables
		}
	}
	e.mover = mover.New(mo)
	if err := e.mover.Recover(ctx); err != nil {
		e.closeStores()
		return nil, err
	}
	next, err := e.mover.RecoverWarm(ctx)
	if err != nil {
		e.closeStores()
		return nil, err
	}
	e.hot, err = hot.Open(ctx, hot.Options{
		MaxBytes:        opts.HotMaxBytes,
		SegmentMaxBytes: opts.SegmentMaxBytes,
		SegmentMaxAge:   opts.SegmentMaxAge,
		Residency:       opts.HotResidency,
		PolicyFor:       opts.StreamPolicy,
		Tick:            opts.HotTick,
		WAL: wal.Options{
			Dir:           filepath.Join(opts.DataDir, "wal"),
			FS:            opts.FS,
			Sync:          opts.WALSync,
			SyncInterval:  opts.WALSyncInterval,
			SegmentBytes:  opts.WALSegmentBytes,
			ProducerTTL:   opts.ProducerTTL,
			OpenFile:      opts.WALOpenFile,
			RetryInterval: opts.WALRetryInterval,
			Logger:        opts.Logger,
			Registerer:    opts.Registerer,
		},
		Streams:   next,
		Persister: persister{e},
		Logger:    opts.Logger,
		Now:       opts.Now,
	})
	if err != nil {
		e.closeStores()
		return nil, fmt.Errorf("engine: recover: %w", err)
	}
	e.metrics.usage.bind(e)
	e.metrics.health.bind(e)
	if e.tables != nil {
		e.tables.Start()
	}
	return e, nil
}

func (e *Engine) closeStores() error {
	var err error
	if e.tables != nil {
		err = e.tables.Close() // it reads the catalog
	}
	err = errors.Join(err, e.warm.Close(), e.catalog.Close())
	if e.cold != nil {
		err = errors.Join(err, e.cold.Close())
	}
	return err
}

// Close stops the flusher, syncs and closes the WAL and the stores. Appends
// after Close fail with tiers.ErrClosed. Sealed segments not yet persisted are
// recovered from the WAL at the next Open.
func (e *Engine) Close(ctx context.Context) error {
	e.metrics.usage.unbind(e)
	e.metrics.health.unbind(e)
	return errors.Join(e.hot.Close(), e.closeStores())
}

// Flush seals every active segment and persists all sealed ones warm now.
func (e *Engine) Flush(ctx context.Context) error { return e.hot.Flush(ctx) }

// Append validates recs and appends them to stream as one atomic batch,
// returning once the batch is durable per the WAL sync mode. Offsets in recs
// are overwritten with the assigned ones. Errors: tiers.ErrInvalidStreamName,
// tiers.ErrInvalidRecord, tiers.ErrKeyTooLarge, tiers.ErrRecordTooLarge (bad
// input, nothing appended), tiers.ErrBackpressure (retry later),
// tiers.ErrStorageUnavailable (storage refused it with nothing written:
// disk full, out of descriptors; retry later), tiers.ErrStorageFailed
// (sticky until restart), tiers.ErrClosed.
func (e *Engine) Append(ctx context.Context, stream string, recs []tiers.Record) (AppendResult, error) {
	return e.AppendAs(ctx, stream, tiers.Producer{}, recs)
}

// AppendAs is Append for an idempotent producer's batch (hot.Tier.AppendAs):
// a retry of the producer's last batch in the stream is not appended again
// and answers the offsets the batch got, with Duplicate set. An out of
// sequence batch is tiers.ErrProducerSequence. A zero p appends as Append.
func (e *Engine) AppendAs(ctx context.Context, stream string, p tiers.Producer, recs []tiers.Record) (AppendResult, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return AppendResult{}, err
	}
	if len(recs) == 0 {
		return AppendResult{}, fmt.Errorf("%w: empty batch", tiers.ErrInvalidRecord)
	}
	for i := range recs {
		if err := recs[i].Validate(e.opts.MaxRecordBytes); err != nil {
			return AppendResult{}, fmt.Errorf("record %d: %w", i, err)
		}
	}
	start := time.Now()
	first, dup, err := e.hot.AppendAs(ctx, stream, p, recs)
	if dup {
		e.metrics.duplicate()
	} else {
		e.metrics.appended(recs, err, time.Since(start))
	}
	if err != nil {
		return AppendResult{}, err
	}
	return AppendResult{First: first, Last: first + uint64(len(recs)) - 1, Count: len(recs), Duplicate: dup}, nil
}

// RetentionDir is where the retention markers of the archive in dataDir
// live (docs/format/retention.md): the record, outside the catalog, of what
// retention deleted, which a catalog rebuild reads.
func RetentionDir(dataDir string) string { return filepath.Join(dataDir, "retention") }

// persister writes sealed segments to the warm store and commits them to the
// catalog, in that order: a segment is visible in the catalog only once its
// file is durable.
type persister struct{ e *Engine }

func (p persister) Persist(ctx context.Context, seg *hot.SealedSegment) error {
	e := p.e
	w, err := e.warm.Create(seg.Stream, seg.Base)
	if err != nil {
		return err
	}
	// The footer keeps the seal time, so a rebuilt catalog keeps the
	// segment's age.
	w.SetSealedAt(seg.SealedAt)
	for r, err := range seg.Records() {
		if err == nil {
			err = w.Append(&r)
		}
		if err != nil {
			w.Abort()
			return err
		}
	}
	meta, err := w.Commit(ctx)
	if err != nil {
		w.Abort()
		return err
	}
	meta.Stream = seg.Stream
	meta.SealedAt = seg.SealedAt
	meta.Placements = tiers.Of(tiers.Warm)
	if err := e.catalog.PutSegment(ctx, meta); err != nil {
		return fmt.Errorf("engine: commit %s/%d to catalog: %w", seg.Stream, seg.Base, err)
	}
	return nil
}
