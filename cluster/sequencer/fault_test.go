package sequencer_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/cluster/sequencer"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/tiers"
)

// unavailable reports the errors a node answers with 503 and a retry:
// nothing written, or an outcome the retry resolves, or backpressure.
func unavailable(err error) bool {
	return errors.Is(err, tiers.ErrStorageUnavailable) || errors.Is(err, tiers.ErrOutcomeUnknown) || errors.Is(err, tiers.ErrBackpressure)
}

// appendUntil retries an idempotent producer's batch until it is answered,
// as a client does on 503: every failure on the way must be 503-class.
func appendUntil(t *testing.T, e *env, s *sequencer.Sequencer, stream string, p tiers.Producer, rs []tiers.Record, failures *atomic.Int64) (sequencer.Result, bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		res, err := s.Append(e.ctx, stream, p, rs)
		if err == nil {
			return res, true
		}
		if !unavailable(err) {
			t.Errorf("append %s seq %d: %v is not a 503-class error", stream, p.Seq, err)
			return res, false
		}
		failures.Add(1)
		if time.Now().After(deadline) {
			t.Errorf("append %s seq %d: still failing after 3 minutes: %v", stream, p.Seq, err)
			return res, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestObjectStoreStopped: with MinIO stopped every append fails as
// storage unavailable (not "outcome unknown": nothing was written) and the
// database is untouched; once MinIO is back the same batches go through.
func TestObjectStoreStopped(t *testing.T) {
	e := newEnv(t, envOpts{dedicatedMinIO: true})
	s := e.seq(e.join("n"), sequencer.Options{})
	l := newLedger()
	rs := recs("before", 2)
	res, err := s.Append(e.ctx, "s", tiers.Producer{}, rs)
	if err != nil {
		t.Fatal(err)
	}
	l.ack(t, "s", res, rs)

	e.mc.Stop()
	p := producer()
	for i := range 3 {
		_, err := s.Append(e.ctx, "s", tiers.Producer{ID: p, Seq: 1}, recs("down", 3))
		if !errors.Is(err, tiers.ErrStorageUnavailable) || errors.Is(err, tiers.ErrOutcomeUnknown) {
			t.Fatalf("append %d with the store stopped: %v", i, err)
		}
	}
	if err := s.LastFlushError(); !errors.Is(err, tiers.ErrStorageUnavailable) {
		t.Fatalf("LastFlushError with the store stopped: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM journal_ranges`); n != 1 {
		t.Fatalf("%d ranges after failed flushes, want 1", n)
	}
	if next := e.nextOffsets()["s"]; next != 2 {
		t.Fatalf("next_offset %d, want 2", next)
	}

	e.mc.Restart()
	var failures atomic.Int64
	rs = recs("down", 3)
	res, ok := appendUntil(t, e, s, "s", tiers.Producer{ID: p, Seq: 1}, rs, &failures)
	if !ok || res.First != 2 || res.Duplicate {
		t.Fatalf("after the restart: %+v", res)
	}
	l.ack(t, "s", res, rs)
	if err := s.LastFlushError(); err != nil {
		t.Fatalf("LastFlushError after a flush succeeded: %v", err)
	}
	e.verify(l)
}

// TestBackpressureWhileStoreHangs: a hung store (MinIO paused) holds the
// flush in flight; appends collect until MaxPendingBytes and then answer
// backpressure at once instead of queueing without bound. Once the store
// answers again, everything acknowledged is there.
func TestBackpressureWhileStoreHangs(t *testing.T) {
	e := newEnv(t, envOpts{dedicatedMinIO: true})
	s := e.seq(e.join("n"), sequencer.Options{MaxPendingBytes: 64 << 10})
	if _, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("warm-up", 1)); err != nil {
		t.Fatal(err)
	}
	e.mc.Pause()
	l := newLedger()
	var backpressure, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Go(func() {
			rs := []tiers.Record{{Value: make([]byte, 8<<10)}}
			copy(rs[0].Value, fmt.Sprintf("w%d", w))
			res, err := s.Append(e.ctx, "s", tiers.Producer{}, rs)
			switch {
			case err == nil:
				l.ack(t, "s", res, rs)
			case errors.Is(err, tiers.ErrBackpressure):
				backpressure.Add(1)
			case unavailable(err):
				failed.Add(1)
			default:
				t.Errorf("append: %v", err)
			}
		})
		if w == 2 {
			time.Sleep(200 * time.Millisecond) // the first flush is now in flight, hung
		}
	}
	time.Sleep(500 * time.Millisecond)
	e.mc.Resume()
	wg.Wait()
	if backpressure.Load() == 0 {
		t.Fatalf("no backpressure with 24×8 KiB against a 64 KiB cap (%d failed)", failed.Load())
	}
	e.verify(l)
}

// TestPostgresRestarted: producers append through a PostgreSQL restart;
// every failure is 503-class, each producer's retries resolve (a batch
// committed before its answer was lost is a duplicate), and afterwards
// every acknowledged record is stored exactly once, offsets dense.
func TestPostgresRestarted(t *testing.T) {
	e := newEnv(t, envOpts{dedicatedPG: true})
	s := e.seq(e.join("n"), sequencer.Options{FlushInterval: 10 * time.Millisecond, CommitTimeout: 3 * time.Second})
	l := newLedger()
	var failures, acked atomic.Int64
	const writers, batches = 4, 60
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			p := producer()
			stream := fmt.Sprintf("s%d", w%2)
			for i := 1; i <= batches; i++ {
				rs := recs(fmt.Sprintf("w%d/b%d", w, i), 1+i%3)
				res, ok := appendUntil(t, e, s, stream, tiers.Producer{ID: p, Seq: uint64(i)}, rs, &failures)
				if !ok {
					return
				}
				l.ack(t, stream, res, rs)
				acked.Add(int64(len(rs)))
			}
		})
	}
	for acked.Load() < 50 {
		time.Sleep(5 * time.Millisecond)
	}
	e.pg.Restart()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if failures.Load() == 0 {
		t.Log("no append failed across the restart (it fell between flushes)")
	}
	counts := e.verify(l)
	total := 0
	for st, n := range counts {
		if n != len(l.want[st]) {
			t.Fatalf("stream %s: %d records stored, %d acknowledged: a retry was stored twice or a record lost", st, n, len(l.want[st]))
		}
		total += n
	}
	if int64(total) != acked.Load() {
		t.Fatalf("%d stored, %d acknowledged", total, acked.Load())
	}
	t.Logf("%d records, %d failed attempts across the restart", total, failures.Load())
}

