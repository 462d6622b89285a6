package sequencer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tierd/tierd/cluster/registry"
	"github.com/tierd/tierd/tiers"
)

// outcome is one batch's answer in a commit.
type outcome struct {
	res Result
	err error
}

// commitOut is what a successful commit decided.
type commitOut struct {
	results []outcome
	ranges  []Range
}

// maxCommitAttempts bounds the retries of a transaction PostgreSQL aborted
// for a deadlock or a serialization failure: nothing was written, and the
// next attempt usually passes.
const maxCommitAttempts = 3

// commit sequences obj's batches in one transaction (see the package doc)
// and returns each batch's answer. Its error wraps registry.ErrFenced,
// tiers.ErrOutcomeUnknown (COMMIT sent, answer lost) or
// tiers.ErrStorageUnavailable (nothing written).
func (s *Sequencer) commit(obj *object, key string, size int64) (commitOut, error) {
	var err error
	for attempt := 1; ; attempt++ {
		var out commitOut
		out, err = s.commitOnce(obj, key, size)
		if err == nil || attempt == maxCommitAttempts || !retryable(err) {
			return out, err
		}
		time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
	}
}

// retryable reports a transaction the server aborted for a conflict it
// may not meet again: deadlock_detected, serialization_failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// producerKey names an idempotent producer's state in one stream.
type producerKey struct {
	stream string
	id     tiers.ProducerID
}

// producerState is a producer's last batch in a stream.
type producerState struct {
	seq   uint64
	first uint64
	count int
}

// The statements of a commit. Streams are created, then locked in name
// order (ORDER BY applies before FOR UPDATE locks), so two nodes' flushes
// over overlapping streams queue instead of deadlocking. The producers'
// rows need no lock of their own: only a holder of the stream's row lock
// changes them.
const (
	sqlFence       = `SELECT epoch FROM cluster_nodes WHERE node_id = $1 FOR SHARE`
	sqlEnsure      = `INSERT INTO cluster_streams (stream) SELECT s FROM unnest($1::text[]) AS t(s) ORDER BY s ON CONFLICT (stream) DO NOTHING`
	sqlLockStreams = `SELECT stream, next_offset FROM cluster_streams WHERE stream = ANY($1::text[]) ORDER BY stream FOR UPDATE`
	sqlProducers   = `SELECT p.stream, p.producer_id, p.seq, p.first_offset, p.count
		FROM cluster_producers p JOIN unnest($1::text[], $2::bytea[]) AS k(stream, id)
		ON p.stream = k.stream AND p.producer_id = k.id`
	sqlObject = `INSERT INTO journal_objects (key, node_id, epoch, size, live_ranges, released_at)
		VALUES ($1, $2, $3, $4, $5::integer, CASE WHEN $5::integer = 0 THEN now() END)`
	sqlRanges = `INSERT INTO journal_ranges (stream, first_offset, last_offset, object_key, byte_off, byte_len, min_ts, max_ts, bytes)
		SELECT r.stream, r.f, r.l, $1, r.o, r.n, r.mi, r.ma, r.b
		FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
			AS r(stream, f, l, o, n, mi, ma, b)`
	sqlSaveProducers = `INSERT INTO cluster_producers AS p (stream, producer_id, seq, first_offset, last_offset, count, updated_at)
		SELECT u.stream, u.id, u.seq, u.f, u.l, u.c, now()
		FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[], $6::integer[]) AS u(stream, id, seq, f, l, c)
		ON CONFLICT (stream, producer_id) DO UPDATE SET seq = excluded.seq, first_offset = excluded.first_offset,
			last_offset = excluded.last_offset, count = excluded.count, updated_at = excluded.updated_at`
	sqlAdvance = `UPDATE cluster_streams AS s SET next_offset = u.next
		FROM unnest($1::text[], $2::bigint[]) AS u(stream, next) WHERE s.stream = u.stream`
	sqlNotify = `SELECT pg_notify('tierd_commits', u.stream || ':' || u.next)
		FROM unnest($1::text[], $2::bigint[]) AS u(stream, next)`
	// sqlPrune forgets producers idle past the TTL in streams whose rows
	// the transaction holds, so it never waits on another writer.
	sqlPrune = `DELETE FROM cluster_producers WHERE stream = ANY($1::text[]) AND updated_at < now() - $2::bigint * interval '1 microsecond'`
)

