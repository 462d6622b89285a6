package sequencer_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/cluster/registry"
	"github.com/tierd/tierd/cluster/sequencer"
	"github.com/tierd/tierd/journal"
	"github.com/tierd/tierd/tiers"
)

func producer() tiers.ProducerID {
	var id tiers.ProducerID
	rand.Read(id[:])
	return id
}

// TestDenseOffsetsManyAppenders: 8 goroutines append to 3 streams at once;
// every stream's offsets are dense from 0, every acknowledged batch is at
// its offsets in the objects, few objects carry many batches (group
// commit), and OnCommit sees exactly what was committed.
func TestDenseOffsetsManyAppenders(t *testing.T) {
	e := newEnv(t, envOpts{})
	var mu sync.Mutex
	var commits []sequencer.Committed
	s := e.seq(e.join("n1"), sequencer.Options{
		OnCommit: func(c sequencer.Committed) {
			mu.Lock()
			commits = append(commits, c)
			mu.Unlock()
		},
	})
	l := newLedger()
	streams := []string{"alpha", "beta", "gamma"}
	const writers, perWriter = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				stream := streams[(w+i)%len(streams)]
				rs := recs(fmt.Sprintf("%s/w%d/b%d", stream, w, i), 1+(w*7+i)%5)
				res, err := s.Append(e.ctx, stream, tiers.Producer{}, rs)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				if res.Duplicate {
					t.Errorf("plain append answered duplicate: %+v", res)
				}
				l.ack(t, stream, res, rs)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	counts := e.verify(l)
	total := 0
	for _, st := range streams {
		if counts[st] != len(l.want[st]) {
			t.Fatalf("stream %s: %d records stored, %d acknowledged", st, counts[st], len(l.want[st]))
		}
		total += counts[st]
	}
	objs := e.objects()
	if n := e.count(`SELECT count(*) FROM journal_ranges`); n != writers*perWriter {
		t.Fatalf("%d ranges for %d batches", n, writers*perWriter)
	}
	if len(objs) >= writers*perWriter/2 {
		t.Fatalf("%d objects for %d batches: flushes do not group", len(objs), writers*perWriter)
	}
	// OnCommit: each committed object's ranges, decoded from Data alone,
	// match the rows.
	mu.Lock()
	defer mu.Unlock()
	seen := 0
	lastKey, lastOff := "", map[string]uint64{}
	for _, c := range commits {
		// Flushes overlap, commits do not: objects commit in key order,
		// and a later object's offsets follow an earlier one's.
		if c.Key <= lastKey {
			t.Fatalf("OnCommit order: %s after %s", c.Key, lastKey)
		}
		lastKey = c.Key
		for _, r := range c.Ranges {
			if r.First < lastOff[r.Stream] {
				t.Fatalf("object %s: stream %s range at %d after offset %d of an earlier object", c.Key, r.Stream, r.First, lastOff[r.Stream])
			}
			lastOff[r.Stream] = r.Last + 1
		}
		for _, r := range c.Ranges {
			blk, err := journal.DecodeBlock(c.Data[r.Off:r.Off+r.Len], journal.BlockCheck{Key: c.Key, Pos: r.Off, Stream: r.Stream, Records: int(r.Last - r.First + 1), First: r.First})
			if err != nil {
				t.Fatalf("OnCommit range %+v: %v", r, err)
			}
			for _, rec := range blk.Records {
				if l.want[r.Stream][rec.Offset] != string(rec.Value) {
					t.Fatalf("OnCommit %s offset %d: %q", r.Stream, rec.Offset, rec.Value)
				}
				seen++
			}
		}
	}
	if seen != total || len(commits) != len(objs) {
		t.Fatalf("OnCommit saw %d records in %d objects; %d records in %d objects stored", seen, len(commits), total, len(objs))
	}
}

