// Package cluster is a tierd node in cluster mode: Node composes the
// shared write path (cluster/sequencer), the read path (cluster/reader),
// compaction and garbage collection (cluster/compactor), the node registry
// (cluster/registry), the PostgreSQL catalog (catalog/pgcatalog) and the
// cold tier on the shared bucket, and answers every call the HTTP server
// makes of a backend (server.Backend) in cluster terms. Everything
// acknowledged lives in the object store and PostgreSQL; the node's
// data_dir holds only a cache (data_dir/cache) and a spool for uploads,
// so deleting it loses nothing.
//
// # The tiers in cluster mode
//
// The placements keep their meaning for policies, listings and explain:
//
//   - hot: this node's memory (the reader's cache of blocks it wrote or
//     read lately). Never the only copy of anything.
//   - warm: the shared journal: journal objects under <bucket>/_journal/,
//     referenced by journal_ranges rows (the node's disk cache holds
//     copies of some of their blocks). Records are warm from their
//     acknowledgement until compaction turns them into a segment.
//   - cold: Parquet segments committed by compaction to the PostgreSQL
//     catalog (cold placement), at cold.ObjectKey of the shared bucket.
//
// # How each backend call answers
//
//   - AppendAs checks the stream name and every record exactly as the
//     engine does (same errors, before anything is sent anywhere), then
//     hands the batch to the sequencer, which answers once the journal
//     object is in the store and the offsets are committed in PostgreSQL.
//     Outages of either wrap tiers.ErrStorageUnavailable (503 +
//     Retry-After); a fenced node (a newer epoch of its node_id started)
//     refuses every append until it is restarted.
//   - Read and WaitFor are the reader's: offsets below the first live
//     journal range come from catalog segments (Parquet), the rest from
//     journal blocks (memory, disk cache, ranged GET), every block checked;
//     retention as in local mode. Items are tagged hot (memory), warm
//     (journal block, from the disk cache or the store) or cold (Parquet).
//     WaitFor is woken by LISTEN tierd_commits, so by any node's commits.
//   - Segments lists the catalog's segments (cold, tombstoned ones
//     included), then the stream's journal ranges grouped into
//     pseudo-segments: one per open compaction job (sealed: its SealedAt is
//     the job's creation, the time the planner cut it) and one for the
//     remaining run of ranges (Active: what the next job will take), placed
//     warm: their bytes are in journal objects, not in Parquet. Counts, byte
//     totals and ts bounds come from the ranges' rows.
//   - Streams, Tiers: the union of cluster_streams (every stream written)
//     and the catalog's streams, each summed from Segments as the engine
//     does, so the listing and the totals agree; NextOffset is
//     cluster_streams.next_offset, the sequencer's.
//   - Describe is a catalog segment as the listing shows it (no hot
//     overlay: this node's memory holds blocks, not segments).
//   - Retention: First is the catalog's retention watermark (0 when
//     nothing was ever compacted), Next cluster_streams.next_offset.
//   - Status is the engine's Status filled in cluster terms (hot = reader
//     memory, warm = live journal bytes and ranges, no WAL) plus the
//     mode "cluster", node id and epoch; ClusterStatus (GET /v1/cluster) lists
//     every node of the registry.
//   - WriteHealth is 503 while PostgreSQL does not answer a ping, while the
//     cold store's breaker is open or, after a failed flush, the store does
//     not answer a probe, and for good once the node is fenced (cause
//     fenced); the tierd_writes_refused series say the same.
//   - Verify proves, per stream, that the catalog's segments cover
//     [retention watermark, first journal offset) exactly once (catalog
//     Coverage, each segment's Parquet object read back against its
//     digest), that the journal ranges run dense from there to
//     next_offset, and that every range's block reads back (a ranged GET of
//     exactly its bytes, decoded with the journal's checks against the
//     row's stream and count); then it lists the cold store for Parquet
//     objects nothing claims (orphan_cold, lost_segment). Findings use the
//     api.Finding* kinds.
//   - Seal asks the compactor to cut the stream's uncompacted ranges into
//     a job now, whatever their size and age, and waits (bounded by ctx)
//     until a worker has committed it, then answers the segment: the
//     cluster equivalent of sealing (nothing in cluster mode needs a seal
//     to be durable: it already is, in the journal).
//   - Offload of a catalog segment answers it as it is (cold already: every
//     segment of cluster mode is born in Parquet); of offsets still in the
//     journal, engine.ErrNotPersisted (409): compaction, not offload, makes
//     them a segment.
//
// Retention is local mode's migrator over this node's Executor (a mover
// on the PostgreSQL catalog and the cold tier, with no warm store):
// policy.Plan's expire actions tombstone and, after delete_delay, delete
// Parquet segments, each step justified again when it runs. cmd/tierd
// starts that migrator on every node (migrate and explain work as in local
// mode); each step is a catalog transaction that a second node finds done.
// Journal ranges are never deleted by retention: they are compacted first.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cluster/registry"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/mover"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/server"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
)

