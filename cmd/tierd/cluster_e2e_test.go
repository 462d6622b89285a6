package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/testenv"
)

// The promises of cluster mode (issue 13, "What must hold"), each on real
// tierd processes sharing a real MinIO bucket and a real PostgreSQL
// database: a node killed with kill -9 and its disk thrown away loses
// nothing acknowledged; a stream written through every node at once stays
// dense and keeps a Producer's order; an outage of either shared engine
// answers 503 and loses nothing; a long poll on one node wakes on another
// node's commit.

// TestClusterNodeLoss: three nodes, writers sending batches to random
// nodes for several streams, and one node at a time killed with kill -9,
// its data directory deleted and started again with its node_id on an
// empty one, several times under load. Afterwards every acknowledged
// batch is readable exactly once at its acknowledged offsets through every
// node, unacknowledged batches are whole or absent, offsets are dense, and
// verify is clean.
func TestClusterNodeLoss(t *testing.T) {
	m := testenv.StartMinIO(t)
	useMinIOCredentials(t, m)
	pg := testenv.StartPostgres(t)
	// Small segments and a short gc_delay, so compaction and GC run
	// while nodes die.
	spec := clusterSpec{dsn: pg.DSN, store: m.URL("aws"), gcDelay: "2s", extra: `max_record_bytes: 16KiB
segment: {max_bytes: 64KiB, max_age: 2s}
`}
	nodes := startNodes(t, spec, 3)
	epochs := clusterStatus(t, nodes[0])
	restarts := map[string]int64{}
	streams := []string{"loss-a", "loss-b", "loss-c", "loss-d"}
	l := newClLedger()

	ctx, stop := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		failures atomic.Int64
	)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clWriter(ctx, w, nodes, streams, l, 20, func(appendFailure) { failures.Add(1) })
		}()
	}
	rng := rand.New(rand.NewPCG(7, 7))
	const kills = 4
	for k := range kills {
		time.Sleep(1500 * time.Millisecond)
		n := nodes[k%len(nodes)] // each node dies at least once
		sent, acked := l.counts()
		t.Logf("kill %d: node %s (so far %d batches sent, %d acknowledged)", k+1, n.id, sent, acked)
		n.killWipeRestart(t)
		restarts[n.id]++
	}
	time.Sleep(1500 * time.Millisecond)
	stop()
	wg.Wait()
	sent, acked := l.counts()
	t.Logf("%d batches sent, %d acknowledged, %d appends failed", sent, acked, failures.Load())
	if acked < sent/2 {
		t.Fatalf("only %d of %d batches acknowledged: the cluster did not serve under load", acked, sent)
	}
	checkCluster(t, nodes, streams, l)
	verifyClean(t, nodes[rng.IntN(len(nodes))])
	// Compaction ran meanwhile: the reads above went through Parquet
	// segments as well as journal objects.
	cold := 0
	for _, s := range streams {
		segs, err := nodes[0].c.Segments(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		for _, sg := range segs {
			if slices.Contains(sg.Tiers, "cold") {
				cold++
			}
		}
	}
	t.Logf("%d Parquet segments", cold)
	if cold == 0 {
		t.Errorf("no stream has a Parquet segment after %d kills with segment.max_age 2s: compaction did not run", kills)
	}
	// Each restart took a new epoch, and every node is live again.
	now := clusterStatus(t, nodes[2])
	for _, n := range nodes {
		s := now[n.id]
		if !s.Live || s.Epoch != epochs[n.id].Epoch+restarts[n.id] {
			t.Errorf("node %s: cluster status %+v after %d restarts from epoch %d", n.id, s, restarts[n.id], epochs[n.id].Epoch)
		}
	}
}

