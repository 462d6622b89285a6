package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tierd/tierd/cluster/reader"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// pgErr wraps a failed PostgreSQL call: the catalog not answering is the
// shared storage being unavailable (503 with Retry-After), unless the
// caller's own context ended.
func pgErr(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cluster: %s: %w", what, err)
	}
	return fmt.Errorf("cluster: %s: %w: %w", what, tiers.ErrStorageUnavailable, err)
}

// journalRun is a run of a stream's journal ranges summed: a pseudo-segment
// of the listing.
type journalRun struct {
	base, last   uint64
	records      uint64
	bytes        int64
	minTS, maxTS int64
	// job is set when an open compaction job holds the run; cut is when
	// the planner created it.
	job bool
	cut time.Time
}

// journalRuns sums stream's live journal ranges into one run per open
// compaction job and one for the ranges no job holds yet, in offset order.
func (n *Node) journalRuns(ctx context.Context, q querier, stream string) ([]journalRun, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	rows, err := q.Query(ctx, `
SELECT min(r.first_offset), max(r.last_offset), sum(r.last_offset - r.first_offset + 1),
       sum(r.bytes), min(r.min_ts), max(r.max_ts), j.base IS NOT NULL, min(j.created_at)
FROM journal_ranges r
LEFT JOIN compaction_jobs j
  ON j.stream = r.stream AND r.first_offset BETWEEN j.base AND j.last_offset
WHERE r.stream = $1
GROUP BY j.base
ORDER BY 1`, stream)
	if err != nil {
		return nil, pgErr("list the journal ranges of "+stream, err)
	}
	var out []journalRun
	for rows.Next() {
		var base, last, recs, bytes, minTS, maxTS int64
		var job bool
		var cut *time.Time
		if err := rows.Scan(&base, &last, &recs, &bytes, &minTS, &maxTS, &job, &cut); err != nil {
			rows.Close()
			return nil, pgErr("list the journal ranges of "+stream, err)
		}
		r := journalRun{base: uint64(base), last: uint64(last), records: uint64(recs), bytes: bytes, minTS: minTS, maxTS: maxTS, job: job}
		if cut != nil {
			r.cut = *cut
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, pgErr("list the journal ranges of "+stream, err)
	}
	// Runs held by no job come last in offset order (the planner takes the
	// oldest), but several runs without a job can only be one group: the
	// SQL's GROUP BY already merged them.
	return out, nil
}

// Segments lists stream's segments in offset order: the catalog's (Parquet
// objects: cold; tombstoned ones included), then its journal ranges as
// pseudo-segments placed warm, one per open compaction job (sealed at the
// job's creation) and one Active for the ranges no job holds yet. An
// unknown stream is tiers.ErrStreamNotFound.
func (n *Node) Segments(ctx context.Context, stream string) ([]engine.SegmentInfo, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return nil, err
	}
	known := true
	if _, err := n.nextOffset(ctx, n.pool, stream); errors.Is(err, tiers.ErrStreamNotFound) {
		known = false
	} else if err != nil {
		return nil, err
	}
	metas, err := n.cat.Segments(ctx, stream)
	if errors.Is(err, tiers.ErrStreamNotFound) {
		if !known {
			return nil, err
		}
		metas, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	runs, err := n.journalRuns(ctx, n.pool, stream)
	if err != nil {
		return nil, err
	}
	out := make([]engine.SegmentInfo, 0, len(metas)+len(runs))
	var next uint64
	for _, m := range metas {
		out = append(out, n.Describe(m))
		next = m.Last + 1
	}
	for _, r := range runs {
		if r.last < next {
			// Compacted between the two reads: the catalog's segment
			// lists these offsets already.
			continue
		}
		si := engine.SegmentInfo{SegmentMeta: tiers.SegmentMeta{
			Stream: stream, Base: r.base, Last: r.last, Count: r.records, Bytes: r.bytes,
			MinTS: r.minTS, MaxTS: r.maxTS, Placements: tiers.Of(tiers.Warm),
		}}
		if r.job {
			si.SealedAt = r.cut
		} else {
			si.Active = true
		}
		out = append(out, si)
	}
	return out, nil
}

// streamNames is every stream the cluster knows: those written
// (cluster_streams) and those the catalog holds, ordered by name.
func (n *Node) streamNames(ctx context.Context) ([]string, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	rows, err := n.pool.Query(ctx, `SELECT stream FROM cluster_streams ORDER BY stream`)
	if err != nil {
		return nil, pgErr("list the streams", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, pgErr("list the streams", err)
	}
	cs, err := n.cat.Streams(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range cs {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Streams lists every stream, ordered by name, summed from Segments as the
// engine sums them, with NextOffset the sequencer's.
func (n *Node) Streams(ctx context.Context) ([]engine.StreamInfo, error) {
	names, err := n.streamNames(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]engine.StreamInfo, 0, len(names))
	for _, name := range names {
		segs, err := n.Segments(ctx, name)
		if errors.Is(err, tiers.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		info := engine.StreamInfo{Name: name, Tiers: map[tiers.Placement]engine.TierUsage{}}
		for i := range segs {
			s := &segs[i]
			if !s.Tombstoned.IsZero() {
				continue
			}
			info.Records += s.Count
			for _, p := range s.Placements.List() {
				u := info.Tiers[p]
				addUsage(&u, s, p)
				info.Tiers[p] = u
			}
		}
		if next, err := n.nextOffset(ctx, n.pool, name); err == nil {
			info.NextOffset = next
		} else if len(segs) > 0 {
			info.NextOffset = segs[len(segs)-1].Last + 1
		}
		out = append(out, info)
	}
	return out, nil
}

// addUsage counts segment s, held in tier p, into u as the engine's
// TierUsage.add does.
func addUsage(u *engine.TierUsage, s *engine.SegmentInfo, p tiers.Placement) {
	bytes := s.Bytes
	if p == tiers.Cold && s.ColdBytes > 0 {
		bytes = s.ColdBytes
	}
	sealed := s.SealedAt
	if s.Active {
		sealed = time.Time{}
	}
	if u.Segments == 0 || s.MinTS < u.OldestTS {
		u.OldestTS = s.MinTS
	}
	if u.Segments == 0 || s.MaxTS > u.NewestTS {
		u.NewestTS = s.MaxTS
	}
	if !sealed.IsZero() && (u.OldestSealedAt.IsZero() || sealed.Before(u.OldestSealedAt)) {
		u.OldestSealedAt = sealed
	}
	u.Segments++
	u.Bytes += bytes
}

// mergeUsage adds o into u.
func mergeUsage(u *engine.TierUsage, o engine.TierUsage) {
	if o.Segments == 0 {
		return
	}
	if u.Segments == 0 || o.OldestTS < u.OldestTS {
		u.OldestTS = o.OldestTS
	}
	if u.Segments == 0 || o.NewestTS > u.NewestTS {
		u.NewestTS = o.NewestTS
	}
	if !o.OldestSealedAt.IsZero() && (u.OldestSealedAt.IsZero() || o.OldestSealedAt.Before(u.OldestSealedAt)) {
		u.OldestSealedAt = o.OldestSealedAt
	}
	u.Segments += o.Segments
	u.Bytes += o.Bytes
}

// Tiers summarises each tier across every stream: hot is this node's
// memory cache (no segment lives only there), warm the shared journal
// (BudgetUsed: this node's disk cache, bounded by cluster.cache_bytes),
// cold the Parquet segments.
func (n *Node) Tiers(ctx context.Context) (map[tiers.Placement]engine.TierStatus, error) {
	out := map[tiers.Placement]engine.TierStatus{tiers.Hot: {}, tiers.Warm: {}, tiers.Cold: {}}
	infos, err := n.Streams(ctx)
	if err != nil {
		return nil, err
	}
	for i := range infos {
		for p, u := range infos[i].Tiers {
			t := out[p]
			t.Streams++
			mergeUsage(&t.TierUsage, u)
			out[p] = t
		}
	}
	mem, disk := n.parts.rd.CacheBytes()
	h := out[tiers.Hot]
	h.BudgetBytes, h.BudgetUsed = n.memBudget(), mem
	out[tiers.Hot] = h
	w := out[tiers.Warm]
	w.BudgetBytes, w.BudgetUsed = n.diskBudget(), disk
	out[tiers.Warm] = w
	return out, nil
}

// memBudget and diskBudget are the reader's cache bounds, its defaults
// when the options leave them zero.
func (n *Node) memBudget() int64 {
	if n.opts.MemBytes > 0 {
		return n.opts.MemBytes
	}
	return reader.DefaultMemBytes
}

func (n *Node) diskBudget() int64 {
	if n.opts.CacheBytes > 0 {
		return n.opts.CacheBytes
	}
	return reader.DefaultCacheBytes
}
