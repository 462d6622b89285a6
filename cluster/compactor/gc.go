package compactor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/tiers"
)

// gcBatch bounds the rows or keys one step of garbage collection holds;
// the rest waits for the next pass.
var gcBatch = 1000

// maxOrphanCandidates bounds the orphan candidates (old keys without a
// row) one pass collects from a listing before it claims and deletes
// them; the rest waits for the next pass. Variables only for tests.
var maxOrphanCandidates = 10000

// CollectReleased deletes the journal objects released (no live range
// left) longer than GCDelay ago: the object first, then its row. A crash
// between leaves a row whose object is gone; the next pass deletes the
// missing object again (no error) and then the row. No range is ever
// added to a released object, so nothing reads it any more. It returns
// how many objects it deleted.
func (c *Compactor) CollectReleased(ctx context.Context) (int, error) {
	deleted := 0
	for {
		keys, err := c.strings(ctx, `
			SELECT key FROM journal_objects
			WHERE live_ranges = 0 AND released_at < now() - make_interval(secs => $1)
			ORDER BY released_at, key LIMIT $2`, c.opts.GCDelay.Seconds(), gcBatch)
		if err != nil {
			return deleted, fmt.Errorf("compactor: gc: %w", err)
		}
		for _, k := range keys {
			if err := c.opts.Bucket.Delete(ctx, k); err != nil {
				return deleted, fmt.Errorf("compactor: gc: delete %s: %w", k, err)
			}
			if err := c.step(StepGCAfterDelete); err != nil {
				return deleted, err
			}
			sctx, cancel := c.bounded(ctx)
			_, err := c.opts.Pool.Exec(sctx, `DELETE FROM journal_objects WHERE key = $1 AND live_ranges = 0`, k)
			cancel()
			if err != nil {
				return deleted, fmt.Errorf("compactor: gc: forget %s: %w", k, err)
			}
			deleted++
			c.metrics.deleted.WithLabelValues(kindJournal).Inc()
		}
		if len(keys) < gcBatch {
			return deleted, nil
		}
	}
}

// CollectOrphans lists the bucket for objects nothing refers to and
// deletes those older than GCDelay: journal objects without a
// journal_objects row (the write path crashed between its PUT and its
// commit) and Parquet objects that no catalog segment and no open job
// names (see collectParquet for when one is safe to delete). It returns
// how many it deleted.
func (c *Compactor) CollectOrphans(ctx context.Context) (int, error) {
	n, err := c.collectJournal(ctx)
	if err != nil {
		return n, err
	}
	m, err := c.collectParquet(ctx)
	return n + m, err
}

// collectJournal deletes journal objects older than GCDelay that have no
// row. Age alone does not prove a crash: a commit may still be running
// (a stalled PostgreSQL, clocks apart, nodes with different gc_delay), so
// each candidate is first claimed in journal_objects by inserting a
// released row for its key, ON CONFLICT DO NOTHING. A commit in flight
// holds its own row's key: the claim waits for it and, once it commits,
// finds the key taken and leaves the object alone. A commit after the
// claim fails on the key (unique violation: nothing written) instead of
// referencing a deleted object. Only claimed keys are deleted; their rows
// go with CollectReleased after another gc_delay.
func (c *Compactor) collectJournal(ctx context.Context) (int, error) {
	cutoff := time.Now().Add(-c.opts.GCDelay)
	// Candidates are old keys without a row, filtered a page at a time,
	// so that a backlog of old objects still referenced (a long
	// segment.max_age, compaction behind) does not fill the bound and
	// hide the orphans listed after them.
	var old, page []string
	filter := func() error {
		if len(page) == 0 {
			return nil
		}
		known, err := c.strings(ctx, `SELECT key FROM journal_objects WHERE key = ANY($1)`, page)
		if err != nil {
			return fmt.Errorf("compactor: gc: %w", err)
		}
		has := make(map[string]bool, len(known))
		for _, k := range known {
			has[k] = true
		}
		for _, k := range page {
			if !has[k] {
				old = append(old, k)
			}
		}
		page = page[:0]
		return nil
	}
	for a, err := range c.opts.Bucket.List(ctx, JournalPrefix) {
		if err != nil {
			return 0, fmt.Errorf("compactor: gc: list %s: %w", JournalPrefix, err)
		}
		if !a.ModTime.Before(cutoff) {
			continue
		}
		page = append(page, a.Key)
		if len(page) == gcBatch {
			if err := filter(); err != nil {
				return 0, err
			}
			if len(old) >= maxOrphanCandidates {
				break
			}
		}
	}
	if err := filter(); err != nil {
		return 0, err
	}
	deleted := 0
	for len(old) > 0 {
		batch := old[:min(len(old), gcBatch)]
		old = old[len(batch):]
		claimed, err := c.strings(ctx, `
			INSERT INTO journal_objects (key, node_id, epoch, size, live_ranges, released_at)
			SELECT k, $2, $3, 0, 0, now() FROM unnest($1::text[]) AS t(k)
			ON CONFLICT (key) DO NOTHING
			RETURNING key`, batch, "gc:"+c.opts.NodeID, int64(c.opts.Epoch))
		if err != nil {
			return deleted, fmt.Errorf("compactor: gc: claim orphans: %w", err)
		}
		for _, k := range claimed {
			if err := c.opts.Bucket.Delete(ctx, k); err != nil {
				return deleted, fmt.Errorf("compactor: gc: delete %s: %w", k, err)
			}
			c.log.Info("deleted a journal object no commit references", "key", k)
			deleted++
			c.metrics.deleted.WithLabelValues(kindJournalOrphan).Inc()
		}
	}
	return deleted, nil
}

