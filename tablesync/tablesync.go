// Package tablesync keeps every stream's Apache Iceberg table (package
// tables) in step with the catalog's cold segments while tierd runs: the
// publishing loop. The mover tells it when a cold placement was committed
// (Published, which never blocks) and asks it to take segments out of a
// table before their objects are deleted (Remove); every
// tables.commit_interval the loop syncs each stream marked since, so one
// snapshot covers the placements of an interval; at start it syncs every
// stream, which repairs what a crash between a cold commit and its snapshot
// left. A failed sync is logged, counted and retried at the next interval.
// The HTTP API's table routes go through it too (Describe, Sync, SyncAll),
// so a stream's table is changed by one call at a time in this process.
package tablesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/internal/keylock"
	"github.com/tierd/tierd/internal/promreg"
	"github.com/tierd/tierd/tiers"
)

// Errors of the loop and of the Tables under it (an adapter of tables
// maps its own sentinels to these), checked with errors.Is.
var (
	// ErrNoTable: the stream has no table yet (nothing cold, or not
	// published yet).
	ErrNoTable = errors.New("tables: the stream has no table yet")
	// ErrDisabled: tierd runs without tables (tables.enabled false, or no
	// cold store).
	ErrDisabled = errors.New("tables: disabled (tables.enabled is false, or there is no cold store)")
	// ErrUnavailable: the Iceberg catalog or the table's metadata could not
	// be reached or committed now; retry later.
	ErrUnavailable = errors.New("tables: the Iceberg catalog or metadata store is unavailable")
)

// MetadataPrefix is where the tables' metadata lives in the cold store,
// beside the segments (the warehouse <cold root>/_iceberg): objects under
// it are no segments, and verify does not report them as orphans.
const MetadataPrefix = "_iceberg/"

// NotASegment reports whether an object of the cold store is the tables'
// metadata (under MetadataPrefix) or an empty directory marker such as
// iceberg-go's S3 IO writes on its way there (a key ending in "/", or the
// store's prefix itself, listed as ""): objects verify and the catalog
// rebuild pass by, neither segments nor orphans.
func NotASegment(key string, size int64) bool {
	return strings.HasPrefix(key, MetadataPrefix) || (size == 0 && (key == "" || strings.HasSuffix(key, "/")))
}

// Tables is what the loop needs of the Iceberg tables (tables.Publisher,
// adapted in internal/boot). Sync makes a stream's table exactly its
// retained cold segments in at most one snapshot (idempotent, safe after
// any crash); Remove commits a snapshot without segs; Describe and Files
// answer ErrNoTable for a stream without a table.
type Tables interface {
	Sync(ctx context.Context, stream string) (api.TableSync, error)
	Remove(ctx context.Context, stream string, segs []tiers.SegmentMeta) error
	Describe(ctx context.Context, stream string) (api.Table, error)
	// Files lists the data files of stream's table: object keys under
	// the cold store's root, full locations for files outside it.
	Files(ctx context.Context, stream string) ([]string, error)
}

// Options configures a Loop.
type Options struct {
	Tables Tables
	// Streams lists every stream, for the sync at start and SyncAll.
	Streams func(ctx context.Context) ([]string, error)
	// Interval is tables.commit_interval: how often the streams marked by
	// Published are synced. Default DefaultInterval.
	Interval time.Duration
	// SyncTimeout bounds one stream's sync; default DefaultSyncTimeout.
	SyncTimeout time.Duration
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// The defaults of Options, in one place.
const (
	DefaultInterval    = 10 * time.Second
	DefaultSyncTimeout = 2 * time.Minute
)

// Loop is the publishing loop. It is safe for concurrent use.
type Loop struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	locks   keylock.Map[string] // one table call per stream at a time in this process

	mu struct {
		sync.Mutex
		dirty map[string]struct{}
	}
	stop context.CancelFunc
	done chan struct{}
}

// New returns a Loop over opts.Tables; Start starts it.
func New(opts Options) *Loop {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = DefaultSyncTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Loop{opts: opts, log: opts.Logger, metrics: newMetrics(opts.Registerer)}
	l.mu.dirty = map[string]struct{}{}
	return l
}

// Start runs the loop in the background until Close: first a sync of every
// stream, then every Interval a sync of the streams Published marked.
func (l *Loop) Start() {
	ctx, stop := context.WithCancel(context.Background())
	l.stop, l.done = stop, make(chan struct{})
	go func() {
		defer close(l.done)
		l.run(ctx)
	}()
}