// TestClusterSameIDFences starts a second process with a live node's
// node_id: it takes over at once, and the first process, still running,
// refuses every append from its next flush on (503 storage_failed, and
// /healthz says fenced), so that two processes never write as one node.
func TestClusterSameIDFences(t *testing.T) {
	m := testenv.StartMinIO(t)
	useMinIOCredentials(t, m)
	pg := testenv.StartPostgres(t)
	spec := clusterSpec{dsn: pg.DSN, store: m.URL("aws")}
	old := startNode(t, spec, "n1")
	other := startNode(t, spec, "n2")
	l := newClLedger()
	streams := []string{"fence"}
	waitWritable(t, old, streams[0], l, 30*time.Second)
	fresh := startNode(t, spec, "n1") // the same id, its own data_dir and port
	waitWritable(t, fresh, streams[0], l, 30*time.Second)

	b := newClBatch("after-fence", streams[0], 2, 8)
	l.add(b)
	_, err := old.c.AppendBatch(context.Background(), b.stream, b.records())
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != api.CodeStorageFailed {
		t.Fatalf("an append through the fenced process answered %v; want 503 storage_failed", err)
	}
	resp, err := http.Get(old.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "fenced") {
		t.Fatalf("/healthz of the fenced process: %d %s; want 503 naming fenced", resp.StatusCode, body)
	}
	// Its refusal stored nothing, and the others serve what both wrote.
	waitWritable(t, other, streams[0], l, 30*time.Second)
	checkCluster(t, []*clusterNode{fresh, other}, streams, l)
}

