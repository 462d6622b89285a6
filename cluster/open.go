package cluster

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tierd/tierd/catalog/pgcatalog"
	"github.com/tierd/tierd/cluster/compactor"
	"github.com/tierd/tierd/cluster/reader"
	"github.com/tierd/tierd/cluster/registry"
	"github.com/tierd/tierd/cluster/sequencer"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/internal/pgschema"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
)

// statsEvery is how often the node hands its cache and job figures to the
// registry's heartbeat.
const statsEvery = 2 * time.Second

// Open joins the cluster as opts.NodeID: it connects to PostgreSQL
// (opts.DSN), migrates the schema (a schema newer than this binary is
// refused: pgschema.ErrSchemaNewer), takes a new epoch in the registry
// (fencing any process still running under this node id), opens the
// catalog, the reader (its disk cache in DataDir/cache), the sequencer and
// the compactor, and starts compaction, garbage collection and the
// heartbeat. On error nothing stays open but opts.Cold, which stays the
// caller's; on success the Node owns opts.Cold and closes it with Close.
func Open(ctx context.Context, opts Options) (*Node, error) {
	opts.setDefaults()
	if err := checkOptions(&opts); err != nil {
		return nil, err
	}
	pool, err := openPool(ctx, &opts)
	if err != nil {
		return nil, err
	}
	n := &Node{opts: opts, started: opts.Now(), pool: pool, cold: opts.Cold}
	fail := func(err error) (*Node, error) {
		if n.parts.reg != nil {
			lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			n.parts.reg.Leave(lctx)
			cancel()
		}
		if n.tables != nil {
			n.tables.Close()
		}
		if n.cat != nil {
			n.cat.Close()
		}
		pool.Close()
		return nil, err
	}
	if _, err := pgschema.Migrate(ctx, pool); err != nil {
		return fail(fmt.Errorf("cluster: migrate the schema of %s: %w", RedactDSN(opts.DSN), err))
	}
	reg, err := registry.Join(ctx, pool, opts.NodeID, opts.Version, opts.Addr, registry.Options{Logger: opts.Logger})
	if err != nil {
		return fail(fmt.Errorf("cluster: join as %s: %w", opts.NodeID, err))
	}
	n.parts.reg = reg
	cat, err := pgcatalog.Open(ctx, pool)
	if err != nil {
		return fail(fmt.Errorf("cluster: open the catalog: %w", err))
	}
	n.cat = cat
	if opts.Tables != nil {
		if n.tables, err = opts.Tables(ctx, tablesync.CatalogSource{Catalog: cat}); err != nil {
			return fail(fmt.Errorf("cluster: open tables: %w", err))
		}
	}
	rd, err := reader.New(reader.Options{
		Pool: pool, Bucket: opts.Bucket, Cold: opts.Cold, Catalog: cat,
		CacheDir: filepath.Join(opts.DataDir, "cache"), CacheBytes: opts.CacheBytes, MemBytes: opts.MemBytes,
		Logger: opts.Logger, Registerer: opts.Registerer,
	})
	if err != nil {
		return fail(err)
	}
	seq, err := sequencer.New(sequencer.Options{
		Pool: pool, Bucket: opts.Bucket, Registry: reg,
		FlushInterval: opts.FlushInterval, FlushBytes: opts.FlushBytes,
		CommitBy:    commitBy(opts.GCDelay),
		ProducerTTL: opts.Config.WAL.ProducerTTL, // wal.producer_ttl keeps its meaning
		OnCommit:    func(c sequencer.Committed) { rd.Remember(c.Key, c.Data) },
		Logger:      opts.Logger, Registerer: opts.Registerer,
	})
	if err != nil {
		rd.Close()
		return fail(err)
	}
	cfg := opts.Config
	// The spool holds a compaction's upload in progress: after a restart
	// nothing is in progress, and a crash's leftovers would only grow.
	spool := filepath.Join(opts.DataDir, "compact-spool")
	if err := os.RemoveAll(spool); err != nil {
		seq.Close(ctx)
		rd.Close()
		return fail(fmt.Errorf("cluster: clear the compaction spool: %w", err))
	}
	if err := os.MkdirAll(spool, 0o755); err != nil {
		seq.Close(ctx)
		rd.Close()
		return fail(fmt.Errorf("cluster: %w", err))
	}
	comp, err := compactor.New(compactor.Options{
		Pool: pool, Bucket: opts.Bucket, Cold: opts.Cold, Catalog: cat,
		NodeID: opts.NodeID, Epoch: reg.Epoch(),
		Segment:        func(stream string) policy.SegmentConfig { return cfg.PolicyFor(stream).Segment },
		MaxRecordBytes: n.maxRecordBytes(),
		GCDelay:        opts.GCDelay,
		Lease:          opts.Lease,
		SpoolDir:       spool,
		OnCommit:       n.published,
		Logger:         opts.Logger, Registerer: opts.Registerer,
	})
	if err != nil {
		seq.Close(ctx)
		rd.Close()
		return fail(err)
	}
	n.mover = n.newMover(ctx)
	n.parts.seq = seqPart{seq}
	n.parts.rd = readPart{rd}
	n.parts.comp = compPart{comp}
	loops, stop := context.WithCancel(context.Background())
	n.stop = stop
	n.loops.Add(2)
	go func() {
		defer n.loops.Done()
		// A fenced process (a newer one runs with this node_id) stops
		// compacting and collecting garbage too: the newer process does
		// it, with its own configuration.
		work, cancel := context.WithCancel(loops)
		defer cancel()
		go func() {
			select {
			case <-reg.Fenced():
				if opts.Logger != nil {
					opts.Logger.Warn("cluster: fenced; compaction and garbage collection stop in this process", "node_id", opts.NodeID)
				}
				cancel()
			case <-work.Done():
			}
		}()
		n.parts.comp.Run(work)
	}()
	go func() {
		defer n.loops.Done()
		n.reportStats(loops)
	}()
	n.bindMetrics(opts.Registerer)
	if n.tables != nil {
		n.tables.Start()
	}
	opts.Logger.Info("cluster: joined", "node_id", opts.NodeID, "epoch", reg.Epoch(), "catalog", RedactDSN(opts.DSN))
	return n, nil
}

