// Package compactor turns a cluster-mode stream's journal ranges into its
// Parquet segments and collects the garbage they leave.
//
// The journal (journal objects in the bucket, one journal_ranges row per
// acknowledged batch) is where the write path puts records; a stream's
// oldest ranges become one cold segment once their bytes reach the
// stream's segment.max_bytes or the oldest is older than segment.max_age.
// The work is a job in PostgreSQL (compaction_jobs) that any node may do:
//
//  1. plan: a planner opens at most one job per stream, under the stream
//     row's lock, for its oldest contiguous ranges;
//  2. claim: a worker takes a job whose lease is empty or expired (FOR
//     UPDATE SKIP LOCKED), writing its node id, epoch and a lease it
//     renews while it works;
//  3. build and upload: it reads every range's block (a ranged GET,
//     checked by journal.DecodeBlock against the row), computes the
//     segment's digest, and uploads the Parquet object with
//     cold.Tier.Upload, whose key depends only on the segment (stream,
//     base, last, first day): a job retaken after its owner died writes
//     the same object, never a second one;
//  4. commit, in ONE transaction: still the owner (node, epoch, lease),
//     the segment put in the catalog (PutSegmentTx), the ranges deleted,
//     each journal object's live_ranges decremented (released_at set at
//     0), the job deleted.
//
// Garbage collection deletes journal objects released longer than
// gc_delay ago (object first, then row: a crash between repeats the
// delete of a missing object, which is no error), objects under _journal/
// with no row older than gc_delay (a write path that crashed before its
// commit), and Parquet objects no segment and no open job names older
// than gc_delay (an upload whose job was lost).
//
// A failure anywhere leaves the job open: its lease expires and a worker
// (this node's or another's) takes it again.
package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// Defaults of the zero Options fields. DefaultGCDelay is cluster.gc_delay's
// default (policy takes it from here).
const (
	DefaultGCDelay        = 10 * time.Minute
	DefaultLease          = time.Minute
	DefaultPlanInterval   = 10 * time.Second
	DefaultWorkInterval   = time.Second
	DefaultGCInterval     = time.Minute
	DefaultOrphanInterval = 10 * time.Minute
	DefaultRetryDelay     = 10 * time.Second
	DefaultPGTimeout      = 30 * time.Second
)

// JournalPrefix is where the write path puts journal objects in the
// bucket (docs/format/journal.md): garbage collection lists it for
// objects no row names.
const JournalPrefix = "_journal/"

// Steps a Failpoint is called at, named as the failpoint package's.
const (
	StepAfterClaim    = failpoint.CompactAfterClaim
	StepAfterUpload   = failpoint.CompactAfterUpload
	StepBeforeCommit  = failpoint.CompactBeforeCommit
	StepAfterCommit   = failpoint.CompactAfterCommit
	StepGCAfterDelete = failpoint.GCAfterDeleteObject
)

// SegmentCommitter puts a segment in the catalog inside the caller's
// transaction, with PutSegment's checks and effects: the compactor commits
// a segment and releases its journal ranges in one transaction.
// *pgcatalog.Catalog implements it.
type SegmentCommitter interface {
	PutSegmentTx(ctx context.Context, tx pgx.Tx, m tiers.SegmentMeta) error
}

// Catalog is what the compactor needs of the cluster's catalog: committing
// segments, and locating them (garbage collection keeps the Parquet
// objects of catalogued segments), with catalog.Reads' Locate contract.
// *pgcatalog.Catalog implements it.
type Catalog interface {
	SegmentCommitter
	Locate(ctx context.Context, stream string, from, to uint64) ([]tiers.SegmentMeta, uint64, error)
}