// TestClusterOneStreamManyNodes writes one stream through all three nodes
// at once: plain batches from writers, and an idempotent Producer per node
// whose records carry its sequence number. The stream stays dense without
// a duplicate; each Producer's records keep their order (sequence
// increasing with offset); and a record acknowledged by one node is
// readable at once through another.
func TestClusterOneStreamManyNodes(t *testing.T) {
	m := testenv.StartMinIO(t)
	useMinIOCredentials(t, m)
	pg := testenv.StartPostgres(t)
	nodes := startNodes(t, clusterSpec{dsn: pg.DSN, store: m.URL("aws")}, 3)
	const stream = "shared"
	streams := []string{stream}
	l := newClLedger()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var failMu sync.Mutex
	var fails []appendFailure
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One writer per node, so each node sequences its own flushes
			// of the stream against the others'.
			clWriter(ctx, w, nodes[w:w+1], streams, l, 10, func(f appendFailure) {
				failMu.Lock()
				fails = append(fails, f)
				failMu.Unlock()
			})
		}()
	}

	// Read-your-writes across nodes: what one node acknowledged, the next
	// serves at once.
	var crossReads atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			a, b := nodes[i%3], nodes[(i+1)%3]
			batch := newClBatch(fmt.Sprintf("cross-%d", i), stream, 3, 10)
			l.add(batch)
			r, err := a.c.AppendBatch(ctx, stream, batch.records())
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("append through %s: %v", a.id, err)
				}
				return
			}
			batch.ack(r)
			last := r.LastOffset
			var got []client.Record
			for rec, err := range b.c.Read(context.Background(), stream, client.Query{From: r.FirstOffset, To: &last}) {
				if err != nil {
					t.Errorf("read through %s of [%d,%d], just acknowledged by %s: %v", b.id, r.FirstOffset, last, a.id, err)
					return
				}
				got = append(got, rec)
			}
			if len(got) != 3 || string(got[0].Bytes()) != string(batch.values[0]) || string(got[2].Bytes()) != string(batch.values[2]) {
				t.Errorf("read through %s of [%d,%d], just acknowledged by %s: %d records %v", b.id, r.FirstOffset, last, a.id, len(got), got)
				return
			}
			crossReads.Add(1)
		}
	}()

	// An idempotent Producer per node; OnBatch records what was persisted.
	type producerLog struct {
		producer string
		batches  []*clBatch
	}
	var pmu sync.Mutex
	perProducer := map[string]*producerLog{}
	var producers []*client.Producer
	for pi, n := range nodes {
		pid := fmt.Sprintf("p%d", pi)
		perProducer[pid] = &producerLog{producer: pid}
		p := client.NewProducer(n.c, client.ProducerOptions{
			BatchRecords: 20, Linger: 2 * time.Millisecond, Workers: 2, Policy: client.Block, QueueSize: 500,
			OnBatch: func(o *client.Outcome) {
				if o.Err != nil {
					t.Errorf("producer %s through %s: batch failed: %v", pid, n.id, o.Err)
					return
				}
				// The ledger wants a batch id per batch: this one is the
				// producer's and its first sequence number.
				var first clValue
				json.Unmarshal(o.Records[0].Value, &first)
				b := &clBatch{id: first.B, stream: o.Stream, producer: pid}
				for _, r := range o.Records {
					var v clValue
					json.Unmarshal(r.Value, &v)
					b.values = append(b.values, slices.Clone(r.Value))
					b.seqs = append(b.seqs, v.S)
				}
				b.ack(client.AppendResult{FirstOffset: o.FirstOffset, LastOffset: o.LastOffset})
				pmu.Lock()
				perProducer[pid].batches = append(perProducer[pid].batches, b)
				pmu.Unlock()
			},
		})
		producers = append(producers, p)
	}
	// A Producer batches records as it likes, so a record's value cannot
	// name its batch before the batch exists: each record is its own
	// "batch" of one for the ledger, which is what wholeness means for
	// records sent one by one.
	var sends sync.WaitGroup
	for pi, p := range producers {
		sends.Add(1)
		go func() {
			defer sends.Done()
			pid := fmt.Sprintf("p%d", pi)
			for s := 1; ctx.Err() == nil && s <= 3000; s++ {
				id := fmt.Sprintf("%s-%d", pid, s)
				v, _ := json.Marshal(clValue{B: id, I: 0, N: 1, P: pid, S: s, Pad: "y"})
				if err := p.Send(stream, client.Record{Key: pid, Value: v}); err != nil {
					t.Errorf("producer %s: Send: %v", pid, err)
					return
				}
			}
		}()
	}
	sends.Wait()
	fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer fcancel()
	for i, p := range producers {
		if err := p.Close(fctx); err != nil {
			t.Fatalf("producer p%d: Close: %v", i, err)
		}
	}
	time.Sleep(500 * time.Millisecond) // the writers keep writing meanwhile
	stop()
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d appends failed with every node up, the first through %s: %v", len(fails), fails[0].node, fails[0].err)
	}
	if t.Failed() {
		return
	}
	// The Producers' records enter the ledger as batches of one.
	for _, s := range perProducer {
		for _, b := range s.batches {
			for k, v := range b.values {
				var cv clValue
				json.Unmarshal(v, &cv)
				one := &clBatch{id: cv.B, stream: stream, values: [][]byte{v}, producer: s.producer, seqs: []int{cv.S}}
				one.ack(client.AppendResult{FirstOffset: b.first + uint64(k), LastOffset: b.first + uint64(k)})
				l.add(one)
			}
		}
	}
	sent, acked := l.counts()
	t.Logf("%d batches (Producer records counted one by one), %d acknowledged; %d cross-node reads", sent, acked, crossReads.Load())
	if crossReads.Load() == 0 {
		t.Fatal("no cross-node read was made")
	}
	recs := checkCluster(t, nodes, streams, l)[stream]

	// Each Producer's records: all 3000, in sequence order along offsets.
	lastSeq := map[string]int{}
	count := map[string]int{}
	for _, r := range recs {
		v := parseClValue(t, stream, r)
		if v.P == "" {
			continue
		}
		if v.S <= lastSeq[v.P] {
			t.Fatalf("producer %s: sequence %d at offset %d after sequence %d: order broken", v.P, v.S, r.Offset, lastSeq[v.P])
		}
		lastSeq[v.P] = v.S
		count[v.P]++
	}
	for pid := range perProducer {
		if count[pid] != 3000 {
			t.Fatalf("producer %s: %d of 3000 records in the stream", pid, count[pid])
		}
	}
	verifyClean(t, nodes[0])
}

