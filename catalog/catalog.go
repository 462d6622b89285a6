// Package catalog records tierd's streams and their durable segments (warm,
// later cold) in an embedded bbolt database at <data>/catalog.db, and routes
// reads: Locate finds the segments that hold an offset or time range.
//
// Callers hold it through the caller-shaped interfaces of iface.go (Reads,
// Appends, Moves and their union Store), whose doc comments are the
// contract; catalog/catalogtest is the conformance suite every
// implementation of Store passes.
//
// Hot residency is volatile and is never stored: PutSegment and UpdateSegment
// drop tiers.Hot, and the engine overlays what it holds
// in memory. The catalog never holds two segments for one offset.
//
// Besides segments it keeps the migrator's move intents (intents.go), each
// segment's last failure for explain, and per stream the retention
// watermark: offsets below it were deleted by retention (retention.go).
//
// Every byte of the file is checked before it is trusted: Open walks the
// bbolt page structure before bbolt sees it (filecheck.go) and decodes every
// value (check.go); every value carries a CRC32C over itself and its key and
// is checked for plausibility on each decode (encoding.go). A damaged
// catalog is refused with a *tiers.CorruptionError that names the rebuild
// command. Rebuild recreates a lost catalog from segment metadata found in
// the tiers themselves and the retention markers.
package catalog

import (
	"context"
	"encoding/binary"
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
	// ErrDamaged is the cause of every *tiers.CorruptionError the catalog
	// reports about its own file or values; the message names the rebuild
	// procedure.
	ErrDamaged = errors.New("catalog: damaged")
)

// RebuildAdvice is what every corruption error of the catalog tells the
// operator to do.
const RebuildAdvice = "stop tierd, move catalog.db aside and run `tierctl catalog rebuild` (docs/operations.md, Rebuilding the catalog)"

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
	// RetentionDir is where the retention markers live (one file per
	// stream, docs/format/retention.md): written before every commit that
	// advances a stream's retention watermark, so that Rebuild knows what
	// retention deleted. Empty keeps no markers.
	RetentionDir string
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
	// RetainedFrom is the retention watermark: offsets below it were
	// deleted (or are being deleted) by retention; every offset from it to
	// NextOffset is held by a catalogued segment. It never moves backwards.
	RetainedFrom uint64
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
	db           *bolt.DB
	path         string
	log          *slog.Logger
	now          func() time.Time
	metrics      *metrics
	retentionDir string
}