// Close stops the loop, waits for a sync under way to end (it is
// cancelled) and closes Tables when it is an io.Closer. Streams still
// marked are synced at the next start.
func (l *Loop) Close() error {
	if l.stop != nil {
		l.stop()
		<-l.done
		l.stop = nil
	}
	if c, ok := l.opts.Tables.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (l *Loop) run(ctx context.Context) {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	listed := false
	for {
		if !listed {
			// Every stream once: what a crash between a cold commit and its
			// snapshot left is repaired here. Until the listing works, it is
			// retried each interval.
			listed = l.markAll(ctx)
		}
		l.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// markAll marks every stream for the next round; false when they could
// not be listed.
func (l *Loop) markAll(ctx context.Context) bool {
	names, err := l.opts.Streams(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("tables: listing the streams to sync failed; retrying at the next interval", "err", err)
			l.metrics.syncs.WithLabelValues(resultError).Inc()
		}
		return false
	}
	for _, s := range names {
		l.Published(s)
	}
	return true
}

// round syncs every marked stream once, handed out in name order to
// roundWorkers goroutines: a Sync with nothing to do is a few round trips to
// the catalog and the store, so at start, when every stream is marked, one
// at a time would make a restart with many streams wait on them in turn. A
// stream whose sync fails stays marked for the next round, and so do those
// not handed out when ctx ends or the failpoint fires.
func (l *Loop) round(ctx context.Context) {
	l.mu.Lock()
	streams := make([]string, 0, len(l.mu.dirty))
	for s := range l.mu.dirty {
		streams = append(streams, s)
	}
	clear(l.mu.dirty)
	l.mu.Unlock()
	slices.Sort(streams)
	next := make(chan string)
	var wg sync.WaitGroup
	for range min(roundWorkers, len(streams)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				if _, err := l.Sync(ctx, s); err != nil {
					l.mark(s)
					if ctx.Err() == nil {
						l.log.Warn("tables: sync failed; retrying at the next interval", "stream", s, "err", err)
					}
				}
			}
		}()
	}
feed:
	for i, s := range streams {
		if err := failpoint.Inject(failpoint.TablesBeforeSync); err != nil {
			l.mark(streams[i:]...)
			break
		}
		select {
		case next <- s:
		case <-ctx.Done():
			l.mark(streams[i:]...)
			break feed
		}
	}
	close(next)
	wg.Wait()
	l.metrics.dirty.Set(float64(l.dirtyLen()))
}

// roundWorkers is how many streams a round syncs at once: as many as the
// SQL catalog's connection pool holds (tables.openCatalog).
const roundWorkers = 4

// Published marks stream for the next round: a cold placement of it was
// committed. It never blocks on I/O (mover.Tables).
func (l *Loop) Published(stream string) { l.mark(stream) }

func (l *Loop) mark(streams ...string) {
	l.mu.Lock()
	for _, s := range streams {
		l.mu.dirty[s] = struct{}{}
	}
	n := len(l.mu.dirty)
	l.mu.Unlock()
	l.metrics.dirty.Set(float64(n))
}

func (l *Loop) dirtyLen() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.mu.dirty)
}

// Sync makes stream's table exactly its retained cold segments now, and
// counts the outcome. Sync, Remove and Describe of one stream run one at a
// time.
func (l *Loop) Sync(ctx context.Context, stream string) (api.TableSync, error) {
	defer l.locks.Lock(stream)()
	ctx, cancel := context.WithTimeout(ctx, l.opts.SyncTimeout)
	defer cancel()
	res, err := l.opts.Tables.Sync(ctx, stream)
	if err != nil {
		l.metrics.syncs.WithLabelValues(resultError).Inc()
		return api.TableSync{Stream: stream}, fmt.Errorf("tables: sync %s: %w", stream, err)
	}
	l.metrics.syncs.WithLabelValues(resultOK).Inc()
	l.metrics.added.Add(float64(res.Added))
	l.metrics.removed.Add(float64(res.Removed))
	if len(res.Skipped) > 0 {
		l.log.Warn("tables: cold objects not published (Parquet format 1: rewrite them to publish them)", "stream", stream, "skipped", len(res.Skipped), "first", res.Skipped[0])
	}
	res.Stream = stream
	return res, nil
}

// SyncAll syncs every stream (Streams), one after another, and reports
// each; a stream's failure is in its TableSync, and the others are synced
// regardless. The error is the listing's.
func (l *Loop) SyncAll(ctx context.Context) (api.TableSyncReport, error) {
	names, err := l.opts.Streams(ctx)
	if err != nil {
		return api.TableSyncReport{}, fmt.Errorf("tables: list the streams to sync: %w", err)
	}
	slices.Sort(names)
	rep := api.TableSyncReport{Streams: make([]api.TableSync, 0, len(names))}
	for _, s := range names {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		res, err := l.Sync(ctx, s)
		if err != nil {
			res = api.TableSync{Stream: s, Error: &api.Error{Code: ErrorCode(err), Message: err.Error()}}
			rep.Failed++
		}
		rep.Streams = append(rep.Streams, res)
	}
	return rep, nil
}