// Options configures a Compactor. Pool, Bucket, Cold, Catalog and NodeID
// are required; zero durations take the defaults above.
type Options struct {
	Pool    *pgxpool.Pool
	Bucket  objstore.Bucket // the journal objects, under the keys of journal_objects
	Cold    *cold.Tier      // where segments go
	Catalog Catalog
	// NodeID and Epoch identify this node as a job's owner
	// (compaction_jobs.owner, owner_epoch): cluster_nodes' row for it.
	NodeID string
	Epoch  uint64
	// Segment gives a stream's segment.max_bytes and max_age (policy's
	// PolicyFor(stream).Segment); nil means the defaults of tiers.
	Segment func(stream string) policy.SegmentConfig
	// MaxRecordBytes caps a record's value when decoding blocks
	// (max_record_bytes); 0 means the block's size.
	MaxRecordBytes int
	// GCDelay is cluster.gc_delay: how long a released or unreferenced
	// object stays before it is deleted.
	GCDelay time.Duration
	// Lease is how long a claim holds a job without renewal; it is renewed
	// every Lease/3 while the job runs.
	Lease time.Duration
	// RetryDelay is how long a failed job waits before it may be claimed
	// again, doubled with each attempt up to 64 times.
	RetryDelay time.Duration
	// PlanInterval, WorkInterval, GCInterval and OrphanInterval pace Run:
	// planning, polling for claimable jobs, collecting released journal
	// objects, and listing the bucket for unreferenced objects.
	PlanInterval, WorkInterval, GCInterval, OrphanInterval time.Duration
	// PGTimeout bounds each PostgreSQL statement or transaction, so a
	// server that stops answering fails the step instead of hanging it.
	PGTimeout time.Duration
	// SpoolDir holds a job's blocks while it builds the segment (default
	// os.TempDir()); a job spools at most its segment's journal bytes.
	SpoolDir string
	// Failpoint is called after each step (the Step constants); an error
	// stops the job or the collection there, as a crash would (nothing
	// more is written). nil means failpoint.Inject (TIERD_FAILPOINTS).
	Failpoint func(step string) error
	// OnCommit, when set, is told the stream of each job committed: its
	// segments' cold placements are in the catalog (the node's tables
	// publish them). It must not block.
	OnCommit func(stream string)
	Logger   *slog.Logger
	// Registerer receives the metrics (see newMetrics); nil registers none.
	Registerer prometheus.Registerer
}

// Job is a compaction job: the segment [Base, Last] of Stream to be.
type Job struct {
	Stream     string
	Base, Last uint64
	// CreatedAt is when the job was planned; the segment's SealedAt.
	CreatedAt time.Time
	// Attempts counts claims, this one included.
	Attempts int
}

// Compactor plans, runs and commits compaction jobs and collects garbage.
// Safe for concurrent use; several Compactors (nodes) share the work
// through PostgreSQL.
type Compactor struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu struct {
		sync.Mutex
		held map[jobKey]Job
	}
}

type jobKey struct {
	stream string
	base   uint64
}

// ErrLostLease reports a job whose lease this node no longer holds when it
// commits (or renews): another worker may have it. Nothing was committed.
var ErrLostLease = errors.New("compactor: lease lost")

// New returns a Compactor; it does nothing until Run or RunOnce.
func New(opts Options) (*Compactor, error) {
	switch {
	case opts.Pool == nil:
		return nil, errors.New("compactor: Options.Pool is nil")
	case opts.Bucket == nil:
		return nil, errors.New("compactor: Options.Bucket is nil")
	case opts.Cold == nil:
		return nil, errors.New("compactor: Options.Cold is nil")
	case opts.Catalog == nil:
		return nil, errors.New("compactor: Options.Catalog is nil")
	case opts.NodeID == "":
		return nil, errors.New("compactor: Options.NodeID is empty")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.GCDelay, DefaultGCDelay)
	def(&opts.Lease, DefaultLease)
	def(&opts.RetryDelay, DefaultRetryDelay)
	def(&opts.PlanInterval, DefaultPlanInterval)
	def(&opts.WorkInterval, DefaultWorkInterval)
	def(&opts.GCInterval, DefaultGCInterval)
	def(&opts.OrphanInterval, DefaultOrphanInterval)
	def(&opts.PGTimeout, DefaultPGTimeout)
	if opts.Segment == nil {
		opts.Segment = func(string) policy.SegmentConfig {
			return policy.SegmentConfig{MaxBytes: tiers.DefaultSegmentMaxBytes, MaxAge: tiers.DefaultSegmentMaxAge}
		}
	}
	if opts.Failpoint == nil {
		opts.Failpoint = failpoint.Inject
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Compactor{opts: opts, log: opts.Logger.With("node", opts.NodeID), metrics: newMetrics(opts.Registerer)}
	c.mu.held = map[jobKey]Job{}
	return c, nil
}

// Held returns the jobs this Compactor holds now (claimed, not yet
// committed or given up), for cluster status.
func (c *Compactor) Held() []Job {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Job, 0, len(c.mu.held))
	for _, j := range c.mu.held {
		out = append(out, j)
	}
	return out
}

