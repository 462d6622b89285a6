// Package reader is cluster mode's read path: the records of a stream in
// offset order, from whichever node asks, with every filter of
// tiers.Query. Offsets below the stream's first live journal range come
// from the catalog's segments (cold Parquet, through cold.Tier.Scan); the
// rest from the journal ranges PostgreSQL lists (journal_ranges), each a
// block of a journal object decoded and checked by journal.DecodeBlock
// against its row. A block's bytes come from the objects this node wrote
// (Remember), then a disk cache of fetched blocks, then a ranged GET of
// the object, adjacent blocks of one object coalesced into one GET.
//
// WaitFor is the long poll: it returns once a stream's next offset passes
// an offset, woken by PostgreSQL's LISTEN tierd_commits, which every
// commit of any node notifies.
package reader

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// Defaults of Options' zero fields; policy takes cluster.cache_bytes'
// default from DefaultCacheBytes.
const (
	DefaultCacheBytes    = 1 << 30
	DefaultMemBytes      = 64 << 20
	DefaultMaxFetchBytes = 8 << 20
	DefaultPlanRows      = 512
)

// queryTimeout bounds every PostgreSQL query of the read path: a catalog
// that does not answer fails the read (503) instead of hanging it.
const queryTimeout = 10 * time.Second

// Options configures a Reader. Zero fields take the defaults above.
type Options struct {
	// Pool reaches the cluster's PostgreSQL (the cluster_streams and
	// journal_ranges tables of internal/pgschema). Required.
	Pool *pgxpool.Pool
	// Bucket holds the journal objects under the keys journal_ranges
	// names. Required.
	Bucket objstore.Bucket
	// Cold reads the catalog's Parquet segments; nil fails a read that
	// reaches one.
	Cold *cold.Tier
	// Catalog locates the segments and the retention watermark. Required.
	Catalog catalog.Reads
	// CacheDir is the disk cache's directory (data_dir/cache); empty
	// disables the disk cache. Deleting it loses nothing.
	CacheDir string
	// CacheBytes bounds the disk cache (DefaultCacheBytes).
	CacheBytes int64
	// MemBytes bounds the memory cache of objects this node wrote
	// (DefaultMemBytes).
	MemBytes int64
	// MaxFetchBytes bounds one ranged GET of adjacent blocks
	// (DefaultMaxFetchBytes); a larger block is fetched alone.
	MaxFetchBytes int64
	// PlanRows is how many journal ranges one planning query lists
	// (DefaultPlanRows): a long read plans again where a page ends.
	PlanRows   int
	Logger     *slog.Logger
	Registerer prometheus.Registerer

	// beforeReconnect, when set (by tests), runs before each reconnection
	// of the listener, so a test can commit while nobody listens.
	beforeReconnect func()
}

// Source says where a record a read returned came from.
type Source uint8

// The sources, from cheapest to dearest.
const (
	// Memory is a journal object this node wrote (Remember).
	Memory Source = iota + 1
	// DiskCache is a block this node fetched before, from its disk cache.
	DiskCache
	// Journal is a ranged GET of a journal object.
	Journal
	// ColdSegment is a Parquet segment of the catalog.
	ColdSegment
)

// String names the source as status and explain show it.
func (s Source) String() string {
	switch s {
	case Memory:
		return "memory"
	case DiskCache:
		return "disk-cache"
	case Journal:
		return "journal"
	case ColdSegment:
		return "cold"
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Placement maps the source to the tier vocabulary of local mode: a node's
// memory is hot, the shared journal and the disk cache of its blocks warm,
// Parquet segments cold.
func (s Source) Placement() tiers.Placement {
	switch s {
	case Memory:
		return tiers.Hot
	case ColdSegment:
		return tiers.Cold
	}
	return tiers.Warm
}

// Item is a record as a read returns it, with where it came from.
type Item struct {
	tiers.Record
	Source Source
}

// ErrCatalogUnavailable wraps a failure to ask PostgreSQL (a read cannot be
// planned without it). It also wraps tiers.ErrStorageUnavailable, which the
// server answers with 503: the same read succeeds once PostgreSQL is back.
var ErrCatalogUnavailable = errors.New("reader: the cluster catalog (PostgreSQL) is unavailable")

// pgErr classifies a PostgreSQL error: the caller's own cancellation (ctx
// is the caller's, not the query's deadline) stays as it is, anything else,
// a query timing out included, is the catalog failing.
func pgErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("reader: %s: %w", op, err)
	}
	return fmt.Errorf("%w (%w): %s: %w", ErrCatalogUnavailable, tiers.ErrStorageUnavailable, op, err)
}

// Reader is one node's read path. It is safe for concurrent use.
type Reader struct {
	opts   Options
	mem    *memCache
	disk   *diskCache // nil without CacheDir
	m      *metrics
	waits  *waitHub
	stop   context.CancelFunc
	done   chan struct{}
	fetchN fetchCounters
}