// TestCrashAfterPut: the failpoint between the PUT and the transaction
// (what a crash there leaves): the object is in the bucket, no row refers
// to it, the append failed as nothing written; the next flush is fine.
func TestCrashAfterPut(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := e.seq(e.join("n"), sequencer.Options{})
	if err := failpoint.Enable(failpoint.SequencerAfterPut, "error"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("lost", 2))
	failpoint.Disable(failpoint.SequencerAfterPut)
	if !errors.Is(err, tiers.ErrStorageUnavailable) || !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("append: %v", err)
	}
	if objs := e.objects(); len(objs) != 1 {
		t.Fatalf("objects %v, want the one stored", objs)
	}
	if n := e.count(`SELECT count(*) FROM journal_objects`) + e.count(`SELECT count(*) FROM cluster_streams`); n != 0 {
		t.Fatalf("%d rows after a flush that never committed", n)
	}
	res, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("next", 1))
	if err != nil || res.First != 0 {
		t.Fatalf("next append: %+v %v", res, err)
	}
	e.verify(nil)
}

// TestCrashAfterCommit: the failpoint between COMMIT and the answers: the
// append fails as outcome unknown (not "nothing written": it was), and the
// producer's retry is answered as a duplicate with the committed offsets.
func TestCrashAfterCommit(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := e.seq(e.join("n"), sequencer.Options{})
	if _, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("first", 4)); err != nil {
		t.Fatal(err)
	}
	p := tiers.Producer{ID: producer(), Seq: 9}
	if err := failpoint.Enable(failpoint.SequencerAfterCommit, "error"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(e.ctx, "s", p, recs("committed", 2))
	failpoint.Disable(failpoint.SequencerAfterCommit)
	if !errors.Is(err, tiers.ErrOutcomeUnknown) || errors.Is(err, tiers.ErrStorageUnavailable) {
		t.Fatalf("append: %v", err)
	}
	if next := e.nextOffsets()["s"]; next != 6 {
		t.Fatalf("next_offset %d, want 6: the batch is committed", next)
	}
	res, err := s.Append(e.ctx, "s", p, recs("committed", 2))
	if err != nil || res != (sequencer.Result{First: 4, Last: 5, Count: 2, Duplicate: true}) {
		t.Fatalf("retry: %+v %v", res, err)
	}
	e.verify(nil)
}