func (c *Compactor) hold(j Job) {
	c.mu.Lock()
	c.mu.held[jobKey{j.Stream, j.Base}] = j
	c.mu.Unlock()
}

func (c *Compactor) release(j Job) {
	c.mu.Lock()
	delete(c.mu.held, jobKey{j.Stream, j.Base})
	c.mu.Unlock()
}

// Result counts what one RunOnce did.
type Result struct {
	Planned   int // jobs opened
	Committed int // segments committed
	Failed    int // jobs that failed (left for a retry)
	Deleted   int // objects garbage collection deleted
}

// RunOnce plans, then runs jobs until none is claimable, then collects
// garbage (released objects and unreferenced ones): one pass of Run, for
// tests and on-demand triggers. It stops at the first failure of
// PostgreSQL or of a failpoint; a failed job is counted and the pass goes
// on with the next.
func (c *Compactor) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	n, err := c.Plan(ctx)
	res.Planned = n
	if err != nil {
		return res, err
	}
	for {
		ok, err := c.Work(ctx)
		switch {
		case !ok && err == nil:
			return c.runGC(ctx, res)
		case err == nil:
			res.Committed++
		case ctx.Err() != nil || errors.Is(err, errStopped):
			return res, err
		default:
			res.Failed++
		}
	}
}

func (c *Compactor) runGC(ctx context.Context, res Result) (Result, error) {
	n, err := c.CollectReleased(ctx)
	res.Deleted += n
	if err != nil {
		return res, err
	}
	n, err = c.CollectOrphans(ctx)
	res.Deleted += n
	return res, err
}

// Run plans, works and collects at the Options' intervals until ctx is
// done, logging failures (a job that fails is retried after RetryDelay by
// whichever node claims it). It returns ctx's error.
func (c *Compactor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	every := func(d time.Duration, name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				if err := f(ctx); err != nil && ctx.Err() == nil {
					c.log.Warn("compactor: "+name+" failed", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	every(c.opts.PlanInterval, "plan", func(ctx context.Context) error { _, err := c.Plan(ctx); return err })
	every(c.opts.WorkInterval, "job", func(ctx context.Context) error {
		for ctx.Err() == nil {
			ok, err := c.Work(ctx)
			if !ok || errors.Is(err, errStopped) {
				return err
			}
		}
		return nil
	})
	every(c.opts.GCInterval, "garbage collection", func(ctx context.Context) error { _, err := c.CollectReleased(ctx); return err })
	every(c.opts.OrphanInterval, "orphan collection", func(ctx context.Context) error { _, err := c.CollectOrphans(ctx); return err })
	wg.Wait()
	return ctx.Err()
}

// bounded gives one PostgreSQL statement or transaction its deadline.
func (c *Compactor) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.PGTimeout)
}

// errStopped wraps a failpoint's error: the job or collection stopped as
// if the process had died there.
var errStopped = errors.New("compactor: stopped at a failpoint")

// step runs the failpoint of a step.
func (c *Compactor) step(name string) error {
	if err := c.opts.Failpoint(name); err != nil {
		return fmt.Errorf("%w %s: %w", errStopped, name, err)
	}
	return nil
}