// commitOnce is one attempt: three round trips (BEGIN with the fencing
// check, the stream locks and the producers' state; the inserts and
// updates; COMMIT).
func (s *Sequencer) commitOnce(obj *object, key string, size int64) (commitOut, error) {
	ctx, cancel := context.WithTimeout(s.life, s.o.CommitTimeout)
	defer cancel()
	nothing := func(step string, err error) (commitOut, error) {
		return commitOut{}, fmt.Errorf("%w: sequencer: commit %s: %s: %w", tiers.ErrStorageUnavailable, key, step, err)
	}

	streams := make([]string, 0, 4)
	var pStreams []string
	var pIDs [][]byte
	seenP := map[producerKey]bool{}
	for i := range obj.batches {
		b := &obj.batches[i]
		streams = append(streams, b.stream)
		if !b.producer.ID.IsZero() {
			k := producerKey{b.stream, b.producer.ID}
			if !seenP[k] {
				seenP[k] = true
				pStreams = append(pStreams, b.stream)
				pIDs = append(pIDs, b.producer.ID[:])
			}
		}
	}
	slices.Sort(streams)
	streams = slices.Compact(streams)

	// Round trip 1.
	var (
		epoch     int64
		haveEpoch bool
		next      = make(map[string]uint64, len(streams))
		producers = make(map[producerKey]producerState, len(pIDs))
	)
	b1 := &pgx.Batch{}
	b1.BeginTx(pgx.TxOptions{})
	b1.Queue(sqlFence, s.node).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&epoch)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		haveEpoch = err == nil
		return err
	})
	b1.Queue(sqlEnsure, streams)
	b1.Queue(sqlLockStreams, streams).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				return err
			}
			next[name] = uint64(n)
		}
		return rows.Err()
	})
	if len(pIDs) > 0 {
		b1.Queue(sqlProducers, pStreams, pIDs).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k producerKey
				var id []byte
				var seq, first int64
				var count int32
				if err := rows.Scan(&k.stream, &id, &seq, &first, &count); err != nil {
					return err
				}
				if len(id) != len(k.id) {
					return fmt.Errorf("cluster_producers row of stream %s has a %d-byte producer id", k.stream, len(id))
				}
				copy(k.id[:], id)
				producers[k] = producerState{seq: uint64(seq), first: uint64(first), count: int(count)}
			}
			return rows.Err()
		})
	}
	br := s.o.Pool.SendBatch(ctx, b1)
	tx := br.Tx()
	defer func() {
		// A no-op once committed; otherwise it ends the transaction (or
		// the pool drops a connection that cannot).
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		tx.Rollback(rctx)
		rcancel()
	}()
	if err := br.Close(); err != nil {
		return nothing("lock", err)
	}
	if !haveEpoch || uint64(epoch) != s.epoch {
		return commitOut{}, fmt.Errorf("%w: node %s has epoch %d in cluster_nodes (present: %v), this process %d",
			registry.ErrFenced, s.node, epoch, haveEpoch, s.epoch)
	}

	// Sequence in arrival order.
	out := commitOut{results: make([]outcome, len(obj.batches))}
	start := make(map[string]uint64, len(next))
	for name, n := range next {
		start[name] = n
	}
	saved := map[producerKey]bool{}
	var (
		rStream                   []string
		rFirst, rLast, rOff, rLen []int64
		rMin, rMax, rBytes        []int64
	)
	for i := range obj.batches {
		b := &obj.batches[i]
		n, ok := next[b.stream]
		if !ok {
			return nothing("sequence", fmt.Errorf("stream %s has no row after its insert", b.stream))
		}
		count := b.ref.Records
		k := producerKey{b.stream, b.producer.ID}
		if !b.producer.ID.IsZero() {
			if st, known := producers[k]; known && b.producer.Seq <= st.seq {
				out.results[i] = retryOutcome(b, st)
				continue
			}
		}
		if n+uint64(count) > math.MaxInt64 {
			out.results[i].err = fmt.Errorf("%w: stream %s is at offset %d; %d records more pass the largest offset", tiers.ErrInvalidRecord, b.stream, n, count)
			continue
		}
		last := n + uint64(count) - 1
		out.results[i].res = Result{First: n, Last: last, Count: count}
		next[b.stream] = last + 1
		if !b.producer.ID.IsZero() {
			producers[k] = producerState{seq: b.producer.Seq, first: n, count: count}
			saved[k] = true
		}
		rStream = append(rStream, b.stream)
		rFirst = append(rFirst, int64(n))
		rLast = append(rLast, int64(last))
		rOff = append(rOff, b.ref.Pos)
		rLen = append(rLen, b.ref.Len)
		rMin = append(rMin, b.ref.MinTS)
		rMax = append(rMax, b.ref.MaxTS)
		rBytes = append(rBytes, b.size)
		out.ranges = append(out.ranges, Range{Stream: b.stream, First: n, Last: last, Off: b.ref.Pos, Len: b.ref.Len,
			MinTS: b.ref.MinTS, MaxTS: b.ref.MaxTS, Bytes: b.size})
	}

	// Round trip 2.
	b2 := &pgx.Batch{}
	b2.Queue(sqlObject, key, s.node, int64(s.epoch), size, int32(len(rStream)))
	if len(rStream) > 0 {
		b2.Queue(sqlRanges, key, rStream, rFirst, rLast, rOff, rLen, rMin, rMax, rBytes)
	}
	if len(saved) > 0 {
		var ps []string
		var ids [][]byte
		var seqs, firsts, lasts []int64
		var counts []int32
		for k := range saved {
			st := producers[k]
			ps = append(ps, k.stream)
			ids = append(ids, k.id[:])
			seqs = append(seqs, int64(st.seq))
			firsts = append(firsts, int64(st.first))
			lasts = append(lasts, int64(st.first)+int64(st.count)-1)
			counts = append(counts, int32(st.count))
		}
		b2.Queue(sqlSaveProducers, ps, ids, seqs, firsts, lasts, counts)
	}
	var moved []string
	var to []int64
	for _, name := range streams {
		if next[name] != start[name] {
			moved = append(moved, name)
			to = append(to, int64(next[name]))
		}
	}
	if len(moved) > 0 {
		b2.Queue(sqlAdvance, moved, to)
		b2.Queue(sqlNotify, moved, to)
	}
	prune := time.Since(s.lastPrune) >= min(pruneEvery, s.o.ProducerTTL)
	if prune {
		b2.Queue(sqlPrune, streams, s.o.ProducerTTL.Microseconds())
	}
	if err := tx.SendBatch(ctx, b2).Close(); err != nil {
		return nothing("insert", err)
	}

	// Round trip 3.
	if err := tx.Commit(ctx); err != nil {
		if outcomeKnown(err) {
			return nothing("commit", err)
		}
		return commitOut{}, fmt.Errorf("%w: sequencer: commit %s: %w", tiers.ErrOutcomeUnknown, key, err)
	}
	if prune {
		s.lastPrune = time.Now()
	}
	return out, nil
}

