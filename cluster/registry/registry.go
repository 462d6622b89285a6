// Package registry is a cluster node's membership in PostgreSQL: the row of
// cluster_nodes that says which process currently speaks for a node_id.
//
// Join bumps the node's epoch in one statement, so a node restarted after a
// crash takes over at once: every commit of the write path checks the epoch
// under a share lock (SELECT epoch … FOR SHARE), and the bump needs a
// stronger lock on the same row, so once Join returns no transaction of the
// dead predecessor can commit again — no lease to wait out. While the node
// runs, a heartbeat refreshes heartbeat_at and the node's stats for
// `tierctl cluster status`; Leave marks the node stopped.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrFenced reports that this process no longer speaks for its node: the
// node's row has a newer epoch (the node was started again elsewhere) or is
// gone. A fenced process must not write again; restarting it joins with a
// new epoch.
var ErrFenced = errors.New("registry: node fenced by a newer epoch")

// ErrInvalidNodeID refuses a node id that cannot name a node's journal
// objects (see ValidateNodeID).
var ErrInvalidNodeID = errors.New("registry: invalid node id")

// DefaultHeartbeatInterval is how often a node refreshes its row when
// Options.HeartbeatInterval is 0: often enough that a status a few seconds
// old means a dead or cut-off node.
const DefaultHeartbeatInterval = 3 * time.Second

// MaxNodeIDLen is the longest node id: a host name is at most 253 bytes and
// the journal object header holds 255.
const MaxNodeIDLen = 253

var nodeIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateNodeID reports whether id can be a node id: 1..MaxNodeIDLen bytes
// of [A-Za-z0-9._-], starting with a letter or digit. Host names qualify;
// the id is a component of journal object keys, so it must be a safe path
// segment.
func ValidateNodeID(id string) error {
	if len(id) == 0 || len(id) > MaxNodeIDLen || !nodeIDRE.MatchString(id) {
		return fmt.Errorf("%w: %q must be 1..%d bytes of [A-Za-z0-9._-] starting with a letter or digit", ErrInvalidNodeID, id, MaxNodeIDLen)
	}
	return nil
}

// Options tunes a Registry. The zero value is usable.
type Options struct {
	// HeartbeatInterval is the pause between heartbeats; 0 means
	// DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// Logger receives a warning when heartbeats fail or the node is
	// fenced; nil discards them.
	Logger *slog.Logger
}

// Stats are what a node reports of itself in its heartbeats.
type Stats struct {
	// StreamsWritten is the number of distinct streams the node committed
	// batches to recently (the sequencer's count).
	StreamsWritten int64
	// JobsHeld is the number of compaction jobs the node holds.
	JobsHeld int
	// CacheBytes is the size of the node's read cache (memory and disk).
	CacheBytes int64
}

// Node is one row of cluster_nodes as Nodes lists it.
type Node struct {
	ID      string
	Epoch   uint64
	Version string
	Addr    string
	// Started is when this epoch joined.
	Started time.Time
	// Heartbeat is the last heartbeat; HeartbeatAge is its age by the
	// database's clock, so nodes' clock skew does not distort it.
	Heartbeat    time.Time
	HeartbeatAge time.Duration
	// Stopped is when the node left; zero while it runs (or died without
	// leaving: then only the heartbeat's age tells).
	Stopped time.Time
	Stats   Stats
}

// Registry is this process's membership: its node id and epoch, and the
// heartbeat loop that keeps its row fresh. Its methods are safe for
// concurrent use.
type Registry struct {
	pool     *pgxpool.Pool
	nodeID   string
	epoch    uint64
	interval time.Duration
	log      *slog.Logger

	streams atomic.Int64
	jobs    atomic.Int64
	cache   atomic.Int64

	fenced    chan struct{}
	fenceOnce sync.Once
	stop      chan struct{}
	stopOnce  sync.Once
	loopDone  chan struct{}
	lastMu    sync.Mutex
	lastErr   error
}

