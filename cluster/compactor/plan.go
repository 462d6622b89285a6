package compactor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// candidate is a stream without an open job and what its journal ranges
// hold.
type candidate struct {
	stream string
	bytes  int64
	age    time.Duration // of its oldest range, by PostgreSQL's clock
}

// Plan opens a job for every stream whose oldest uncompacted journal
// ranges are due: their bytes reach the stream's segment.max_bytes, or the
// oldest was committed longer than segment.max_age ago. A stream has at
// most one open job. It returns how many jobs it opened.
func (c *Compactor) Plan(ctx context.Context) (int, error) {
	cands, err := c.candidates(ctx)
	if err != nil {
		return 0, err
	}
	opened := 0
	for _, cd := range cands {
		pol := c.opts.Segment(cd.stream)
		if cd.bytes < pol.MaxBytes && cd.age < pol.MaxAge {
			continue
		}
		ok, err := c.open(ctx, cd.stream)
		if err != nil {
			return opened, fmt.Errorf("compactor: plan %s: %w", cd.stream, err)
		}
		if ok {
			opened++
			c.metrics.jobs.WithLabelValues(resPlanned).Inc()
		}
	}
	return opened, nil
}

// candidates sums up the journal ranges of every stream without an open
// job. It takes no lock: open checks again under the stream's.
func (c *Compactor) candidates(ctx context.Context) ([]candidate, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	rows, err := c.opts.Pool.Query(ctx, `
		SELECT r.stream, sum(r.bytes)::bigint, extract(epoch FROM now() - min(r.committed_at))::float8
		FROM journal_ranges r
		WHERE NOT EXISTS (SELECT 1 FROM compaction_jobs j WHERE j.stream = r.stream)
		GROUP BY r.stream
		ORDER BY r.stream`)
	if err != nil {
		return nil, fmt.Errorf("compactor: plan: %w", err)
	}
	var out []candidate
	for rows.Next() {
		var cd candidate
		var age float64
		if err := rows.Scan(&cd.stream, &cd.bytes, &age); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compactor: plan: %w", err)
		}
		cd.age = time.Duration(age * float64(time.Second))
		out = append(out, cd)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compactor: plan: %w", err)
	}
	return out, nil
}

// open opens stream's job, if it is still due, in one transaction holding
// the stream row's lock. A job's commit takes the same lock, so the ranges
// read here are never those of a job committed meanwhile: a job always
// starts at the stream's oldest uncompacted offset.
func (c *Compactor) open(ctx context.Context, stream string) (bool, error) {
	pol := c.opts.Segment(stream)
	opened := false
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	err := pgx.BeginFunc(ctx, c.opts.Pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM cluster_streams WHERE stream = $1 FOR NO KEY UPDATE`, stream).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // ranges of a stream without a row: the write path's business
		}
		if err != nil {
			return err
		}
		var open bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM compaction_jobs WHERE stream = $1)`, stream).Scan(&open); err != nil {
			return err
		}
		if open {
			return nil
		}
		rows, err := tx.Query(ctx, `
			SELECT first_offset, last_offset, bytes, extract(epoch FROM now() - committed_at)::float8
			FROM journal_ranges WHERE stream = $1 ORDER BY first_offset`, stream)
		if err != nil {
			return err
		}
		var (
			base, last uint64
			bytes      int64
			n          int
			oldest     time.Duration
		)
		for rows.Next() {
			var first, l, b int64
			var age float64
			if err := rows.Scan(&first, &l, &b, &age); err != nil {
				rows.Close()
				return err
			}
			if n == 0 {
				base, oldest = uint64(first), time.Duration(age*float64(time.Second))
			} else if uint64(first) != last+1 {
				// A hole in the journal: the write path assigns dense
				// offsets, so this is damage; the segment stops before it
				// and verify reports the hole.
				c.log.Warn("compactor: journal ranges are not contiguous", "stream", stream, "after", last, "next", first)
				break
			}
			last, bytes, n = uint64(l), bytes+b, n+1
			if bytes >= pol.MaxBytes {
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n == 0 || (bytes < pol.MaxBytes && oldest < pol.MaxAge) {
			return nil
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO compaction_jobs (stream, base, last_offset) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, stream, int64(base), int64(last))
		if err != nil {
			return err
		}
		opened = tag.RowsAffected() == 1
		if opened {
			c.log.Info("compaction job opened", "stream", stream, "base", base, "last", last, "bytes", bytes, "ranges", n)
		}
		return nil
	})
	return opened, err
}
