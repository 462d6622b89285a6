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

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/testenv"
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
	var mu sync.Mutex
	committed := map[string]int{} // OnCommit's calls per stream
	c := e.compactor("node-a", 1500, func(o *Options) {
		o.OnCommit = func(stream string) {
			mu.Lock()
			committed[stream]++
			mu.Unlock()
		}
	})
	res, err := c.RunOnce(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Planned != 2 || res.Committed != 2 || res.Failed != 0 {
		t.Fatalf("first pass %+v: want one job per stream planned and committed", res)
	}
	e.runUntilDrained(c)
	e.checkConverged()
	segs := e.segments()
	if n := len(segs); n < 4 {
		t.Fatalf("%d segments: with max_bytes 1500 each stream needs several", n)
	}
	// Each committed job told OnCommit its stream (the node's tables
	// publish them): at least once per stream, at most once per segment
	// (a job commits one or more).
	want := map[string]int{}
	for _, m := range segs {
		want[m.Stream]++
	}
	mu.Lock()
	for s, n := range want {
		if committed[s] < 1 || committed[s] > n {
			t.Errorf("OnCommit called %d times for %s, want 1 to %d (its segments)", committed[s], s, n)
		}
	}
	if len(committed) != len(want) {
		t.Errorf("OnCommit called for %v, want the streams %v", committed, want)
	}
	mu.Unlock()
	if h := c.Held(); len(h) != 0 {
		t.Fatalf("Held after the work: %+v", h)
	}
}