// collectParquet deletes Parquet objects older than GCDelay that neither
// a catalog segment nor an open job names, when their records are
// accounted for elsewhere: below the stream's retention watermark, or
// held by other segments. A job retaken after a crash writes the same key
// and commits it, so an orphan is rare (a bug, or a retention delete
// interrupted); one whose records are nowhere else is kept and logged: it
// is what a catalog rebuild would need.
func (c *Compactor) collectParquet(ctx context.Context) (int, error) {
	cutoff := time.Now().Add(-c.opts.GCDelay)
	var old []cold.Object
	for o, err := range c.opts.Cold.Objects(ctx, "") {
		if err != nil {
			return 0, fmt.Errorf("compactor: gc: %w", err)
		}
		if o.Segment && o.ModTime.Before(cutoff) {
			old = append(old, o)
			if len(old) == maxOrphanCandidates {
				break
			}
		}
	}
	deleted := 0
	for _, o := range old {
		// The job first, then the catalog: a job committed between the
		// two reads is seen as its segment.
		var open bool
		sctx, cancel := c.bounded(ctx)
		err := c.opts.Pool.QueryRow(sctx, `SELECT EXISTS (SELECT 1 FROM compaction_jobs WHERE stream = $1 AND base <= $2 AND last_offset >= $3)`,
			o.Stream, int64(o.Base), int64(o.Last)).Scan(&open)
		cancel()
		if err != nil {
			return deleted, fmt.Errorf("compactor: gc: %w", err)
		}
		if open {
			continue
		}
		segs, retained, err := c.opts.Catalog.Locate(ctx, o.Stream, o.Base, o.Last)
		if errors.Is(err, tiers.ErrStreamNotFound) {
			c.log.Warn("kept a Parquet object of a stream the catalog does not know", "key", o.Key)
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("compactor: gc: locate %s [%d, %d]: %w", o.Stream, o.Base, o.Last, err)
		}
		if referenced(o, segs) {
			continue
		}
		if o.Last >= retained && !covered(o, segs) {
			c.log.Warn("kept an unreferenced Parquet object: no segment holds its records", "key", o.Key)
			continue
		}
		m, ok := metaOf(o)
		if !ok {
			continue
		}
		if err := c.opts.Cold.Delete(ctx, m); err != nil {
			return deleted, fmt.Errorf("compactor: gc: %w", err)
		}
		c.log.Info("deleted a Parquet object no segment references", "key", o.Key)
		deleted++
		c.metrics.deleted.WithLabelValues(kindParquetOrphan).Inc()
	}
	return deleted, nil
}

// referenced reports whether a catalogued segment lives in o.
func referenced(o cold.Object, segs []tiers.SegmentMeta) bool {
	for i := range segs {
		s := &segs[i]
		if s.Base == o.Base && s.Last == o.Last && s.Placements.Has(tiers.Cold) && cold.IsObjectKeyOf(o.Key, *s) {
			return true
		}
	}
	return false
}

// covered reports whether segments other than o's hold every offset of o,
// from offsets at or above the retention watermark (those below it were
// deleted on purpose).
func covered(o cold.Object, segs []tiers.SegmentMeta) bool {
	next := o.Base
	for _, s := range segs {
		if s.Base > next {
			return false
		}
		if s.Last >= next {
			if s.Last >= o.Last {
				return true
			}
			next = s.Last + 1
		}
	}
	return false
}

// metaOf is enough of a segment's metadata for cold.Tier.Delete to name
// o's key: the stream, the offsets and a ts on the key's day.
func metaOf(o cold.Object) (tiers.SegmentMeta, bool) {
	m, ok := cold.KeySegment(o.Key)
	return m, ok && cold.IsObjectKeyOf(o.Key, m)
}

// strings runs a query of one text column, within PGTimeout.
func (c *Compactor) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	rows, err := c.opts.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
