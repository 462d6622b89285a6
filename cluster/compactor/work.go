package compactor

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/tierd/tierd/tiers"
)

// Work claims one job whose lease is empty or expired and runs it to its
// commit. ok is false, with no error, when no job was claimable. A job
// that fails is left open with its error (compaction_jobs.last_error) and
// may be claimed again after RetryDelay; one stopped by a failpoint, or by
// ctx, is left as a crash leaves it, for its lease to expire.
func (c *Compactor) Work(ctx context.Context) (ok bool, err error) {
	j, ok, err := c.claim(ctx)
	if err != nil || !ok {
		return false, err
	}
	c.hold(j)
	defer c.release(j)
	c.metrics.jobs.WithLabelValues(resClaimed).Inc()

	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		c.renew(jctx, j, cancel)
	}()
	err = c.run(jctx, j)
	cancel(nil)
	<-renewed
	if err == nil {
		return true, nil
	}
	if cause := context.Cause(jctx); errors.Is(cause, ErrLostLease) && !errors.Is(err, ErrLostLease) {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	switch {
	case errors.Is(err, errStopped) || ctx.Err() != nil:
		// As a crash would: nothing more is written.
		c.metrics.jobs.WithLabelValues(resFailed).Inc()
	case errors.Is(err, ErrLostLease):
		c.metrics.jobs.WithLabelValues(resLost).Inc()
		c.log.Warn("compaction job lost its lease", "stream", j.Stream, "base", j.Base, "err", err)
	default:
		c.metrics.jobs.WithLabelValues(resFailed).Inc()
		c.log.Warn("compaction job failed", "stream", j.Stream, "base", j.Base, "last", j.Last, "attempt", j.Attempts, "err", err)
		c.giveUp(ctx, j, err)
	}
	return true, fmt.Errorf("compactor: job %s [%d, %d]: %w", j.Stream, j.Base, j.Last, err)
}

// claim takes the oldest job whose lease is empty or expired.
func (c *Compactor) claim(ctx context.Context) (Job, bool, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	var j Job
	var base, last int64
	err := c.opts.Pool.QueryRow(ctx, `
		UPDATE compaction_jobs j
		SET owner = $1, owner_epoch = $2, lease_until = now() + make_interval(secs => $3), attempts = j.attempts + 1
		FROM (SELECT stream, base FROM compaction_jobs
		      WHERE lease_until IS NULL OR lease_until < now()
		      ORDER BY created_at, stream LIMIT 1
		      FOR UPDATE SKIP LOCKED) AS free
		WHERE j.stream = free.stream AND j.base = free.base
		RETURNING j.stream, j.base, j.last_offset, j.created_at, j.attempts`,
		c.opts.NodeID, int64(c.opts.Epoch), c.opts.Lease.Seconds()).Scan(&j.Stream, &base, &last, &j.CreatedAt, &j.Attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, false, nil
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("compactor: claim: %w", err)
	}
	j.Base, j.Last = uint64(base), uint64(last)
	return j, true, nil
}

// renew extends the job's lease every Lease/3 until ctx is done; when the
// lease is found gone it cancels the job with ErrLostLease.
func (c *Compactor) renew(ctx context.Context, j Job, cancel context.CancelCauseFunc) {
	t := time.NewTicker(c.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, scancel := c.bounded(ctx)
		tag, err := c.opts.Pool.Exec(sctx, `
			UPDATE compaction_jobs SET lease_until = now() + make_interval(secs => $5)
			WHERE stream = $1 AND base = $2 AND owner = $3 AND owner_epoch = $4 AND lease_until > now()`,
			j.Stream, int64(j.Base), c.opts.NodeID, int64(c.opts.Epoch), c.opts.Lease.Seconds())
		scancel()
		switch {
		case err != nil:
			// PostgreSQL unreachable: keep trying; the commit checks the
			// lease anyway.
			if ctx.Err() == nil {
				c.log.Warn("compaction lease renewal failed", "stream", j.Stream, "base", j.Base, "err", err)
			}
		case tag.RowsAffected() == 0:
			cancel(ErrLostLease)
			return
		}
	}
}