// TestClusterMinIOStopped stops the object store in the middle of the load:
// appends answer 503 with Retry-After and a code saying why, nothing
// acknowledged is lost, and once MinIO is back writes resume and verify is
// clean.
func TestClusterMinIOStopped(t *testing.T) {
	m := testenv.StartDedicatedMinIO(t)
	useMinIOCredentials(t, m)
	pg := testenv.StartPostgres(t)
	nodes := startNodes(t, clusterSpec{dsn: pg.DSN, store: m.URL("aws")}, 2)
	outage(t, nodes, "minio", m.Stop, m.Restart, nil)
}

// TestClusterPostgresRestarted restarts PostgreSQL in the middle of the
// load: appends answer 503 meanwhile, nothing acknowledged is lost, and
// afterwards writes resume and verify is clean.
func TestClusterPostgresRestarted(t *testing.T) {
	m := testenv.StartMinIO(t)
	useMinIOCredentials(t, m)
	pg := testenv.StartDedicatedPostgres(t)
	nodes := startNodes(t, clusterSpec{dsn: pg.DSN, store: m.URL("aws")}, 2)
	// Then two restarts in a row, under load: connections cut during
	// commits, whose answers are lost (outcome_unknown).
	outage(t, nodes, "postgres", pg.Stop, pg.Start, pg.Restart)
}

