// Package catalog records tierd's streams and their durable segments (warm,
// later cold) in an embedded bbolt database at <data>/catalog.db, and routes
// reads: Locate finds the segments that hold an offset or time range.
//
// Hot residency is volatile and is never stored: PutSegment, UpdateSegment
// and UpdatePlacements drop tiers.Hot, and the engine overlays what it holds
// in memory. The catalog never holds two segments for one offset.
//
// Besides segments it keeps the migrator's move intents (intents.go) and each
// segment's last failure for explain. Every value is versioned (see
// docs/format/catalog.md) so that value kinds can change without rewriting
// what is there. Rebuild recreates a lost catalog from segment metadata found
// in the tiers themselves.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/promreg"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tierd/tierd/tiers"
)

// Errors of this package; check them with errors.Is. Lookups of missing
// streams and segments wrap tiers.ErrStreamNotFound and
// tiers.ErrSegmentNotFound, corrupt values are *tiers.CorruptionError, and
// calls after Close wrap tiers.ErrClosed.
var (
	// ErrOverlap rejects a segment whose offsets intersect another segment
	// of the stream: two segments for one offset would make reads ambiguous.
	ErrOverlap = errors.New("catalog: segment overlaps an existing segment")
	// ErrInvalidSegment rejects metadata that breaks an invariant every
	// stored segment keeps (see PutSegment).
	ErrInvalidSegment = errors.New("catalog: invalid segment metadata")
	// ErrLocked reports that another process (or another Catalog in this
	// one) holds the database: most likely a second tierd on the same data
	// directory.
	ErrLocked = errors.New("catalog: database is locked by another process")
)

// DefaultTimeout is how long Open waits for the bbolt file lock.
const DefaultTimeout = 5 * time.Second

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives corruption reports (and a debug line on open); nil
	// discards.
	Logger *slog.Logger
	// Registerer receives the catalog's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Timeout bounds the wait for the database file lock; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Now stamps streams' CreatedAt; nil means time.Now. The engine passes
	// its ingest clock so that tests control it.
	Now func() time.Time
}

// StreamInfo summarises one stream's durable segments.
type StreamInfo struct {
	Name      string
	CreatedAt time.Time
	Segments  int
	Records   uint64
	Bytes     int64
	// NextOffset is one past the highest offset ever catalogued for the
	// stream, 0 if none. It never moves backwards, even when the newest
	// segments are deleted, so offsets are never handed out twice.
	NextOffset uint64
}

// Bucket names of the layout described in docs/format/catalog.md.
const (
	bucketMeta     = "meta"
	bucketStreams  = "streams"
	bucketSegments = "segments"
	bucketIntents  = "intents"
	bucketErrors   = "errors"
	keySchema      = "schema"
)

// Catalog is an open catalog database. Its methods are safe for concurrent
// use: readers run in parallel with each other and with the single writer.
type Catalog struct {
	db      *bolt.DB
	path    string
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
}

// Open opens the catalog at path, creating it if needed. It fails with
// ErrLocked when another holder keeps the file locked past opts.Timeout, and
// with a *tiers.CorruptionError when the file is not a readable bbolt
// database.
func Open(path string, opts Options) (*Catalog, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, opts.Timeout)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return nil, &tiers.CorruptionError{Path: path, Offset: 0, Err: fmt.Errorf("catalog: open: %w", err)}
		}
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}
	c := &Catalog{db: db, path: path, log: opts.Logger, now: opts.Now}
	if err := c.initSchema(); err != nil {
		db.Close()
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		db.Close()
		return nil, err
	}
	c.metrics = m
	c.log.Debug("catalog opened", "path", path)
	return c, nil
}

// initSchema creates the buckets and checks the schema version, so that a
// newer catalog is refused rather than misread.
func (c *Catalog) initSchema() error {
	err := c.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return err
		}
		if v := meta.Get([]byte(keySchema)); v != nil {
			d := reader{b: v}
			ver := d.uvarint()
			if err := d.finish(); err != nil {
				return c.corrupt(fmt.Errorf("schema version: %w", err))
			}
			if ver < oldestSchemaVersion || ver > schemaVersion {
				return fmt.Errorf("catalog: %s has schema version %d, this build reads versions %d to %d", c.path, ver, oldestSchemaVersion, schemaVersion)
			}
			if ver < schemaVersion {
				c.log.Info("catalog schema upgraded", "path", c.path, "from", ver, "to", schemaVersion)
			}
		}
		if err := meta.Put([]byte(keySchema), []byte{schemaVersion}); err != nil {
			return err
		}
		for _, name := range []string{bucketStreams, bucketSegments, bucketIntents, bucketErrors} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		var ce *tiers.CorruptionError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("catalog: init %s: %w", c.path, err)
	}
	return nil
}

// Close closes the database. Calls after Close fail with tiers.ErrClosed.
func (c *Catalog) Close() error {
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("catalog: close %s: %w", c.path, err)
	}
	return nil
}

// view runs fn in a read transaction, accounting it as op.
func (c *Catalog) view(ctx context.Context, op string, fn func(tx *bolt.Tx) error) error {
	return c.run(ctx, op, false, fn)
}

// update runs fn in a write transaction, accounting it as op. The change
// commits (and is fsynced) only if fn returns nil.
func (c *Catalog) update(ctx context.Context, op string, fn func(tx *bolt.Tx) error) error {
	return c.run(ctx, op, true, fn)
}

func (c *Catalog) run(ctx context.Context, op string, write bool, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	err := c.runTx(write, fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = fmt.Errorf("catalog: %s: %w", op, tiers.ErrClosed)
	}
	c.metrics.observe(op, start, err)
	var ce *tiers.CorruptionError
	if errors.As(err, &ce) {
		c.log.Error("catalog corruption", "op", op, "err", err)
	}
	return err
}

// runTx runs fn in a bbolt transaction. bbolt panics on some damaged pages
// (after rolling the transaction back); that becomes a *tiers.CorruptionError
// so that a damaged catalog fails requests instead of crashing the daemon.
func (c *Catalog) runTx(write bool, fn func(tx *bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = c.corrupt(fmt.Errorf("bbolt: %v", r))
		}
	}()
	if write {
		return c.db.Update(fn)
	}
	return c.db.View(fn)
}

// corrupt wraps a decoding failure of a value in this database.
func (c *Catalog) corrupt(err error) error {
	return &tiers.CorruptionError{Path: c.path, Offset: -1, Err: err}
}

// metrics are the catalog's instruments; a nil *metrics records nothing.
type metrics struct {
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_catalog_ops_total",
			Help: "Catalog operations by operation and result (ok, not_found, error).",
		}, []string{"op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierd_catalog_op_duration_seconds",
			Help:    "Catalog transaction latency; writes include bbolt's fsync.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 9),
		}, []string{"op"}),
	}
	m.ops = promreg.Register(reg, m.ops)
	m.duration = promreg.Register(reg, m.duration)
	return m, nil
}

func (m *metrics) observe(op string, start time.Time, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, tiers.ErrStreamNotFound), errors.Is(err, tiers.ErrSegmentNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	m.ops.WithLabelValues(op, result).Inc()
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}
