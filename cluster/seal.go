package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// sealPoll is how often Seal looks whether another node committed the job
// it waits for.
const sealPoll = 100 * time.Millisecond

// sealWait bounds a Seal: a job another node holds that never commits
// (its owner hung with a live lease) must not hold the request forever.
const sealWait = 5 * time.Minute

// sealAttempts is how many failed compaction jobs a Seal sits through
// before it answers the last failure.
const sealAttempts = 3

// Seal compacts stream's journal ranges into segments now, whatever their
// size and age, and answers the last segment it waited for: the cluster
// equivalent of a seal, after which every record acknowledged before the
// call is in a cold segment (nothing needs a seal to be durable in cluster
// mode: the journal holds it already). It opens a job for the ranges no
// job holds (under the stream row's lock, as the compactor's planner
// does), works claimable jobs on this node, and waits for jobs another
// node holds to commit, until the stream's offsets below the next offset
// read at the call are all in the catalog. With nothing to compact it
// answers the stream's last segment, Sealed false. ctx, and sealWait,
// bound the wait; jobs it opened stay and are worked by any node.
func (n *Node) Seal(ctx context.Context, stream string) (engine.SealResult, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return engine.SealResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, sealWait)
	defer cancel()
	target, err := n.nextOffset(ctx, n.pool, stream)
	if err != nil {
		return engine.SealResult{}, err
	}
	sealed, failures := false, 0
	for {
		pending, err := n.uncompactedBelow(ctx, stream, target)
		if err != nil {
			return engine.SealResult{}, err
		}
		if !pending {
			break
		}
		sealed = true
		if err := n.openJob(ctx, stream); err != nil {
			return engine.SealResult{}, err
		}
		worked, err := n.parts.comp.Work(ctx)
		if err != nil && ctx.Err() != nil {
			return engine.SealResult{}, ctx.Err()
		}
		if err != nil {
			if failures++; failures >= sealAttempts {
				return engine.SealResult{}, fmt.Errorf("cluster: seal %s: compaction failed %d times (the job stays open and is retried): %w", stream, failures, err)
			}
			n.opts.Logger.Warn("cluster: seal: a compaction job failed; it is retried", "stream", stream, "err", err)
		}
		if !worked || err != nil {
			select {
			case <-ctx.Done():
				return engine.SealResult{}, ctx.Err()
			case <-time.After(sealPoll):
			}
		}
	}
	segs, err := n.cat.Segments(ctx, stream)
	if errors.Is(err, tiers.ErrStreamNotFound) {
		return engine.SealResult{}, nil
	}
	if err != nil {
		return engine.SealResult{}, err
	}
	for i := len(segs) - 1; i >= 0; i-- {
		if segs[i].Tombstoned.IsZero() {
			return engine.SealResult{Sealed: sealed, Segment: n.Describe(segs[i]), HasSegment: true}, nil
		}
	}
	return engine.SealResult{Sealed: sealed}, nil
}

// uncompactedBelow reports whether stream has a journal range starting
// below target.
func (n *Node) uncompactedBelow(ctx context.Context, stream string, target uint64) (bool, error) {
	var pending bool
	ctx, cancel := bounded(ctx)
	defer cancel()
	err := n.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM journal_ranges WHERE stream = $1 AND first_offset < $2)`,
		stream, int64(target)).Scan(&pending)
	if err != nil {
		return false, pgErr("look up the journal ranges of "+stream, err)
	}
	return pending, nil
}

// openJob opens a compaction job for stream's oldest contiguous journal
// ranges, at most segment.max_bytes of them, unless the stream has an
// open job already. It keeps the planner's rules (cluster/compactor,
// plan.go): the stream row locked, one job per stream, the job starting
// at the oldest uncompacted offset.
func (n *Node) openJob(ctx context.Context, stream string) error {
	maxBytes := n.opts.Config.PolicyFor(stream).Segment.MaxBytes
	ctx, cancel := bounded(ctx)
	defer cancel()
	err := pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM cluster_streams WHERE stream = $1 FOR NO KEY UPDATE`, stream).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		var open bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM compaction_jobs WHERE stream = $1)`, stream).Scan(&open); err != nil || open {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT first_offset, last_offset, bytes FROM journal_ranges WHERE stream = $1 ORDER BY first_offset`, stream)
		if err != nil {
			return err
		}
		var base, last uint64
		var bytes int64
		cnt := 0
		for rows.Next() {
			var f, l, b int64
			if err := rows.Scan(&f, &l, &b); err != nil {
				rows.Close()
				return err
			}
			if cnt > 0 && uint64(f) != last+1 {
				break // a hole is damage: verify reports it
			}
			if cnt == 0 {
				base = uint64(f)
			}
			last, bytes, cnt = uint64(l), bytes+b, cnt+1
			if maxBytes > 0 && bytes >= maxBytes {
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil || cnt == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO compaction_jobs (stream, base, last_offset) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			stream, int64(base), int64(last))
		return err
	})
	if err != nil {
		return pgErr(fmt.Sprintf("open a compaction job for %s", stream), err)
	}
	return nil
}