// outage runs writers against nodes, takes a shared engine away with down,
// checks what appends answer meanwhile, brings it back with up, calls
// bounce (if set) twice under load, and checks that writes resume and
// nothing acknowledged was lost.
func outage(t *testing.T, nodes []*clusterNode, engine string, down, up, bounce func()) {
	t.Helper()
	streams := []string{engine + "-a", engine + "-b"}
	l := newClLedger()
	var (
		phase    atomic.Int32 // 0 before the outage, 1 during it, 2 after
		mu       sync.Mutex
		bad      []string
		refusals = map[string]int{}
	)
	onFail := func(f appendFailure) {
		mu.Lock()
		defer mu.Unlock()
		ok, code, why := unavailable(f.err)
		switch {
		case ok:
			refusals[code]++
		case phase.Load() == 0:
			bad = append(bad, fmt.Sprintf("before the outage, through %s: %v", f.node, f.err))
		default:
			bad = append(bad, fmt.Sprintf("through %s: %s", f.node, why))
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); clWriter(ctx, w, nodes, streams, l, 10, onFail) }()
	}
	time.Sleep(1500 * time.Millisecond)
	_, ackedBefore := l.counts()
	phase.Store(1)
	down()
	t.Logf("%s down after %d acknowledged batches", engine, ackedBefore)
	// While it is down, a direct probe through each node must be refused
	// with a 503 saying the storage is unavailable.
	for _, n := range nodes {
		deadline := time.Now().Add(60 * time.Second)
		for {
			b := newClBatch(fmt.Sprintf("down-%s-%d", n.id, time.Now().UnixNano()), streams[0], 1, 8)
			l.add(b)
			pctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			r, err := n.c.AppendBatch(pctx, b.stream, b.records())
			cancel()
			if err == nil {
				// Acknowledged with the engine down is a lie unless
				// something still holds it; the final check tells.
				b.ack(r)
				if time.Now().After(deadline) {
					t.Fatalf("node %s still acknowledges appends 60 s after %s stopped", n.id, engine)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			ok, code, why := unavailable(err)
			if !ok {
				t.Fatalf("node %s, %s down: append answered %s; want 503 + Retry-After, storage_unavailable or backpressure", n.id, engine, why)
			}
			t.Logf("node %s, %s down: append answered 503 %s", n.id, engine, code)
			break
		}
	}
	// Reads meanwhile: what a node holds in memory or in its disk cache
	// may be served; anything else must be a 503 saying which engine
	// failed (or the same error ending a read already under way), never a
	// wrong answer or a 500.
	for _, n := range nodes {
		rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		got := 0
		var rerr error
		for _, err := range n.c.Read(rctx, streams[0], client.Query{Limit: 100000}) {
			if err != nil {
				rerr = err
				break
			}
			got++
		}
		cancel()
		var ae *client.APIError
		switch {
		case rerr == nil:
			t.Logf("node %s, %s down: a read of %s served %d records", n.id, engine, streams[0], got)
		case errors.As(rerr, &ae) && (ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusOK) &&
			(ae.Code == api.CodeStorageUnavailable || ae.Code == api.CodeColdStoreUnavailable):
			t.Logf("node %s, %s down: a read of %s served %d records, then %s (HTTP %d)", n.id, engine, streams[0], got, ae.Code, ae.Status)
		default:
			t.Errorf("node %s, %s down: a read of %s served %d records, then %v; want a 503 storage_unavailable or cold_store_unavailable", n.id, engine, streams[0], got, rerr)
		}
	}
	// /healthz says so too (a load balancer's check), within a few of
	// the node's probes.
	for _, n := range nodes {
		waitFor(t, 30*time.Second, "node "+n.id+"'s /healthz to answer 503 while "+engine+" is down", func() (bool, string) {
			resp, err := clusterHTTP.Get(n.URL() + "/healthz")
			if err != nil {
				return false, err.Error()
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusServiceUnavailable, fmt.Sprintf("%d %s", resp.StatusCode, body)
		})
	}
	up()
	t.Logf("%s back", engine)
	for _, n := range nodes {
		waitWritable(t, n, streams[1], l, 90*time.Second)
	}
	if bounce != nil {
		for range 2 {
			time.Sleep(700 * time.Millisecond)
			bounce()
			t.Logf("%s bounced", engine)
		}
		for _, n := range nodes {
			waitWritable(t, n, streams[1], l, 90*time.Second)
		}
	}
	phase.Store(2)
	for _, n := range nodes {
		waitFor(t, 30*time.Second, "node "+n.id+"'s /healthz to answer 200 once "+engine+" is back", func() (bool, string) {
			resp, err := clusterHTTP.Get(n.URL() + "/healthz")
			if err != nil {
				return false, err.Error()
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, body)
		})
	}
	time.Sleep(1 * time.Second)
	stop()
	wg.Wait()
	_, ackedAfter := l.counts()
	mu.Lock()
	t.Logf("refusals during the outage by code: %v", refusals)
	if len(bad) > 0 {
		t.Fatalf("%d appends failed other than with 503 + Retry-After; the first: %s", len(bad), bad[0])
	}
	mu.Unlock()
	if ackedAfter <= ackedBefore {
		t.Fatalf("nothing acknowledged after %s came back (%d before, %d after)", engine, ackedBefore, ackedAfter)
	}
	checkCluster(t, nodes, streams, l)
	verifyClean(t, nodes[1])
}

// TestClusterLongPollAcrossNodes: a read with wait= on node B, past the end
// of a stream, returns the record appended through node A as soon as A
// commits it, not when the wait runs out.
func TestClusterLongPollAcrossNodes(t *testing.T) {
	m := testenv.StartMinIO(t)
	useMinIOCredentials(t, m)
	pg := testenv.StartPostgres(t)
	nodes := startNodes(t, clusterSpec{dsn: pg.DSN, store: m.URL("aws")}, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	const stream = "poll"
	first := newClBatch("first", stream, 1, 4)
	if _, err := a.c.AppendBatch(ctx, stream, first.records()); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		from := uint64(round + 1)
		type got struct {
			recs []client.Record
			err  error
			took time.Duration
		}
		done := make(chan got, 1)
		started := time.Now()
		go func() {
			var g got
			// A wait of 50 s: a reader woken by the commit answers in
			// well under a second; one that sleeps out its wait, in 50.
			for r, err := range b.c.Read(ctx, stream, client.Query{From: from, Wait: 50 * time.Second}) {
				if err != nil {
					g.err = err
					break
				}
				g.recs = append(g.recs, r)
			}
			g.took = time.Since(started)
			done <- g
		}()
		time.Sleep(500 * time.Millisecond)
		select {
		case g := <-done:
			t.Fatalf("round %d: the long poll on %s answered before anything was appended: %d records, %v", round, b.id, len(g.recs), g.err)
		default:
		}
		nb := newClBatch(fmt.Sprintf("wake-%d", round), stream, 1, 4)
		r, err := a.c.AppendBatch(ctx, stream, nb.records())
		if err != nil {
			t.Fatal(err)
		}
		if r.FirstOffset != from {
			t.Fatalf("round %d: appended at %d, want %d", round, r.FirstOffset, from)
		}
		g := <-done
		if g.err != nil {
			t.Fatalf("round %d: long poll on %s: %v", round, b.id, g.err)
		}
		if len(g.recs) != 1 || g.recs[0].Offset != from || string(g.recs[0].Bytes()) != string(nb.values[0]) {
			t.Fatalf("round %d: long poll on %s returned %v, want the record appended through %s at %d", round, b.id, g.recs, a.id, from)
		}
		// Generous: a woken poll answers in milliseconds; only a poll
		// that slept out its 50 s wait is wrong.
		if g.took > 25*time.Second {
			t.Fatalf("round %d: long poll on %s answered after %v: it was not woken by the commit on %s", round, b.id, g.took, a.id)
		}
		t.Logf("round %d: long poll on %s answered %v after it began (append made at 500 ms)", round, b.id, g.took.Round(time.Millisecond))
	}
}

// TestClusterCommitAnswerLost: a batch whose commit succeeded but whose
// answer was lost — the commit's answer lost in the network (the
// sequencer/after-commit failpoint's error), or the node killed right
// after the commit (its crash) — is answered 503 (retry), or not at all;
// the idempotent producer's retry, through another node, is answered
// duplicate with the offsets of the first attempt, and the batch is in the
// stream once.
func TestClusterCommitAnswerLost(t *testing.T) {
	m := testenv.StartMinIO(t)
	useMinIOCredentials(t, m)
	pg := testenv.StartPostgres(t)
	spec := clusterSpec{dsn: pg.DSN, store: m.URL("aws")}
	other := startNode(t, spec, "n0")
	l := newClLedger()
	const stream = "lost"
	for i, fp := range []string{"sequencer/after-commit=error@1", "sequencer/after-commit=crash@1"} {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "tierd.yaml")
		id := fmt.Sprintf("f%d", i)
		if err := os.WriteFile(cfg, []byte(spec.nodeConfig(id)), 0o644); err != nil {
			t.Fatal(err)
		}
		d := testenv.StartTierd(t, testenv.TierdOptions{Config: cfg, DataDir: filepath.Join(dir, "data"), Env: []string{"TIERD_FAILPOINTS=" + fp}})
		n := &clusterNode{Tierd: d, id: id, c: client.New(d.URL(), client.WithHTTPClient(clusterHTTP))}

		b := newClBatch(fmt.Sprintf("idem-%d", i), stream, 4, 8)
		l.add(b)
		idem := client.Idempotence{ProducerID: client.NewProducerID(), Seq: 1}
		_, err := n.c.AppendBatchIdempotent(context.Background(), stream, idem, b.records())
		if err == nil {
			t.Fatalf("%s: the append was answered as if nothing happened", fp)
		}
		var ae *client.APIError
		switch {
		case strings.HasSuffix(fp, "=crash@1"):
			<-n.Exited() // it died with the answer unsent
		case !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.RetryAfter <= 0:
			t.Errorf("%s: a commit whose answer was lost answered %v; want 503 + Retry-After (the producer retries it)", fp, err)
		}
		t.Logf("%s: the append answered %v", fp, err)
		r, err := other.c.AppendBatchIdempotent(context.Background(), stream, idem, b.records())
		if err != nil {
			t.Fatalf("%s: the producer's retry through %s: %v", fp, other.id, err)
		}
		if !r.Duplicate {
			t.Fatalf("%s: the retry of a committed batch was appended again: %+v", fp, r)
		}
		b.ack(r)
		if strings.HasSuffix(fp, "=crash@1") {
			os.RemoveAll(n.DataDir())
			n.Restart() // without the failpoint, on an emptied data_dir
		}
		checkCluster(t, []*clusterNode{other, n}, []string{stream}, l)
	}
	verifyClean(t, other)
}
