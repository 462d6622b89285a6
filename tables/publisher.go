// Package tables publishes each stream's cold segments as an Apache Iceberg
// table (format version 2), so any Iceberg engine (Spark, Trino, DuckDB,
// iceberg-go, PyIceberg) reads the archive as a table without knowing tierd.
//
// The table's data files are the cold Parquet objects themselves: nothing is
// copied or rewritten. A Publisher reconciles a table with the catalog's
// retained cold segments (Sync) and takes files out before their objects are
// deleted (Remove). All Iceberg metadata is written by
// github.com/apache/iceberg-go; this package only decides which files belong
// in which table. The layout is documented in docs/format/iceberg.md.
package tables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// DefaultNamespace is the Iceberg namespace of the tables when
// Options.Namespace is empty.
const DefaultNamespace = "tierd"

// DefaultTimeout bounds one Sync, Remove or Describe when the caller's
// context has no earlier deadline: every store and catalog call they make
// runs under it.
const DefaultTimeout = 5 * time.Minute

// maxAttempts bounds the optimistic-commit retries of one Sync or Remove.
// Each attempt reloads the table and recomputes the change, so a conflict
// with another writer costs one more round, never a lost or doubled file.
const maxAttempts = 8

// ErrNoTable is returned by Describe for a stream that has no table yet.
var ErrNoTable = errors.New("tables: no table for this stream")

// ErrClosed is returned by calls on a closed Publisher.
var ErrClosed = errors.New("tables: publisher closed")

// SegmentSource is what should be in the tables: the catalog's retained cold
// segments. ColdSegments returns a stream's segments that have a committed
// cold placement and are not tombstoned; StreamNames lists every stream.
type SegmentSource interface {
	ColdSegments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error)
	StreamNames(ctx context.Context) ([]string, error)
}

// Options configures a Publisher.
type Options struct {
	// ColdURL is the cold store URL as configured (cold.store):
	// s3://bucket/prefix?endpoint=... or file:///dir. Data files are
	// ColdURL's root + "/" + cold.ObjectKey(segment); the metadata lives
	// under <root>/_iceberg.
	ColdURL string
	// CatalogDSN, when set, is a PostgreSQL DSN: the Iceberg catalog is
	// iceberg-go's SQL catalog in that database (cluster mode, several
	// writers). Empty: a file-based (Hadoop) catalog in the bucket, for one
	// writer per bucket.
	CatalogDSN string
	// Namespace is the Iceberg namespace of the tables (DefaultNamespace).
	Namespace string
	// Segments says what should be in the tables. Required for Sync.
	Segments SegmentSource
	// Rewrite, when set, is asked to rewrite a format-1 cold object as
	// format 2 in place (same key); Sync then publishes it in the same run.
	// Without it (or when it fails) the segment is left out of the table
	// and reported in SyncResult.Skipped: format-1 files have ts in
	// nanoseconds and value as unannotated binary, which an Iceberg v2
	// table cannot describe. It is called from several goroutines at once
	// (footers are read in parallel).
	Rewrite func(ctx context.Context, seg tiers.SegmentMeta) error
	// Logger receives skipped segments and commit retries; nil discards.
	Logger *slog.Logger
	// AccessKey and SecretKey override the environment for S3 (as in
	// objstore.Options); meant for tests. Empty: AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY and the rest of the AWS chain.
	AccessKey, SecretKey string
	// Timeout bounds each call whose context has no earlier deadline
	// (DefaultTimeout).
	Timeout time.Duration
}

// Publisher keeps one Iceberg table per stream equal to the stream's
// retained cold segments. Its methods are safe for concurrent use; calls
// for the same stream are serialized in this process, and writers in other
// processes are handled by optimistic commits (retried).
type Publisher struct {
	opts  Options
	store objstore.Config
	root  string // cold root URI without a trailing slash
	cat   catalog.Catalog
	props map[string]string // io properties for the store
	close func() error
	// maxAdds is maxAddsPerCommit (a field so a test can make it small).
	maxAdds int
	// bucket lists and deletes the metadata files no snapshot needs
	// (sweepMetadata); sweepGrace is the package's constant (a field so a
	// test can make it zero).
	bucket     objstore.Bucket
	sweepGrace time.Duration

	mu struct {
		sync.Mutex
		closed  bool
		streams map[string]*streamLock
	}
}

// streamLock serializes the calls for one stream; refs counts the calls
// holding or waiting for it, so the map holds only streams in use.
type streamLock struct {
	sync.Mutex
	refs int
}