// New returns a Reader and starts its listener: one dedicated PostgreSQL
// connection that LISTENs for commits and wakes WaitFor. Close stops it.
func New(opts Options) (*Reader, error) {
	switch {
	case opts.Pool == nil:
		return nil, errors.New("reader: Options.Pool is nil")
	case opts.Bucket == nil:
		return nil, errors.New("reader: Options.Bucket is nil")
	case opts.Catalog == nil:
		return nil, errors.New("reader: Options.Catalog is nil")
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.MemBytes <= 0 {
		opts.MemBytes = DefaultMemBytes
	}
	if opts.MaxFetchBytes <= 0 {
		opts.MaxFetchBytes = DefaultMaxFetchBytes
	}
	if opts.PlanRows <= 0 {
		opts.PlanRows = DefaultPlanRows
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Reader{opts: opts, m: newMetrics(opts.Registerer)}
	r.mem = newMemCache(opts.MemBytes, r.m)
	if opts.CacheDir != "" {
		d, err := openDiskCache(opts.CacheDir, opts.CacheBytes, opts.Logger, r.m)
		if err != nil {
			return nil, fmt.Errorf("reader: disk cache %s: %w", opts.CacheDir, err)
		}
		r.disk = d
	}
	r.waits = newWaitHub()
	ctx, stop := context.WithCancel(context.Background())
	r.stop, r.done = stop, make(chan struct{})
	go r.listen(ctx)
	return r, nil
}

// Close stops the listener; waiting WaitFor calls return an error wrapping
// tiers.ErrClosed. It does not close the pool, the bucket or the catalog.
func (r *Reader) Close() error {
	r.stop()
	<-r.done
	return nil
}

// Remember keeps a journal object this node just wrote (its key and whole
// bytes, as sequencer.Options.OnCommit gives them), so that reading its
// blocks back costs no GET. The memory cache is bounded by
// Options.MemBytes, least recently used evicted first. b is kept, not
// copied (the flush path must not wait): the caller must never modify it
// afterwards. Its blocks are still checked on every read.
func (r *Reader) Remember(key string, b []byte) {
	r.mem.put(key, b)
}

// CacheStats is what the read caches hold and how they serve, for status
// and metrics.
type CacheStats struct {
	MemBytes   int64 // bytes of remembered objects
	MemObjects int
	MemHits    int64 // block lookups served from memory
	MemMisses  int64
	DiskBytes  int64 // bytes of disk cache files (0 without a disk cache)
	DiskFiles  int
	DiskHits   int64
	DiskMisses int64
	// DiskDropped counts disk cache files that failed their check and
	// were dropped (and their blocks fetched again).
	DiskDropped int64
	// Fetches and FetchedBytes count ranged GETs of journal objects.
	Fetches      int64
	FetchedBytes int64
}

// Bytes is the memory and disk caches' total.
func (s CacheStats) Bytes() int64 { return s.MemBytes + s.DiskBytes }

// CacheStats reports the caches' use.
func (r *Reader) CacheStats() CacheStats {
	var s CacheStats
	s.MemBytes, s.MemObjects = r.mem.usage()
	s.MemHits, s.MemMisses = r.mem.hits.Load(), r.mem.misses.Load()
	if r.disk != nil {
		s.DiskBytes, s.DiskFiles = r.disk.usage()
		s.DiskHits, s.DiskMisses, s.DiskDropped = r.disk.hits.Load(), r.disk.misses.Load(), r.disk.dropped.Load()
	}
	s.Fetches, s.FetchedBytes = r.fetchN.n.Load(), r.fetchN.bytes.Load()
	return s
}

// Read returns the records of stream matching q in offset order, each with
// its source, at most q.Limit of them (0: no limit). A stream exists once
// cluster_streams has it; an unknown stream yields
// tiers.ErrStreamNotFound as the first and only element. Retention is
// applied as local mode applies it (see fit): a read naming offsets below
// the first retained offset yields an error wrapping tiers.ErrExpired
// before any record. Damage anywhere (a block failing its checks or not
// matching its row, offsets no segment and no range holds) is a
// *tiers.CorruptionError, never a record.
func (r *Reader) Read(ctx context.Context, stream string, q tiers.Query) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		ret, err := r.Retention(ctx, stream)
		if err != nil {
			yield(Item{}, err)
			return
		}
		if err := ret.fit(stream, &q); err != nil {
			yield(Item{}, err)
			return
		}
		if ret.Next == 0 || q.From > q.To || q.From >= ret.Next {
			return
		}
		rd := &read{r: r, stream: stream, q: q, end: min(q.To, ret.Next-1), yield: yield}
		rd.run(ctx)
	}
}