// TestCompactsOnMinIO: the same over S3 (a real MinIO under a key
// prefix): ranged GETs of blocks, listings of _journal/ and of the
// segments, deletes.
func TestCompactsOnMinIO(t *testing.T) {
	mc := testenv.StartMinIO(t)
	b, err := objstore.Open(context.Background(), mc.URL(objstore.DriverMinio), objstore.Options{AccessKey: mc.AccessKey, SecretKey: mc.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, b)
	writeSome(e, 6)
	orphan := JournalPrefix + "crashed-node/3/00000000000000000009"
	if err := e.bucket.Put(e.ctx, orphan, bytes.NewReader([]byte("no commit")), 9); err != nil {
		t.Fatal(err)
	}
	c := e.compactor("node-a", 1000, nil)
	e.runUntilDrained(c)
	if _, err := c.CollectOrphans(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.checkConverged()
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
	if jobs, err := c.Jobs(e.ctx); err != nil || len(jobs) != 1 || jobs[0].Owner != "" || !jobs[0].LeaseUntil.IsZero() || jobs[0].Attempts != 0 {
		t.Fatalf("Jobs = %+v, %v; want one unclaimed job", jobs, err)
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
				if n := len(e.segments()); n != 0 {
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
			// With leases that never expire here, a job claimed twice
			// had two owners.
			var most int
			if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(max(attempts), 0) FROM compaction_jobs`).Scan(&most); err != nil {
				return err
			}
			if most > 1 {
				violations.Store("attempts", most)
			}
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
	// Each stream's ts crosses midnight once: the job across it commits
	// two segments, every other job one.
	segs := len(e.segments())
	if failed.Load() != 0 || committed.Load() != claims.Load() || segs < int(committed.Load()) || segs > int(committed.Load())+3 {
		t.Fatalf("%d claims, %d commits, %d failures for %d segments: want each job claimed and committed once", claims.Load(), committed.Load(), failed.Load(), segs)
	}
	e.checkConverged()
}

// TestLostLeaseCommitsNothing: a worker whose lease expired and went to
// another node cannot commit, whether the other node holds the job or has
// committed it already.
func TestLostLeaseCommitsNothing(t *testing.T) {
	for _, name := range []string{"held by the other", "committed by the other"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			writeSome(e, 3)
			b := e.compactor("node-b", 1<<20, nil)
			var stalled atomic.Bool
			a := e.compactor("node-a", 1<<20, func(o *Options) {
				o.Lease = time.Minute // no renewal during the test: the commit's check alone
				o.Failpoint = func(step string) error {
					if step != StepAfterUpload || stalled.Swap(true) {
						return nil
					}
					// node-a stalls past its lease: node-b takes the job.
					if _, err := e.pool.Exec(e.ctx, `UPDATE compaction_jobs SET lease_until = now() - interval '1 second'`); err != nil {
						return err
					}
					if name == "held by the other" {
						if _, ok, err := b.claim(e.ctx); !ok || err != nil {
							t.Errorf("node-b's claim: %v, %v", ok, err)
						}
					} else if ok, err := b.Work(e.ctx); !ok || err != nil {
						t.Errorf("node-b's takeover: %v, %v", ok, err)
					}
					return nil
				}
			})
			if _, err := a.Plan(e.ctx); err != nil {
				t.Fatal(err)
			}
			ok, err := a.Work(e.ctx)
			if !ok || !errors.Is(err, ErrLostLease) {
				t.Fatalf("node-a's Work after losing its lease = %v, %v; want ErrLostLease", ok, err)
			}
			if name == "held by the other" {
				if n := len(e.segments()); n != 0 {
					t.Fatalf("%d segments committed by a node without the lease", n)
				}
			}
			e.runUntilDrained(b)
			e.checkConverged()
		})
	}
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
	jobs, err := c.Jobs(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Stream != "s" || jobs[0].Base != 0 || jobs[0].Last != 9 || jobs[0].Owner != "node-a" ||
		jobs[0].OwnerEpoch != 1 || jobs[0].Attempts != 1 || jobs[0].LastError == "" || jobs[0].LeaseUntil.IsZero() {
		t.Fatalf("Jobs = %+v; want the failed job with node-a's claim and its error", jobs)
	}
	if n := e.count(`SELECT count(*) FROM journal_ranges`); n != 2 {
		t.Fatalf("%d ranges left, want both", n)
	}
	if n := len(e.segments()); n != 0 {
		t.Fatalf("%d segments committed from a damaged block", n)
	}
	if _, err := c.RunOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM journal_objects`); n != 2 {
		t.Fatalf("%d journal objects left, want both", n)
	}
}

// upload puts a Parquet object for recs as a compaction would, with no
// catalog segment.
func (e *env) upload(stream string, recs []tiers.Record) string {
	e.t.Helper()
	m := tiers.SegmentMeta{Stream: stream, Base: recs[0].Offset, Last: recs[len(recs)-1].Offset, Count: uint64(len(recs)),
		SealedAt: time.Now().UTC(), Placements: tiers.Of(tiers.Cold), MinTS: recs[0].TS, MaxTS: recs[0].TS}
	d := tiers.NewDigester()
	for i := range recs {
		d.Add(&recs[i])
		m.MinTS, m.MaxTS = min(m.MinTS, recs[i].TS), max(m.MaxTS, recs[i].TS)
	}
	m.Digest = d.Sum()
	seq := func(yield func(tiers.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
	if _, err := e.cold.Upload(e.ctx, m, seq); err != nil {
		e.t.Fatal(err)
	}
	return cold.ObjectKey(m)
}

func (e *env) exists(key string) bool {
	e.t.Helper()
	_, err := e.bucket.Stat(e.ctx, key)
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

// TestCollectsOrphans: objects nothing refers to go once older than
// gc_delay — a journal object without a row, a Parquet object whose
// records other segments hold — and everything else stays: a journal
// object with live ranges, a Parquet object of an open job, one whose
// records no segment holds.
func TestCollectsOrphans(t *testing.T) {
	e := newEnv(t)
	writeSome(e, 4)
	c := e.compactor("node-a", 1<<20, nil)
	e.runUntilDrained(c)

	live := e.write(batch{"a", 3}) // a row, live ranges: stays
	orphanJournal := JournalPrefix + "crashed-node/7/00000000000000000001"
	if err := e.bucket.Put(e.ctx, orphanJournal, bytes.NewReader([]byte("torn")), 4); err != nil {
		t.Fatal(err)
	}
	a := e.written["a"]
	coveredOrphan := e.upload("a", a[1:4]) // inside segment [0, ...]: held there
	var extra []tiers.Record
	for i := range 3 {
		r := a[i]
		r.Offset = 1000 + uint64(i)
		extra = append(extra, r)
	}
	ofJob := e.upload("a", extra) // an open job's upload
	if _, err := e.pool.Exec(e.ctx, `INSERT INTO compaction_jobs (stream, base, last_offset) VALUES ('a', 1000, 1002)`); err != nil {
		t.Fatal(err)
	}
	for i := range extra {
		extra[i].Offset += 1000
	}
	nowhere := e.upload("b", extra) // offsets no segment of b holds

	young := e.compactor("node-b", 1<<20, func(o *Options) { o.GCDelay = time.Hour })
	if n, err := young.CollectOrphans(e.ctx); err != nil || n != 0 {
		t.Fatalf("CollectOrphans with gc_delay 1h = %d, %v; want nothing deleted", n, err)
	}
	n, err := c.CollectOrphans(e.ctx)
	if err != nil || n != 2 {
		t.Fatalf("CollectOrphans = %d, %v; want the orphan journal object and the covered Parquet object", n, err)
	}
	for key, want := range map[string]bool{live: true, orphanJournal: false, coveredOrphan: false, ofJob: true, nowhere: true} {
		if got := e.exists(key); got != want {
			t.Errorf("%s exists: %v, want %v", key, got, want)
		}
	}
}

// TestRunLoop: Run does by itself, at its intervals, what RunOnce does,
// and returns when its context ends.
func TestRunLoop(t *testing.T) {
	e := newEnv(t)
	writeSome(e, 5)
	c := e.compactor("node-a", 800, func(o *Options) {
		o.PlanInterval, o.WorkInterval, o.GCInterval, o.OrphanInterval = 30*time.Millisecond, 10*time.Millisecond, 30*time.Millisecond, 50*time.Millisecond
	})
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(90 * time.Second)
	for !e.drained() {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("Run did not drain the journal in 90s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its context ended")
	}
	e.checkConverged()
}

// TestPostgresRestartedMidJob: PostgreSQL restarts between a job's upload
// and its commit. Whether that commit fails (its connection cut) or lands
// (the pool dialled again), nothing is half done, and once the server is
// back every job ends committed once and the end state is exact.
func TestPostgresRestartedMidJob(t *testing.T) {
	pg := testenv.StartDedicatedPostgres(t)
	b, err := objstore.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvPG(t, b, pg)
	writeSome(e, 4)
	var restarted atomic.Bool
	c := e.compactor("node-a", 700, func(o *Options) {
		o.PGTimeout = 20 * time.Second
		o.Failpoint = func(step string) error {
			if step == StepAfterUpload && !restarted.Swap(true) {
				pg.Restart()
			}
			return nil
		}
	})
	if _, err := c.Plan(e.ctx); err != nil {
		t.Fatal(err)
	}
	// The commit fails on the connection the restart cut, or succeeds when
	// the pool found that connection dead and dialled again: both are
	// right; what must hold is the end state.
	ok, err := c.Work(e.ctx)
	if !ok {
		t.Fatalf("Work across a restart found no job (err %v)", err)
	}
	if !restarted.Load() {
		t.Fatal("the failpoint never restarted PostgreSQL")
	}
	t.Logf("the job's first attempt across the restart: %v", err)
	e.runUntilDrained(c)
	e.checkConverged()
}