// giveUp records a failed job's error and lets it be claimed again after
// a delay, if this node still owns it: RetryDelay, doubled with each
// attempt up to 64 times, so a job that cannot succeed (a damaged block)
// costs little while it waits for an operator.
func (c *Compactor) giveUp(ctx context.Context, j Job, cause error) {
	delay := c.opts.RetryDelay << min(max(j.Attempts-1, 0), 6)
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	msg := cause.Error()
	if len(msg) > 4096 {
		msg = msg[:4096]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	_, err := c.opts.Pool.Exec(ctx, `
		UPDATE compaction_jobs SET last_error = $5, lease_until = now() + make_interval(secs => $6)
		WHERE stream = $1 AND base = $2 AND owner = $3 AND owner_epoch = $4`,
		j.Stream, int64(j.Base), c.opts.NodeID, int64(c.opts.Epoch), msg, delay.Seconds())
	if err != nil && ctx.Err() == nil {
		c.log.Warn("compactor: recording a job's failure", "stream", j.Stream, "base", j.Base, "err", err)
	}
}

// run builds, uploads and commits the job's segments: one per run of
// same-day records (usually one), each at its deterministic key, all
// committed in the job's one transaction.
func (c *Compactor) run(ctx context.Context, j Job) error {
	if err := c.step(StepAfterClaim); err != nil {
		return err
	}
	b, err := c.build(ctx, j)
	if err != nil {
		return err
	}
	defer b.close()
	var size int64
	for i := range b.pieces {
		p := &b.pieces[i]
		n, err := c.opts.Cold.Upload(ctx, p.meta, b.records(ctx, p))
		if err != nil {
			return fmt.Errorf("upload [%d, %d]: %w", p.meta.Base, p.meta.Last, err)
		}
		p.meta.ColdBytes = n
		size += n
	}
	if err := c.step(StepAfterUpload); err != nil {
		return err
	}
	if err := c.commit(ctx, j, b); err != nil {
		return err
	}
	if c.opts.OnCommit != nil {
		c.opts.OnCommit(j.Stream)
	}
	c.metrics.jobs.WithLabelValues(resCommitted).Inc()
	for _, p := range b.pieces {
		c.metrics.bytes.Add(float64(p.meta.Bytes))
		c.metrics.records.Add(float64(p.meta.Count))
	}
	c.log.Info("segment compacted", "stream", j.Stream, "base", j.Base, "last", j.Last, "ranges", len(b.ranges),
		"segments", len(b.pieces), "cold_bytes", size)
	return c.step(StepAfterCommit)
}

// commit is the job's one transaction: still the owner, the segment put,
// the ranges deleted, their objects' live ranges counted down (released
// at 0), the job deleted.
func (c *Compactor) commit(ctx context.Context, j Job, b *built) error {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	return pgx.BeginFunc(ctx, c.opts.Pool, func(tx pgx.Tx) error {
		// The planner reads a stream's ranges under this row's lock: a
		// job is never planned over ranges being released here.
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM cluster_streams WHERE stream = $1 FOR SHARE`, j.Stream).Scan(&one); err != nil {
			return fmt.Errorf("commit: lock stream: %w", err)
		}
		var owner *string
		var epoch *int64
		var live bool
		err := tx.QueryRow(ctx, `
			SELECT owner, owner_epoch, coalesce(lease_until > now(), false) FROM compaction_jobs
			WHERE stream = $1 AND base = $2 FOR UPDATE`, j.Stream, int64(j.Base)).Scan(&owner, &epoch, &live)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: the job is gone", ErrLostLease)
		}
		if err != nil {
			return fmt.Errorf("commit: job: %w", err)
		}
		if owner == nil || *owner != c.opts.NodeID || epoch == nil || *epoch != int64(c.opts.Epoch) || !live {
			return fmt.Errorf("%w: the job is %s's (epoch %v), lease live %v", ErrLostLease, deref(owner), deref(epoch), live)
		}
		for _, p := range b.pieces {
			if err := c.opts.Catalog.PutSegmentTx(ctx, tx, p.meta); err != nil {
				return fmt.Errorf("commit: put segment [%d, %d]: %w", p.meta.Base, p.meta.Last, err)
			}
		}
		rows, err := tx.Query(ctx, `
			WITH gone AS (
				DELETE FROM journal_ranges WHERE stream = $1 AND first_offset BETWEEN $2 AND $3
				RETURNING object_key)
			SELECT object_key, count(*)::int FROM gone GROUP BY object_key ORDER BY object_key`,
			j.Stream, int64(j.Base), int64(j.Last))
		if err != nil {
			return fmt.Errorf("commit: delete ranges: %w", err)
		}
		var keys []string
		var counts []int32
		total := 0
		for rows.Next() {
			var k string
			var n int32
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return fmt.Errorf("commit: delete ranges: %w", err)
			}
			keys, counts, total = append(keys, k), append(counts, n), total+int(n)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("commit: delete ranges: %w", err)
		}
		if total != len(b.ranges) {
			return fmt.Errorf("commit: %d journal ranges in [%d, %d], the segment was built from %d", total, j.Base, j.Last, len(b.ranges))
		}
		// Lock the objects in key order: two commits sharing objects
		// wait for each other instead of deadlocking.
		if _, err := tx.Exec(ctx, `SELECT key FROM journal_objects WHERE key = ANY($1) ORDER BY key FOR NO KEY UPDATE`, keys); err != nil {
			return fmt.Errorf("commit: lock objects: %w", err)
		}
		tag, err := tx.Exec(ctx, `
			UPDATE journal_objects o
			SET live_ranges = o.live_ranges - d.n,
			    released_at = CASE WHEN o.live_ranges - d.n = 0 THEN now() ELSE o.released_at END
			FROM unnest($1::text[], $2::int[]) AS d(key, n)
			WHERE o.key = d.key`, keys, counts)
		if err != nil {
			return fmt.Errorf("commit: release objects: %w", err)
		}
		if int(tag.RowsAffected()) != len(keys) {
			return fmt.Errorf("commit: %d of %d journal objects have a row", tag.RowsAffected(), len(keys))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM compaction_jobs WHERE stream = $1 AND base = $2`, j.Stream, int64(j.Base)); err != nil {
			return fmt.Errorf("commit: delete job: %w", err)
		}
		return c.step(StepBeforeCommit)
	})
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// segmentMeta is a segment of a job before its offsets, digest and ts
// range are known.
func segmentMeta(j Job) tiers.SegmentMeta {
	return tiers.SegmentMeta{
		Stream:     j.Stream,
		Base:       j.Base,
		Last:       j.Last,
		Count:      j.Last - j.Base + 1,
		SealedAt:   j.CreatedAt.UTC(),
		Placements: tiers.Of(tiers.Cold),
	}
}

// JobStatus is an open job as the cluster sees it, for status and explain.
type JobStatus struct {
	Job
	// Owner and OwnerEpoch are the node that claimed it last ("" and 0
	// before the first claim); it holds the job while LeaseUntil is in
	// the future.
	Owner      string
	OwnerEpoch uint64
	LeaseUntil time.Time
	// LastError is the last failed attempt's error, "" when none failed.
	LastError string
}

// Jobs lists the open compaction jobs of every node, by stream.
func (c *Compactor) Jobs(ctx context.Context) ([]JobStatus, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	rows, err := c.opts.Pool.Query(ctx, `
		SELECT stream, base, last_offset, created_at, attempts, coalesce(owner, ''), coalesce(owner_epoch, 0),
		       coalesce(lease_until, 'epoch'::timestamptz), last_error
		FROM compaction_jobs ORDER BY stream`)
	if err != nil {
		return nil, fmt.Errorf("compactor: jobs: %w", err)
	}
	defer rows.Close()
	var out []JobStatus
	for rows.Next() {
		var s JobStatus
		var base, last, epoch int64
		if err := rows.Scan(&s.Stream, &base, &last, &s.CreatedAt, &s.Attempts, &s.Owner, &epoch, &s.LeaseUntil, &s.LastError); err != nil {
			return nil, fmt.Errorf("compactor: jobs: %w", err)
		}
		s.Base, s.Last, s.OwnerEpoch = uint64(base), uint64(last), uint64(epoch)
		if s.Owner == "" {
			s.LeaseUntil = time.Time{}
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compactor: jobs: %w", err)
	}
	return out, nil
}
