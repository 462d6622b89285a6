package compactor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// writeSome writes objects shared by two streams: each object holds a
// batch of "a" and one of "b", so releasing an object needs both streams'
// segments.
func writeSome(e *env, objects int) {
	for i := range objects {
		e.write(batch{"a", 5 + i%3}, batch{"b", 3})
	}
	e.write(batch{"a", 4})
}

// TestCompactsAndCollects: every range becomes part of a segment, each
// segment one Parquet object holding exactly what was written, and the
// released journal objects are collected.
func TestCompactsAndCollects(t *testing.T) {
	e := newEnv(t)
	writeSome(e, 8)
	c := e.compactor("node-a", 1500, nil)
	res, err := c.RunOnce(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Planned != 2 || res.Committed != 2 || res.Failed != 0 {
		t.Fatalf("first pass %+v: want one job per stream planned and committed", res)
	}
	e.runUntilDrained(c)
	e.checkConverged()
	if n := len(e.cat.all(t, e.ctx)); n < 4 {
		t.Fatalf("%d segments: with max_bytes 1500 each stream needs several", n)
	}
	if h := c.Held(); len(h) != 0 {
		t.Fatalf("Held after the work: %+v", h)
	}
}

// TestPlansByBytesAndAge: below segment.max_bytes and younger than
// segment.max_age nothing is planned; at max_bytes a job covers the
// oldest ranges up to the one reaching it; past max_age the rest goes.
func TestPlansByBytesAndAge(t *testing.T) {
	e := newEnv(t)
	maxAge := time.Hour
	c := e.compactor("node-a", 0, func(o *Options) {
		o.Segment = func(string) policy.SegmentConfig { return policy.SegmentConfig{MaxBytes: 600, MaxAge: maxAge} }
	})
	e.write(batch{"s", 4}) // ~4 × (24+~22) bytes
	if n, err := c.Plan(e.ctx); err != nil || n != 0 {
		t.Fatalf("Plan below max_bytes = %d, %v; want nothing", n, err)
	}
	for range 6 {
		e.write(batch{"s", 4})
	}
	if n, err := c.Plan(e.ctx); err != nil || n != 1 {
		t.Fatalf("Plan at max_bytes = %d, %v; want one job", n, err)
	}
	if n, err := c.Plan(e.ctx); err != nil || n != 0 {
		t.Fatalf("second Plan = %d, %v; one open job per stream", n, err)
	}
	var base, last int64
	if err := e.pool.QueryRow(e.ctx, `SELECT base, last_offset FROM compaction_jobs`).Scan(&base, &last); err != nil {
		t.Fatal(err)
	}
	var bytes, bytesBefore int64
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(sum(bytes) FILTER (WHERE last_offset <= $1), 0), coalesce(sum(bytes) FILTER (WHERE last_offset < $1), 0) FROM journal_ranges`, last).
		Scan(&bytes, &bytesBefore); err != nil {
		t.Fatal(err)
	}
	if base != 0 || bytes < 600 || bytesBefore >= 600 {
		t.Fatalf("job [%d, %d] holds %d bytes (%d without its last range); want from 0 to the range reaching 600", base, last, bytes, bytesBefore)
	}
	for {
		if ok, err := c.Work(e.ctx); !ok || err != nil {
			t.Fatalf("Work = %v, %v", ok, err)
		}
		n, err := c.Plan(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if rest := e.count(`SELECT coalesce(sum(bytes), 0)::int FROM journal_ranges`); rest == 0 || rest >= 600 {
		t.Fatalf("%d bytes of young ranges left: the test wants some, below max_bytes", rest)
	}
	maxAge = time.Nanosecond
	if n, err := c.Plan(e.ctx); err != nil || n != 1 {
		t.Fatalf("Plan past max_age = %d, %v; want one job", n, err)
	}
	e.runUntilDrained(c)
	e.checkConverged()
}

// killAt returns a Failpoint that "kills" its compactor at the first hit
// of step: it cancels the compactor's context and fails the step, so
// nothing more is written and its lease is not renewed.
func killAt(step string, cancel context.CancelFunc, hits *atomic.Int32) func(string) error {
	return func(s string) error {
		if s == step && hits.Add(1) == 1 {
			cancel()
			return errors.New("killed")
		}
		return nil
	}
}

// TestKilledAtEveryFailpoint: a compaction dies at each step; another node
// takes the job over once the lease expires, and garbage collection runs.
// Then every catalog segment has exactly one Parquet object and there is
// no other, no journal object is left, and every record reads back from
// its segment, offsets dense.
func TestKilledAtEveryFailpoint(t *testing.T) {
	for _, step := range []string{StepAfterClaim, StepAfterUpload, StepBeforeCommit, StepAfterCommit, StepGCAfterDelete} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			writeSome(e, 6)
			ctxA, cancelA := context.WithCancel(e.ctx)
			defer cancelA()
			var hits atomic.Int32
			a := e.compactor("node-a", 1200, func(o *Options) { o.Failpoint = killAt(step, cancelA, &hits) })
			for ctxA.Err() == nil {
				if _, err := a.RunOnce(ctxA); err != nil && ctxA.Err() == nil {
					t.Fatalf("node-a before its death: %v", err)
				}
				if e.drained() {
					t.Fatal("drained before the failpoint was hit")
				}
			}
			if hits.Load() != 1 {
				t.Fatalf("failpoint hit %d times", hits.Load())
			}
			if step == StepBeforeCommit {
				if n := len(e.cat.all(t, e.ctx)); n != 0 {
					t.Fatalf("%d segments committed by a transaction that died before COMMIT", n)
				}
			}
			b := e.compactor("node-b", 1200, nil)
			e.runUntilDrained(b)
			e.checkConverged()
		})
	}
}

// TestNeverTwoOwners: two nodes compact the same streams at once; no job
// is ever held by both, each is claimed once and committed once, and the
// end state is exact.
func TestNeverTwoOwners(t *testing.T) {
	e := newEnv(t)
	for i := range 12 {
		e.write(batch{"a", 4}, batch{"b", 5}, batch{"c", 2 + i%4})
	}
	var claims atomic.Int32
	var cs [2]*Compactor
	var violations sync.Map
	check := func(step string) error {
		if step == StepAfterClaim {
			claims.Add(1)
		}
		if cs[0] == nil || cs[1] == nil {
			return nil
		}
		for _, j := range cs[0].Held() {
			for _, k := range cs[1].Held() {
				if j.Stream == k.Stream && j.Base == k.Base {
					violations.Store(j.Stream, j.Base)
				}
			}
		}
		return nil
	}
	for i, id := range []string{"node-a", "node-b"} {
		cs[i] = e.compactor(id, 400, func(o *Options) { o.Lease = time.Minute; o.Failpoint = check })
	}
	var committed, failed atomic.Int32
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(90 * time.Second)
			for !e.drained() && time.Now().Before(deadline) {
				res, err := c.RunOnce(e.ctx)
				if err != nil {
					t.Errorf("RunOnce: %v", err)
					return
				}
				committed.Add(int32(res.Committed))
				failed.Add(int32(res.Failed))
			}
		}()
	}
	wg.Wait()
	violations.Range(func(k, v any) bool {
		t.Errorf("job %v/%v held by both nodes at once", k, v)
		return true
	})
	segs := len(e.cat.all(t, e.ctx))
	if failed.Load() != 0 || int(committed.Load()) != segs || int(claims.Load()) != segs {
		t.Fatalf("%d claims, %d commits, %d failures for %d segments: want each job claimed and committed once", claims.Load(), committed.Load(), failed.Load(), segs)
	}
	e.checkConverged()
}

// TestLostLeaseCommitsNothing: a worker whose lease expired and was taken
// by another node cannot commit; the new owner's commit is the one.
func TestLostLeaseCommitsNothing(t *testing.T) {
	e := newEnv(t)
	writeSome(e, 3)
	var b *Compactor
	var slowDone atomic.Bool
	a := e.compactor("node-a", 1<<20, func(o *Options) {
		o.Lease = 300 * time.Millisecond
		o.Failpoint = func(step string) error {
			if step == StepAfterUpload && !slowDone.Swap(true) {
				// Stall past the lease, with renewals stopped from the
				// outside: expire the lease in the database.
				if _, err := e.pool.Exec(e.ctx, `UPDATE compaction_jobs SET lease_until = now() - interval '1 second'`); err != nil {
					return err
				}
				if ok, err := b.Work(e.ctx); !ok || err != nil {
					t.Errorf("node-b's takeover: %v, %v", ok, err)
				}
			}
			return nil
		}
	})
	b = e.compactor("node-b", 1<<20, nil)
	if _, err := a.Plan(e.ctx); err != nil {
		t.Fatal(err)
	}
	ok, err := a.Work(e.ctx)
	if !ok || !errors.Is(err, ErrLostLease) {
		t.Fatalf("node-a's Work after losing its lease = %v, %v; want ErrLostLease", ok, err)
	}
	e.runUntilDrained(b)
	e.checkConverged()
}

// TestDamagedBlockFailsTheJob: a journal block that fails its checks stops
// its job with a *tiers.CorruptionError; nothing is committed, the ranges
// and the job stay (with the error), and nothing is deleted.
func TestDamagedBlockFailsTheJob(t *testing.T) {
	e := newEnv(t)
	e.write(batch{"s", 5})
	key := e.write(batch{"s", 5})
	var off int64
	if err := e.pool.QueryRow(e.ctx, `SELECT byte_off FROM journal_ranges WHERE object_key = $1`, key).Scan(&off); err != nil {
		t.Fatal(err)
	}
	rc, err := e.bucket.Get(e.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	obj[off+30] ^= 0x40
	if err := e.bucket.Put(e.ctx, key, bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	c := e.compactor("node-a", 1<<20, nil)
	if _, err := c.Plan(e.ctx); err != nil {
		t.Fatal(err)
	}
	ok, err := c.Work(e.ctx)
	var ce *tiers.CorruptionError
	if !ok || !errors.As(err, &ce) {
		t.Fatalf("Work = %v, %v; want a *tiers.CorruptionError", ok, err)
	}
	var lastErr string
	if err := e.pool.QueryRow(e.ctx, `SELECT last_error FROM compaction_jobs`).Scan(&lastErr); err != nil || lastErr == "" {
		t.Fatalf("job's last_error %q, %v", lastErr, err)
	}
	if n := e.count(`SELECT count(*) FROM journal_ranges`); n != 2 {
		t.Fatalf("%d ranges left, want both", n)
	}
	if n := len(e.cat.all(t, e.ctx)); n != 0 {
		t.Fatalf("%d segments committed from a damaged block", n)
	}
	if _, err := c.RunOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM journal_objects`); n != 2 {
		t.Fatalf("%d journal objects left, want both", n)
	}
}