// Open opens the catalog at path, creating it if needed, and checks all of
// it (the page structure, then every value), upgrading an older schema. It
// fails with ErrLocked when another holder keeps the file locked past
// opts.Timeout, and with a *tiers.CorruptionError wrapping ErrDamaged, whose
// message names the rebuild command, when any byte of it is damaged: it
// never panics, hangs or opens a catalog it could misread.
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
	if err := checkFileLocked(path, opts.Timeout); err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		if errors.Is(err, errFile) {
			return nil, damaged(path, 0, err)
		}
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, opts.Timeout)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return nil, damaged(path, 0, fmt.Errorf("open: %w", err))
		}
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}
	c := &Catalog{db: db, path: path, log: opts.Logger, now: opts.Now, retentionDir: opts.RetentionDir}
	if err := c.initSchema(); err != nil {
		db.Close()
		return nil, err
	}
	if err := c.syncMarkers(); err != nil {
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

// initSchema creates the buckets of a new catalog, or checks every value of
// an existing one (check.go), upgrading an older schema; a newer schema is
// refused rather than misread.
func (c *Catalog) initSchema() error {
	var ver uint64
	fresh := false
	err := c.view(context.Background(), "open", func(tx *bolt.Tx) error {
		var err error
		ver, fresh, err = c.schemaTx(tx)
		return err
	})
	if err != nil {
		return c.openError(err)
	}
	if ver > schemaVersion {
		return fmt.Errorf("catalog: %s has schema version %d, this build reads versions %d to %d", c.path, ver, oldestSchemaVersion, schemaVersion)
	}
	if fresh || ver < schemaVersion {
		err = c.update(context.Background(), "open", func(tx *bolt.Tx) error {
			if fresh {
				return createBucketsTx(tx)
			}
			return c.upgradeTx(tx, ver)
		})
		if err == nil && !fresh {
			c.log.Info("catalog schema upgraded: every value rewritten with its checksum", "path", c.path, "from", ver, "to", schemaVersion)
		}
		return c.openError(err)
	}
	return c.openError(c.view(context.Background(), "open", func(tx *bolt.Tx) error {
		_, err := c.checkTx(tx, false)
		return err
	}))
}

// openError wraps a failure of initSchema.
func (c *Catalog) openError(err error) error {
	if err == nil {
		return nil
	}
	var ce *tiers.CorruptionError
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("catalog: init %s: %w", c.path, err)
}

// schemaTx reads the schema version; fresh is true for a file that holds
// nothing yet (just created).
func (c *Catalog) schemaTx(tx *bolt.Tx) (ver uint64, fresh bool, err error) {
	meta := tx.Bucket([]byte(bucketMeta))
	var v []byte
	if meta != nil {
		v = meta.Get([]byte(keySchema))
	}
	if v == nil {
		if k, _ := tx.Cursor().First(); k == nil {
			return 0, true, nil
		}
		// Buckets without a schema: the meta bucket or its key is damaged.
		return 0, false, c.corrupt(errors.New("the schema version is missing"))
	}
	ver, err = decodeSchema(v)
	if err != nil {
		return 0, false, c.corrupt(fmt.Errorf("schema version: %w", err))
	}
	return ver, false, nil
}

// encodeSchema returns the meta/schema value of this build: the version
// and a checksum, so that a flipped version is damage, not a newer build.
func encodeSchema() []byte {
	return appendCRC(binary.AppendUvarint(nil, schemaVersion), kindSchema, keySchema, 0)
}

// decodeSchema reads a meta/schema value: a uvarint and its checksum from
// schema 3 on; one byte, 1 or 2, before. A checksummed version newer than
// this build's is returned as is, for the caller to refuse.
func decodeSchema(v []byte) (uint64, error) {
	if len(v) == 1 {
		if v[0] < oldestSchemaVersion || v[0] >= 3 {
			return 0, fmt.Errorf("%w: unchecksummed schema version %d", errImplausible, v[0])
		}
		return uint64(v[0]), nil
	}
	body, err := checkCRC(v, kindSchema, keySchema, 0)
	if err != nil {
		return 0, err
	}
	d := reader{b: body}
	ver := d.uvarint()
	if err := d.finish(); err != nil {
		return 0, err
	}
	if ver < 3 {
		return 0, fmt.Errorf("%w: checksummed schema version %d", errImplausible, ver)
	}
	return ver, nil
}

// createBucketsTx lays out a new catalog.
func createBucketsTx(tx *bolt.Tx) error {
	meta, err := tx.CreateBucket([]byte(bucketMeta))
	if err != nil {
		return err
	}
	if err := meta.Put([]byte(keySchema), encodeSchema()); err != nil {
		return err
	}
	for _, name := range []string{bucketStreams, bucketSegments, bucketIntents, bucketErrors} {
		if _, err := tx.CreateBucket([]byte(name)); err != nil {
			return err
		}
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
	return damaged(c.path, -1, err)
}

// damaged is the corruption error of the catalog at path: it wraps
// ErrDamaged and err, and names the rebuild procedure.
func damaged(path string, off int64, err error) error {
	return &tiers.CorruptionError{Path: path, Offset: off, Err: fmt.Errorf("%w: %w; %s", ErrDamaged, err, RebuildAdvice)}
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
			Help:    "Catalog transaction latency; bbolt writes include its fsync, PostgreSQL ones the commit's round trip.",
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