// Open opens the catalog (creating its tables in PostgreSQL or its
// directory in the bucket on first use) and returns a Publisher.
func Open(ctx context.Context, o Options) (*Publisher, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := validName(o.Namespace); err != nil {
		return nil, fmt.Errorf("tables: namespace: %w", err)
	}
	cfg, err := objstore.ParseURL(o.ColdURL)
	if err != nil {
		return nil, fmt.Errorf("tables: cold store: %w", err)
	}
	p := &Publisher{opts: o, store: cfg, root: rootURI(cfg), props: ioProps(cfg, o), maxAdds: maxAddsPerCommit, sweepGrace: sweepGrace}
	p.mu.streams = make(map[string]*streamLock)
	ctx, cancel := p.bound(ctx)
	defer cancel()
	// The store as tierd reaches it, to list the metadata directories:
	// iceberg-go's S3 FileIO cannot list.
	p.bucket, err = objstore.Open(ctx, o.ColdURL, objstore.Options{AccessKey: o.AccessKey, SecretKey: o.SecretKey})
	if err != nil {
		return nil, fmt.Errorf("tables: cold store: %w", err)
	}
	var closeCat func() error
	p.cat, closeCat, err = openCatalog(ctx, p.warehouse(), o.CatalogDSN, p.props)
	if err != nil {
		p.bucket.Close()
		return nil, err
	}
	p.close = func() error { return errors.Join(closeCat(), p.bucket.Close()) }
	return p, nil
}

// Close releases the catalog (its database connections). Calls after Close
// fail with ErrClosed.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.closed = true
	p.mu.Unlock()
	return p.close()
}

// bound applies Options.Timeout to ctx.
func (p *Publisher) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.opts.Timeout)
}

// lock serializes calls for stream in this process.
func (p *Publisher) lock(stream string) (unlock func(), err error) {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	l := p.mu.streams[stream]
	if l == nil {
		l = &streamLock{}
		p.mu.streams[stream] = l
	}
	l.refs++
	p.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		p.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(p.mu.streams, stream)
		}
		p.mu.Unlock()
	}, nil
}

// ident is the table identifier of a stream.
func (p *Publisher) ident(stream string) table.Identifier {
	return table.Identifier{p.opts.Namespace, stream}
}

// warehouse is where the metadata lives: <cold root>/_iceberg.
func (p *Publisher) warehouse() string { return p.root + "/" + MetadataPrefix }

// tableLocation is a stream's table directory.
func (p *Publisher) tableLocation(stream string) string {
	return p.warehouse() + "/" + p.opts.Namespace + "/" + stream
}

// MetadataPrefix is the key prefix, under the cold root, of all Iceberg
// metadata (metadata JSON, manifest lists, manifests). It is not a segment
// key (cold.ParseObjectKey rejects it), so verify must not call its objects
// orphans.
const MetadataPrefix = "_iceberg"

// Info describes a stream's table.
type Info struct {
	Table            string    // namespace.stream
	MetadataLocation string    // the current metadata JSON
	Location         string    // the table's directory
	SnapshotID       int64     // 0 before the first snapshot
	Files            int64     // data files in the current snapshot
	Records          int64     // records in the current snapshot
	LastUpdated      time.Time // of the current metadata
	// Queries are ready-to-run query texts by engine: "duckdb", "spark",
	// "trino".
	Queries map[string]string
}

// Describe returns the stream's table; ErrNoTable when there is none yet.
func (p *Publisher) Describe(ctx context.Context, stream string) (Info, error) {
	if err := validName(stream); err != nil {
		return Info{}, err
	}
	p.mu.Lock()
	closed := p.mu.closed
	p.mu.Unlock()
	if closed {
		return Info{}, ErrClosed
	}
	ctx, cancel := p.bound(ctx)
	defer cancel()
	tbl, err := p.load(ctx, stream)
	if err != nil {
		return Info{}, err
	}
	if tbl == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrNoTable, stream)
	}
	meta := tbl.Metadata()
	info := Info{
		Table:            p.opts.Namespace + "." + stream,
		MetadataLocation: tbl.MetadataLocation(),
		Location:         tbl.Location(),
		LastUpdated:      time.UnixMilli(meta.LastUpdatedMillis()).UTC(),
	}
	if s := tbl.CurrentSnapshot(); s != nil {
		info.SnapshotID = s.SnapshotID
		if s.Summary != nil {
			info.Files, _ = strconv.ParseInt(s.Summary.Properties["total-data-files"], 10, 64)
			info.Records, _ = strconv.ParseInt(s.Summary.Properties["total-records"], 10, 64)
		}
	}
	info.Queries = p.queries(stream, info)
	return info, nil
}

// load returns the stream's table, nil when there is none.
func (p *Publisher) load(ctx context.Context, stream string) (*table.Table, error) {
	tbl, err := p.cat.LoadTable(ctx, p.ident(stream))
	switch {
	case err == nil:
		return tbl, nil
	case errors.Is(err, catalog.ErrNoSuchTable), errors.Is(err, catalog.ErrNoSuchNamespace):
		return nil, nil
	default:
		return nil, fmt.Errorf("tables: load %s: %w", stream, err)
	}
}