// TestTwoNodes: two nodes (two sequencers with their own ids and objects)
// append at once, to one stream and then to three streams every flush of
// either node touches (their row locks taken in name order, so flushes
// queue rather than deadlock); each stream stays dense, no offset given
// twice.
func TestTwoNodes(t *testing.T) {
	for _, streams := range [][]string{{"shared"}, {"z", "x", "y"}} {
		t.Run(fmt.Sprint(len(streams)), func(t *testing.T) {
			e := newEnv(t, envOpts{})
			a := e.seq(e.join("node-a"), sequencer.Options{FlushInterval: 10 * time.Millisecond})
			b := e.seq(e.join("node-b"), sequencer.Options{FlushInterval: 15 * time.Millisecond})
			l := newLedger()
			var wg sync.WaitGroup
			for w := range 6 {
				s := a
				if w%2 == 1 {
					s = b
				}
				wg.Go(func() {
					for i := range 30 {
						stream := streams[(w+i)%len(streams)]
						rs := recs(fmt.Sprintf("w%d/b%d", w, i), 1+i%4)
						res, err := s.Append(e.ctx, stream, tiers.Producer{}, rs)
						if err != nil {
							t.Errorf("append: %v", err)
							return
						}
						l.ack(t, stream, res, rs)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			counts := e.verify(l)
			for _, st := range streams {
				if counts[st] != len(l.want[st]) {
					t.Fatalf("stream %s: %d stored, %d acknowledged", st, counts[st], len(l.want[st]))
				}
			}
			for _, node := range []string{"node-a", "node-b"} {
				if e.count(`SELECT count(*) FROM journal_objects WHERE node_id = $1`, node) == 0 {
					t.Fatalf("node %s committed nothing", node)
				}
			}
		})
	}
}

// TestProducerRetries: the idempotent producer's rules of local mode, held
// by the commit: a retry of the last batch is a duplicate with its offsets
// (through either node, in the same flush or a later one); an older
// sequence or a retry with another count is refused; nothing is written
// twice.
func TestProducerRetries(t *testing.T) {
	e := newEnv(t, envOpts{})
	a := e.seq(e.join("a"), sequencer.Options{})
	b := e.seq(e.join("b"), sequencer.Options{})
	p := producer()
	r1, err := a.Append(e.ctx, "s", tiers.Producer{ID: p, Seq: 1}, recs("one", 3))
	if err != nil || r1 != (sequencer.Result{First: 0, Last: 2, Count: 3}) {
		t.Fatalf("first batch: %+v %v", r1, err)
	}
	if _, err := a.Append(e.ctx, "s", tiers.Producer{}, recs("plain", 2)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*sequencer.Sequencer{a, b} {
		dup, err := s.Append(e.ctx, "s", tiers.Producer{ID: p, Seq: 1}, recs("one", 3))
		if err != nil || dup != (sequencer.Result{First: 0, Last: 2, Count: 3, Duplicate: true}) {
			t.Fatalf("retry: %+v %v", dup, err)
		}
	}
	if _, err := a.Append(e.ctx, "s", tiers.Producer{ID: p, Seq: 1}, recs("one", 2)); !errors.Is(err, tiers.ErrProducerSequence) {
		t.Fatalf("retry with another count: %v", err)
	}
	r2, err := b.Append(e.ctx, "s", tiers.Producer{ID: p, Seq: 5}, recs("five", 1))
	if err != nil || r2 != (sequencer.Result{First: 5, Last: 5, Count: 1}) {
		t.Fatalf("next batch (a gap in seq is allowed): %+v %v", r2, err)
	}
	if _, err := a.Append(e.ctx, "s", tiers.Producer{ID: p, Seq: 4}, recs("four", 1)); !errors.Is(err, tiers.ErrProducerSequence) {
		t.Fatalf("older seq: %v", err)
	}
	// The same producer id in another stream is another sequence.
	if r, err := a.Append(e.ctx, "other", tiers.Producer{ID: p, Seq: 1}, recs("o", 1)); err != nil || r.Duplicate {
		t.Fatalf("other stream: %+v %v", r, err)
	}
	// A batch and its retry in one flush: one copy, both answers agree.
	var wg sync.WaitGroup
	res := make([]sequencer.Result, 4)
	errs := make([]error, 4)
	for i := range res {
		wg.Go(func() { res[i], errs[i] = a.Append(e.ctx, "s", tiers.Producer{ID: p, Seq: 6}, recs("six", 2)) })
	}
	wg.Wait()
	dups := 0
	for i := range res {
		if errs[i] != nil || res[i].First != 6 || res[i].Last != 7 {
			t.Fatalf("concurrent retries: %+v %v", res[i], errs[i])
		}
		if res[i].Duplicate {
			dups++
		}
	}
	if dups != 3 {
		t.Fatalf("%d of 4 identical batches answered duplicate, want 3", dups)
	}
	if counts := e.verify(nil); counts["s"] != 8 || counts["other"] != 1 {
		t.Fatalf("stored %v, want s:8 other:1", counts)
	}
	var seq int64
	if err := e.pool.QueryRow(e.ctx, `SELECT seq FROM cluster_producers WHERE stream = 's' AND producer_id = $1`, p[:]).Scan(&seq); err != nil || seq != 6 {
		t.Fatalf("producer row: seq %d %v", seq, err)
	}
}

// TestProducerTTL: a commit forgets the producers idle past ProducerTTL
// in the streams it locks (a retry after that is a new batch, as in local
// mode), and leaves other streams' alone.
func TestProducerTTL(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := e.seq(e.join("n"), sequencer.Options{ProducerTTL: 200 * time.Millisecond})
	p := tiers.Producer{ID: producer(), Seq: 5}
	for _, stream := range []string{"s", "other"} {
		if _, err := s.Append(e.ctx, stream, p, recs("p", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := s.Append(e.ctx, "s", p, recs("p", 1)); err != nil || !r.Duplicate {
		t.Fatalf("retry within the TTL: %+v %v", r, err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("plain", 1)); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM cluster_producers WHERE stream = 's'`); n != 0 {
		t.Fatalf("%d producer rows of s after the TTL and a commit, want 0", n)
	}
	if n := e.count(`SELECT count(*) FROM cluster_producers WHERE stream = 'other'`); n != 1 {
		t.Fatalf("%d producer rows of a stream the commit did not lock, want 1", n)
	}
	if r, err := s.Append(e.ctx, "s", p, recs("p", 1)); err != nil || r.Duplicate || r.First != 2 {
		t.Fatalf("the forgotten producer's batch: %+v %v", r, err)
	}
}

// TestFencing: a second Join with the same node id fences the running
// sequencer: its next flush fails with ErrFenced and writes no row, and it
// refuses every append after that; the new process writes on.
func TestFencing(t *testing.T) {
	e := newEnv(t, envOpts{})
	old := e.seq(e.join("n"), sequencer.Options{})
	if _, err := old.Append(e.ctx, "s", tiers.Producer{}, recs("before", 2)); err != nil {
		t.Fatal(err)
	}
	newReg := e.join("n")
	_, err := old.Append(e.ctx, "s", tiers.Producer{}, recs("after", 2))
	if !errors.Is(err, registry.ErrFenced) || !errors.Is(err, tiers.ErrStorageFailed) {
		t.Fatalf("append of the fenced process: %v", err)
	}
	if _, err := old.Append(e.ctx, "s", tiers.Producer{}, recs("again", 1)); !errors.Is(err, registry.ErrFenced) {
		t.Fatalf("append after fencing: %v", err)
	}
	if old.Err() == nil || !errors.Is(old.LastFlushError(), registry.ErrFenced) {
		t.Fatalf("after fencing: Err %v, LastFlushError %v", old.Err(), old.LastFlushError())
	}
	if next := e.nextOffsets()["s"]; next != 2 {
		t.Fatalf("next_offset %d after the fenced flush, want 2", next)
	}
	if n := e.count(`SELECT count(*) FROM journal_objects`); n != 1 {
		t.Fatalf("%d object rows, want 1 (the fenced flush's object is garbage)", n)
	}
	cur := e.seq(newReg, sequencer.Options{})
	r, err := cur.Append(e.ctx, "s", tiers.Producer{}, recs("new", 1))
	if err != nil || r.First != 2 {
		t.Fatalf("the new process: %+v %v", r, err)
	}
	e.verify(nil)
	if got := e.objects(); len(got) != 3 {
		t.Fatalf("objects %v, want 3 (two committed, one orphan)", got)
	}
}

// TestFencedByHeartbeat: the registry's heartbeat finding a newer epoch
// stops the sequencer before its next flush, without a commit attempt.
func TestFencedByHeartbeat(t *testing.T) {
	e := newEnv(t, envOpts{})
	reg, err := registry.Join(e.ctx, e.pool, "hb", "test", "", registry.Options{HeartbeatInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Leave(context.Background()) })
	s := e.seq(reg, sequencer.Options{})
	e.join("hb")
	deadline := time.Now().Add(time.Minute)
	for s.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the sequencer never learned of the fencing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("x", 1)); !errors.Is(err, registry.ErrFenced) {
		t.Fatalf("append: %v", err)
	}
	if n := len(e.objects()); n != 0 {
		t.Fatalf("%d objects written by a fenced node", n)
	}
}

// TestInvalidInput: bad batches are refused before they reach an object.
func TestInvalidInput(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := e.seq(e.join("n"), sequencer.Options{MaxPendingBytes: 1 << 20})
	big := []tiers.Record{{Value: make([]byte, 2<<20)}}
	for _, tc := range []struct {
		name   string
		stream string
		p      tiers.Producer
		recs   []tiers.Record
		want   error
	}{
		{"bad stream", "../x", tiers.Producer{}, recs("a", 1), tiers.ErrInvalidStreamName},
		{"no records", "s", tiers.Producer{}, nil, tiers.ErrInvalidRecord},
		{"seq without id", "s", tiers.Producer{Seq: 1}, recs("a", 1), tiers.ErrInvalidRecord},
		{"id without seq", "s", tiers.Producer{ID: producer()}, recs("a", 1), tiers.ErrInvalidRecord},
		{"seq past bigint", "s", tiers.Producer{ID: producer(), Seq: math.MaxInt64 + 1}, recs("a", 1), tiers.ErrInvalidRecord},
		{"bad key", "s", tiers.Producer{}, []tiers.Record{{Key: "\xff"}}, tiers.ErrInvalidRecord},
		{"over the pending cap", "s", tiers.Producer{}, big, tiers.ErrBatchOverBudget},
	} {
		if _, err := s.Append(e.ctx, tc.stream, tc.p, tc.recs); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A good batch after the refusals: the object is whole.
	if r, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("ok", 2)); err != nil || r.First != 0 {
		t.Fatalf("good batch: %+v %v", r, err)
	}
	e.verify(nil)
}

// TestCloseFlushesAndRefuses: Close commits what was collected, then
// Append answers ErrClosed.
func TestCloseFlushesAndRefuses(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := e.seq(e.join("n"), sequencer.Options{FlushInterval: time.Hour})
	// The first flush goes at once; the next would wait an hour.
	if _, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("first", 1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("last", 3))
		done <- err
	}()
	// Let the append join the collecting object.
	time.Sleep(100 * time.Millisecond)
	if len(done) > 0 {
		t.Fatalf("the append was answered before Close: %v", <-done)
	}
	if err := s.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("append collected before Close: %v", err)
	}
	if _, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("x", 1)); !errors.Is(err, tiers.ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
	if next := e.nextOffsets()["s"]; next != 4 {
		t.Fatalf("next_offset %d, want 4", next)
	}
}

// TestCanceledAppendMayCommit: an Append whose ctx ends while it waits
// returns the ctx's error, and its batch is committed all the same — what
// the doc comment promises, and why producers retry.
func TestCanceledAppendMayCommit(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := e.seq(e.join("n"), sequencer.Options{FlushInterval: 300 * time.Millisecond})
	// A flush just started: the next batch waits for the cadence.
	if _, err := s.Append(e.ctx, "s", tiers.Producer{}, recs("first", 1)); err != nil {
		t.Fatal(err)
	}
	p := producer()
	gone, stop := context.WithCancel(e.ctx)
	stop()
	if _, err := s.Append(gone, "s", tiers.Producer{ID: p, Seq: 1}, recs("never", 5)); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a canceled ctx: %v", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.Append(ctx, "s", tiers.Producer{ID: p, Seq: 1}, recs("c", 2)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("canceled append: %v", err)
	}
	r, err := s.Append(e.ctx, "s", tiers.Producer{ID: p, Seq: 1}, recs("c", 2))
	if err != nil || !r.Duplicate || r.First != 1 {
		t.Fatalf("retry after the cancel: %+v %v", r, err)
	}
}

// TestNotify: each commit notifies tierd_commits with stream:next_offset.
func TestNotify(t *testing.T) {
	e := newEnv(t, envOpts{})
	conn, err := pgx.Connect(e.ctx, e.pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(e.ctx, "LISTEN tierd_commits"); err != nil {
		t.Fatal(err)
	}
	s := e.seq(e.join("n"), sequencer.Options{})
	if _, err := s.Append(e.ctx, "s.1", tiers.Producer{}, recs("n", 4)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.WaitForNotification(e.ctx)
	if err != nil || n.Channel != "tierd_commits" || n.Payload != "s.1:4" {
		t.Fatalf("notification %+v %v", n, err)
	}
}

// TestMetrics: the flush metrics count what happened.
func TestMetrics(t *testing.T) {
	e := newEnv(t, envOpts{})
	reg := prometheus.NewRegistry()
	s := e.seq(e.join("n"), sequencer.Options{Registerer: reg})
	for i := range 3 {
		if _, err := s.Append(e.ctx, "s", tiers.Producer{}, recs(fmt.Sprint(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
		if mf.GetName() == "tierd_sequencer_flushes_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 3 {
				t.Fatalf("flushes %v, want 3", v)
			}
		}
	}
	for _, name := range []string{"tierd_sequencer_flushes_total", "tierd_sequencer_object_bytes", "tierd_sequencer_put_duration_seconds",
		"tierd_sequencer_commit_duration_seconds", "tierd_sequencer_batches_per_flush", "tierd_sequencer_append_duration_seconds", "tierd_sequencer_pending_bytes"} {
		if !got[name] {
			t.Errorf("metric %s missing", name)
		}
	}
}