// Options configures a Node. Zero fields take defaults where one is said.
type Options struct {
	// DSN is cluster.catalog, a postgres:// URL. A password absent from it
	// is taken from $PGPASSWORD (pgx reads the libpq variables). Required.
	DSN string
	// NodeID is this node's name in cluster_nodes (cluster.node_id).
	// Required: unique among live nodes; restarting with it fences the
	// previous process of that id.
	NodeID string
	// Version is the tierd version the registry shows.
	Version string
	// Addr is the node's API address, shown by cluster status.
	Addr string
	// DataDir holds only caches in cluster mode: the reader's disk cache
	// (DataDir/cache) and the upload spool (DataDir/cold-spool).
	DataDir string
	// Cold is the cold tier on the shared bucket (cold.store); the node's
	// journal objects live under _journal/ of the same bucket and prefix
	// (Journal). The Node closes Cold on Close. Required.
	Cold *cold.Tier
	// Bucket is the shared bucket Cold stores in (the same prefix): the
	// node reads journal objects back from it for verify. Required.
	Bucket objstore.Bucket
	// Tables opens the publishing of the cold segments as Apache Iceberg
	// tables over the cluster's catalog (tables.enabled; internal/boot
	// builds it over package tables with the PostgreSQL catalog), or nil
	// for none. Every node runs the loop: compaction's commits mark their
	// streams, retention removes segments from the tables before their
	// objects, and concurrent commits of two nodes are the Iceberg
	// catalog's optimistic concurrency to settle.
	Tables func(ctx context.Context, src tablesync.CatalogSource) (*tablesync.Loop, error)
	// Config gives the policies (segment sizes and ages for compaction,
	// retention) and the cluster section's tunables. Required.
	Config *policy.Config

	// The tunables of the parts; zero takes each part's own default
	// (sequencer, compactor, reader: the defaults live there, once).
	FlushInterval time.Duration // cluster.flush_interval
	FlushBytes    int64         // cluster.flush_bytes
	GCDelay       time.Duration // cluster.gc_delay
	Lease         time.Duration // cluster.compaction_lease
	CacheBytes    int64         // cluster.cache_bytes: the reader's disk cache
	MemBytes      int64         // the reader's memory cache of blocks

	// MaxConns caps the PostgreSQL pool; default 16.
	MaxConns int32
	// StatementTimeout bounds every statement on the server side; default
	// 30s. ConnectTimeout bounds each connection attempt; default 5s.
	StatementTimeout, ConnectTimeout time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// The defaults of the Options the node itself uses.
const (
	DefaultMaxConns         = 16
	DefaultStatementTimeout = 30 * time.Second
	DefaultConnectTimeout   = 5 * time.Second
)

func (o *Options) setDefaults() {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = DefaultStatementTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// CauseFenced is the cause a fenced node's WriteHealth names: a newer process
// of the same node_id started (its epoch is higher), so this one accepts
// no more appends; only a restart, which takes a new epoch, clears it.
const CauseFenced = "fenced"

// errClosed is what calls after Close answer.
var errClosed = fmt.Errorf("cluster: node closed: %w", tiers.ErrClosed)

// Node is an open cluster-mode node.
type Node struct {
	opts    Options
	started time.Time
	pool    *pgxpool.Pool
	cat     catalog.Store
	cold    *cold.Tier
	parts   parts
	mover   *mover.Mover
	tables  *tablesync.Loop // nil without tables

	closed atomic.Bool
	stop   context.CancelFunc
	loops  sync.WaitGroup

	health    health
	store     health // the store probe's, while the last flush failed
	metrics   *healthCollector
	fenceOnce sync.Once
	fenced    time.Time
}

// NodeID is the node's name in the cluster.
func (n *Node) NodeID() string { return n.opts.NodeID }

// Epoch is the epoch this process took when it joined.
func (n *Node) Epoch() uint64 { return n.parts.reg.Epoch() }

// fencedErr is why the node takes no more appends for good (a newer
// process of its node_id joined), or nil.
func (n *Node) fencedErr() error {
	if err := n.parts.seq.Fenced(); err != nil {
		return err
	}
	if n.parts.reg.IsFenced() {
		return fmt.Errorf("cluster: node %s epoch %d: %w", n.opts.NodeID, n.parts.reg.Epoch(), registry.ErrFenced)
	}
	return nil
}

// RedactDSN is dsn without its password, fit for logs and status (as
// policy.DSN prints it).
func RedactDSN(dsn string) string { return policy.DSN(dsn).Redacted() }

// A Node is what the server serves in cluster mode, GET /v1/cluster
// included.
var (
	_ server.Backend        = (*Node)(nil)
	_ server.ClusterBackend = (*Node)(nil)
	_ server.TablesBackend  = (*Node)(nil)
)

// TablesEnabled reports whether the node publishes Iceberg tables
// (server.TablesBackend).
func (n *Node) TablesEnabled() bool { return n.tables.Enabled() }

// Table describes stream's Iceberg table (server.TablesBackend).
func (n *Node) Table(ctx context.Context, stream string) (api.Table, error) {
	return n.tables.Table(ctx, stream)
}

// SyncTables makes the table of stream (every stream when "") exactly its
// retained cold segments now (server.TablesBackend).
func (n *Node) SyncTables(ctx context.Context, stream string) (api.TableSyncReport, error) {
	return n.tables.SyncTables(ctx, stream)
}

// checkOptions refuses Options a node cannot run with.
func checkOptions(o *Options) error {
	var errs []error
	if o.DSN == "" {
		errs = append(errs, errors.New("cluster: Options.DSN (cluster.catalog) is empty"))
	}
	if o.NodeID == "" {
		errs = append(errs, errors.New("cluster: Options.NodeID (cluster.node_id) is empty"))
	}
	if o.Cold == nil {
		errs = append(errs, errors.New("cluster: Options.Cold is nil: cluster mode needs a shared cold.store"))
	}
	if o.Bucket == nil {
		errs = append(errs, errors.New("cluster: Options.Bucket is nil"))
	}
	if o.Config == nil {
		errs = append(errs, errors.New("cluster: Options.Config is nil"))
	}
	return errors.Join(errs...)
}

// queryTimeout bounds each of the node's own PostgreSQL calls (listing,
// status, verify, seal) whatever the caller's context: statement_timeout
// does not cover a connection that went silent, and a request must not
// hang on one.
const queryTimeout = 30 * time.Second

// bounded is ctx with queryTimeout.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, queryTimeout)
}