// Remove takes segs (all of stream) out of stream's table in a new
// snapshot (mover.Tables): the mover deletes their objects only after it
// returned nil.
func (l *Loop) Remove(ctx context.Context, stream string, segs []tiers.SegmentMeta) error {
	defer l.locks.Lock(stream)()
	ctx, cancel := context.WithTimeout(ctx, l.opts.SyncTimeout)
	defer cancel()
	if err := l.opts.Tables.Remove(ctx, stream, segs); err != nil {
		l.metrics.removes.WithLabelValues(resultError).Inc()
		return fmt.Errorf("tables: remove %d segments from the table of %s: %w", len(segs), stream, err)
	}
	l.metrics.removes.WithLabelValues(resultOK).Inc()
	return nil
}

// Enabled reports whether l is a Loop: false for the nil one of a
// backend without tables.
func (l *Loop) Enabled() bool { return l != nil }

// Table is Describe, and ErrDisabled on a nil Loop: the server's
// TablesBackend of a backend that may run without tables.
func (l *Loop) Table(ctx context.Context, stream string) (api.Table, error) {
	if l == nil {
		return api.Table{}, ErrDisabled
	}
	return l.Describe(ctx, stream)
}

// SyncTables syncs stream (every stream when "") and reports it: one
// stream's failure is the error; SyncAll's report for every stream.
// ErrDisabled on a nil Loop.
func (l *Loop) SyncTables(ctx context.Context, stream string) (api.TableSyncReport, error) {
	if l == nil {
		return api.TableSyncReport{}, ErrDisabled
	}
	if stream == "" {
		return l.SyncAll(ctx)
	}
	res, err := l.Sync(ctx, stream)
	if err != nil {
		return api.TableSyncReport{}, err
	}
	return api.TableSyncReport{Streams: []api.TableSync{res}}, nil
}

// Describe is stream's table as its catalog has it now; ErrNoTable when
// there is none yet.
func (l *Loop) Describe(ctx context.Context, stream string) (api.Table, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.SyncTimeout)
	defer cancel()
	t, err := l.opts.Tables.Describe(ctx, stream)
	if err != nil {
		return api.Table{}, err
	}
	t.Stream = stream
	return t, nil
}

// Files lists the data files of stream's table (Tables.Files), for
// verify; ErrDisabled on a nil Loop, ErrNoTable for a stream without a
// table.
func (l *Loop) Files(ctx context.Context, stream string) ([]string, error) {
	if l == nil {
		return nil, ErrDisabled
	}
	defer l.locks.Lock(stream)()
	ctx, cancel := context.WithTimeout(ctx, l.opts.SyncTimeout)
	defer cancel()
	return l.opts.Tables.Files(ctx, stream)
}

// ErrorCode is the API error code of a table operation's failure.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrNoTable):
		return api.CodeNoTable
	case errors.Is(err, ErrDisabled):
		return api.CodeTablesDisabled
	case errors.Is(err, tiers.ErrStreamNotFound):
		return api.CodeStreamNotFound
	case errors.Is(err, context.Canceled):
		return api.CodeCanceled
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return api.CodeTablesUnavailable
	}
	return api.CodeInternal
}

// metrics are the loop's series (docs/metrics.md).
type metrics struct {
	syncs, removes *prometheus.CounterVec
	added, removed prometheus.Counter
	dirty          prometheus.Gauge
}

const (
	resultOK    = "ok"
	resultError = "error"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncs: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_tables_syncs_total",
			Help: "Syncs of a stream's Iceberg table with its cold segments, by result (ok, error: retried at the next tables.commit_interval).",
		}, []string{"result"})),
		removes: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_tables_removes_total",
			Help: "Snapshots removing segments deleted by retention from their table, by result (ok, error: the deletion waits and is retried).",
		}, []string{"result"})),
		added: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_tables_files_added_total",
			Help: "Data files (cold segments) syncs added to tables.",
		})),
		removed: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_tables_files_removed_total",
			Help: "Data files syncs removed from tables (segments no longer retained).",
		})),
		dirty: promreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierd_tables_pending_streams",
			Help: "Streams with cold placements committed and not yet synced to their table.",
		})),
	}
	for _, r := range []string{resultOK, resultError} {
		m.syncs.WithLabelValues(r)
		m.removes.WithLabelValues(r)
	}
	return m
}