// Join registers the node in cluster_nodes with a new epoch (1 for a node
// never seen, the previous epoch + 1 otherwise), which fences any process
// still running under the previous one, and starts heartbeating. The pool
// must reach a database migrated by pgschema.Migrate. Leave stops the
// heartbeat.
func Join(ctx context.Context, pool *pgxpool.Pool, nodeID, version, addr string, opts Options) (*Registry, error) {
	if err := ValidateNodeID(nodeID); err != nil {
		return nil, err
	}
	r := &Registry{
		pool:     pool,
		nodeID:   nodeID,
		interval: opts.HeartbeatInterval,
		log:      opts.Logger,
		fenced:   make(chan struct{}),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	if r.interval <= 0 {
		r.interval = DefaultHeartbeatInterval
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	var epoch int64
	var wasLive bool
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// A previous epoch that never left is worth a line: either a crash,
	// or two processes configured with one node_id.
	err := pool.QueryRow(ctx, `
		WITH prev AS (SELECT stopped_at IS NULL AS live FROM cluster_nodes WHERE node_id = $1)
		INSERT INTO cluster_nodes AS n (node_id, epoch, version, addr, started_at, heartbeat_at)
		VALUES ($1, 1, $2, $3, now(), now())
		ON CONFLICT (node_id) DO UPDATE SET
			epoch = n.epoch + 1, version = excluded.version, addr = excluded.addr,
			started_at = now(), heartbeat_at = now(), stopped_at = NULL,
			streams_written = 0, jobs_held = 0, cache_bytes = 0
		RETURNING n.epoch, coalesce((SELECT live FROM prev), false)`,
		nodeID, version, addr).Scan(&epoch, &wasLive)
	if err != nil {
		return nil, fmt.Errorf("registry: join as %s: %w", nodeID, err)
	}
	r.epoch = uint64(epoch)
	if wasLive {
		r.log.Warn("node id was registered without having left: its previous process is fenced (a crash, or two processes with one cluster.node_id)",
			"node_id", nodeID, "epoch", r.epoch)
	}
	go r.loop()
	return r, nil
}

// NodeID is the node's id.
func (r *Registry) NodeID() string { return r.nodeID }

// Epoch is the epoch this process joined with.
func (r *Registry) Epoch() uint64 { return r.epoch }

// SetStreamsWritten sets the streams-written figure of the next heartbeat.
func (r *Registry) SetStreamsWritten(n int64) { r.streams.Store(n) }

// SetJobsHeld sets the jobs-held figure of the next heartbeat.
func (r *Registry) SetJobsHeld(n int) { r.jobs.Store(int64(n)) }

// SetCacheBytes sets the cache-bytes figure of the next heartbeat.
func (r *Registry) SetCacheBytes(n int64) { r.cache.Store(n) }

// Fenced is closed once the registry knows the node is fenced: a heartbeat
// found a newer epoch, or another part reported it (MarkFenced).
func (r *Registry) Fenced() <-chan struct{} { return r.fenced }

// MarkFenced records that another part of the node (the sequencer's commit
// check) found the node fenced: Fenced closes and heartbeats stop, since a
// fenced process must not touch the row of its successor.
func (r *Registry) MarkFenced() {
	r.fenceOnce.Do(func() {
		r.log.Error("node fenced: a newer process joined with this node id; this one stops writing", "node_id", r.nodeID, "epoch", r.epoch)
		close(r.fenced)
	})
}

// IsFenced reports whether Fenced is closed.
func (r *Registry) IsFenced() bool {
	select {
	case <-r.fenced:
		return true
	default:
		return false
	}
}

// LastError is the error of the last heartbeat, nil when it succeeded.
func (r *Registry) LastError() error {
	r.lastMu.Lock()
	defer r.lastMu.Unlock()
	return r.lastErr
}

// Heartbeat refreshes the node's row now with the current stats. It
// returns ErrFenced (and marks the registry fenced) when the row's epoch is
// no longer this process's. The loop calls it every interval; tests and
// shutdown may call it directly.
func (r *Registry) Heartbeat(ctx context.Context) error {
	if r.IsFenced() {
		return r.fencedErr()
	}
	tag, err := r.pool.Exec(ctx, `
		UPDATE cluster_nodes SET heartbeat_at = now(),
			streams_written = $3, jobs_held = $4, cache_bytes = $5
		WHERE node_id = $1 AND epoch = $2`,
		r.nodeID, int64(r.epoch), r.streams.Load(), r.jobs.Load(), r.cache.Load())
	if err == nil && tag.RowsAffected() == 0 {
		r.MarkFenced()
		err = r.fencedErr()
	} else if err != nil {
		err = fmt.Errorf("registry: heartbeat of %s: %w", r.nodeID, err)
	}
	r.lastMu.Lock()
	r.lastErr = err
	r.lastMu.Unlock()
	return err
}

func (r *Registry) fencedErr() error {
	return fmt.Errorf("%w: node %s epoch %d", ErrFenced, r.nodeID, r.epoch)
}

// loop heartbeats until Leave or fencing. A failing database is logged and
// retried at the next tick: the write path's own checks decide what is
// safe, the heartbeat only informs status.
func (r *Registry) loop() {
	defer close(r.loopDone)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-r.stop:
			return
		case <-r.fenced:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.interval+5*time.Second)
		err := r.Heartbeat(ctx)
		cancel()
		switch {
		case errors.Is(err, ErrFenced):
			return
		case err != nil && !failing:
			failing = true
			r.log.Warn("heartbeat failed; retrying", "node_id", r.nodeID, "err", err)
		case err == nil && failing:
			failing = false
			r.log.Info("heartbeat succeeds again", "node_id", r.nodeID)
		}
	}
}