// pruneEvery spaces the commits that forget idle producers (unless the
// TTL is shorter): a stream's producers are few, but scanning them at
// every flush is waste.
const pruneEvery = time.Minute

// retryOutcome answers a batch whose sequence number is not above the
// producer's last: a retry of the last batch with its record count is a
// duplicate with that batch's offsets, anything else is out of sequence.
func retryOutcome(b *batch, st producerState) outcome {
	count := b.ref.Records
	switch {
	case b.producer.Seq < st.seq:
		return outcome{err: fmt.Errorf("%w: producer %s sent batch %d to stream %s after batch %d",
			tiers.ErrProducerSequence, b.producer.ID, b.producer.Seq, b.stream, st.seq)}
	case count != st.count:
		return outcome{err: fmt.Errorf("%w: producer %s retried batch %d of stream %s with %d records; it had %d",
			tiers.ErrProducerSequence, b.producer.ID, b.producer.Seq, b.stream, count, st.count)}
	}
	return outcome{res: Result{First: st.first, Last: st.first + uint64(count) - 1, Count: count, Duplicate: true}}
}

// outcomeKnown reports whether a failed COMMIT certainly did not commit:
// the server answered with an error (or the transaction had already
// failed), or nothing reached it.
func outcomeKnown(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) || errors.Is(err, pgx.ErrTxCommitRollback) || pgconn.SafeToRetry(err)
}