// openPool connects to opts.DSN: the password from the DSN or $PGPASSWORD
// (pgx reads the libpq variables), a bounded pool, a connect timeout and a
// server-side statement timeout, then pings it once.
func openPool(ctx context.Context, opts *Options) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		// pgx's parse errors may quote the DSN: name it redacted only.
		return nil, fmt.Errorf("cluster: cluster.catalog %s does not parse as a PostgreSQL DSN", RedactDSN(opts.DSN))
	}
	pc.MaxConns = opts.MaxConns
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.HealthCheckPeriod = 10 * time.Second
	pc.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	pc.ConnConfig.RuntimeParams["application_name"] = "tierd " + opts.NodeID
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", RedactDSN(opts.DSN), err)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout+time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cluster: connect to %s: %w", RedactDSN(opts.DSN), err)
	}
	return pool, nil
}

// reportStats hands the cache use and the jobs held to the heartbeat.
func (n *Node) reportStats(ctx context.Context) {
	t := time.NewTicker(statsEvery)
	defer t.Stop()
	for {
		mem, disk := n.parts.rd.CacheBytes()
		n.parts.reg.SetCacheBytes(mem + disk)
		n.parts.reg.SetJobsHeld(n.parts.comp.HeldJobs())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops taking appends, flushes and commits what was collected
// (bounded by ctx), stops compaction and the reader, leaves the registry
// (the node is listed stopped) and closes the catalog, the pool and the
// cold tier. A job this node held is left to its lease: another node
// takes it when it expires.
func (n *Node) Close(ctx context.Context) error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	n.unbindMetrics()
	err := n.parts.seq.Close(ctx)
	n.stop()
	n.loops.Wait()
	err = errors.Join(err, n.parts.rd.Close())
	if lerr := n.parts.reg.Leave(ctx); lerr != nil && !errors.Is(lerr, registry.ErrFenced) {
		err = errors.Join(err, lerr)
	}
	if n.tables != nil {
		err = errors.Join(err, n.tables.Close()) // it reads the catalog
	}
	err = errors.Join(err, n.cat.Close())
	n.pool.Close()
	return errors.Join(err, n.cold.Close())
}

// published tells the tables, if any, that a compaction of stream was
// committed (compactor.Options.OnCommit).
func (n *Node) published(stream string) {
	if n.tables != nil {
		n.tables.Published(stream)
	}
}

// seqPart adapts the sequencer.
type seqPart struct{ s *sequencer.Sequencer }

func (p seqPart) Append(ctx context.Context, stream string, pr tiers.Producer, recs []tiers.Record) (uint64, bool, error) {
	res, err := p.s.Append(ctx, stream, pr, recs)
	return res.First, res.Duplicate, err
}

func (p seqPart) Fenced() error {
	if err := p.s.Err(); errors.Is(err, registry.ErrFenced) {
		return err
	}
	return nil
}

func (p seqPart) LastFlushError() error { return p.s.LastFlushError() }

func (p seqPart) Close(ctx context.Context) error { return p.s.Close(ctx) }

// readPart adapts the reader: a source becomes the placement local mode
// would name (memory hot, journal and disk cache warm, Parquet cold).
type readPart struct{ r *reader.Reader }

func (p readPart) Read(ctx context.Context, stream string, q tiers.Query) iter.Seq2[engine.Item, error] {
	return func(yield func(engine.Item, error) bool) {
		for it, err := range p.r.Read(ctx, stream, q) {
			if !yield(engine.Item{Record: it.Record, Tier: it.Source.Placement()}, err) {
				return
			}
		}
	}
}

func (p readPart) WaitFor(ctx context.Context, stream string, offset uint64) error {
	return p.r.WaitFor(ctx, stream, offset)
}

func (p readPart) CacheBytes() (int64, int64) {
	s := p.r.CacheStats()
	return s.MemBytes, s.DiskBytes
}

func (p readPart) Close() error { return p.r.Close() }

// compPart adapts the compactor.
type compPart struct{ c *compactor.Compactor }

func (p compPart) Run(ctx context.Context) error { return p.c.Run(ctx) }

func (p compPart) Work(ctx context.Context) (bool, error) { return p.c.Work(ctx) }

func (p compPart) HeldJobs() int { return len(p.c.Held()) }

// commitBy is how long a journal object may wait between its PUT and the
// end of its commit: half of gc_delay (garbage collection deletes objects
// no row references once older than gc_delay; the other half absorbs clock
// skew between the nodes and the store).
func commitBy(gcDelay time.Duration) time.Duration {
	if gcDelay <= 0 {
		gcDelay = compactor.DefaultGCDelay
	}
	return gcDelay / 2
}