// Leave stops the heartbeat and marks the node stopped. A fenced node's row
// belongs to its successor and is left alone (ErrFenced). Leave may be
// called more than once.
func (r *Registry) Leave(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.loopDone
	if r.IsFenced() {
		return r.fencedErr()
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	tag, err := r.pool.Exec(ctx, `UPDATE cluster_nodes SET stopped_at = now(), heartbeat_at = now()
		WHERE node_id = $1 AND epoch = $2`, r.nodeID, int64(r.epoch))
	if err != nil {
		return fmt.Errorf("registry: leave as %s: %w", r.nodeID, err)
	}
	if tag.RowsAffected() == 0 {
		r.MarkFenced()
		return r.fencedErr()
	}
	return nil
}

// callTimeout bounds Join, Leave and List whatever the caller's context:
// a half-open connection to PostgreSQL must not hang a start, a stop or a
// status call (statement_timeout does not cover a connection that went
// silent).
const callTimeout = 30 * time.Second

// Nodes lists every node the cluster has seen, by id, live or stopped.
func (r *Registry) Nodes(ctx context.Context) ([]Node, error) {
	return List(ctx, r.pool)
}

// List lists the nodes of cluster_nodes by id; Nodes without a Registry,
// for status tools that are not nodes.
func List(ctx context.Context, pool *pgxpool.Pool) ([]Node, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rows, err := pool.Query(ctx, `
		SELECT node_id, epoch, version, addr, started_at, heartbeat_at,
			extract(epoch FROM greatest(now() - heartbeat_at, interval '0'))::float8, stopped_at,
			streams_written, jobs_held, cache_bytes
		FROM cluster_nodes ORDER BY node_id`)
	if err != nil {
		return nil, fmt.Errorf("registry: list nodes: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Node, error) {
		var n Node
		var epoch int64
		var stopped *time.Time
		var jobs int32
		var age float64
		err := row.Scan(&n.ID, &epoch, &n.Version, &n.Addr, &n.Started, &n.Heartbeat,
			&age, &stopped, &n.Stats.StreamsWritten, &jobs, &n.Stats.CacheBytes)
		n.Epoch = uint64(epoch)
		n.HeartbeatAge = time.Duration(age * float64(time.Second))
		n.Stats.JobsHeld = int(jobs)
		if stopped != nil {
			n.Stopped = *stopped
		}
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("registry: list nodes: %w", err)
	}
	return nodes, nil
}
