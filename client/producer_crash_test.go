package client_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/testenv"
)

// The kill -9 test runs the real tierd binary, as cmd/tierd's crash test
// does, and a Producer against it.

// TestMain removes the tierd binary testenv built once the tests end.
func TestMain(m *testing.M) { testenv.Main(m) }

// crashFixture is the tierd of a crash test: one data directory and one
// address kept across its kills and restarts (the Producer holds the
// address), started by testenv.StartTierd on 127.0.0.1:0 and restarted on
// the port it got. Its log of every run is printed if the test fails.
type crashFixture struct {
	t    *testing.T
	d    *testenv.Tierd
	addr string
}

func newCrashFixture(t *testing.T) *crashFixture {
	t.Helper()
	return &crashFixture{t: t}
}

// start runs tierd, the first time or again after a kill, with env
// (embedded defaults: wal.sync always).
func (fx *crashFixture) start(env ...string) *testenv.Tierd {
	fx.t.Helper()
	if fx.d == nil {
		fx.d = testenv.StartTierd(fx.t, testenv.TierdOptions{Env: env})
		fx.addr = fx.d.Addr()
		return fx.d
	}
	fx.d.Restart(env...)
	if fx.d.Addr() != fx.addr {
		fx.t.Fatalf("tierd restarted on %s, not on %s", fx.d.Addr(), fx.addr)
	}
	return fx.d
}

// Killing the server with SIGKILL while a Producer streams into it neither
// loses nor doubles anything: after three kills and restarts on the same
// data directory and port, every record OnBatch reported is at the offset
// it reported, with its content, and with unlimited retries under the
// Block policy every record sent is reported persisted. A batch whose
// request died with the server is retried with the same producer ID and
// sequence number, so if that request had stored it, the retry is answered
// with its offsets instead of storing it again: every record is stored
// exactly once.
func TestProducerKillNineLosesNothingReported(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test runs the real tierd binary for several seconds")
	}
	fx := newCrashFixture(t)
	d := fx.start()
	c := client.New(fx.addr, client.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}))
	var outs outcomes
	p := client.NewProducer(c, client.ProducerOptions{
		Policy:         client.Block,
		MinBackoff:     5 * time.Millisecond,
		MaxBackoff:     100 * time.Millisecond,
		RequestTimeout: 10 * time.Second,
		OnBatch:        outs.add,
	})
	closeLater(t, p)
	streams := []string{"k0", "k1", "k2"}

	var sent atomic.Int64
	stop := make(chan struct{})
	senderDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				senderDone <- nil
				return
			default:
			}
			if err := p.Send(streams[i%len(streams)], rec(0, i)); err != nil {
				senderDone <- err
				return
			}
			sent.Add(1)
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // about 30 000 records/s at most
			}
		}
	}()

	r := rand.New(rand.NewPCG(1, 2))
	for round := range 3 {
		time.Sleep(time.Duration(200+r.IntN(400)) * time.Millisecond)
		before := p.Stats().Persisted
		d.Kill()
		t.Logf("round %d: killed tierd after %d records sent, %d reported persisted", round, sent.Load(), before)
		time.Sleep(time.Duration(50+r.IntN(300)) * time.Millisecond)
		d = fx.start()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	if err := <-senderDone; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	n := sent.Load()
	st := p.Stats()
	t.Logf("%d records sent, stats %+v", n, st)
	if st.Received != uint64(n) || st.Persisted != uint64(n) || st.Failed != 0 || st.Dropped != 0 || st.Pending != 0 {
		t.Fatalf("stats %+v after %d sent: every record must be reported persisted", st, n)
	}
	if st.Retries == 0 {
		t.Fatal("no request failed: the kills did not happen while producing")
	}

	// Ground truth: the restarted daemon's records.
	stored := map[string][]client.Record{}
	copies := map[string][]uint64{} // id → offsets holding it
	for _, s := range streams {
		recs := readStream(t, c, s)
		for i, r := range recs {
			if r.Offset != uint64(i) {
				t.Fatalf("%s: offsets not dense: position %d holds offset %d", s, i, r.Offset)
			}
			checkRecord(t, s, r)
			copies[r.Key] = append(copies[r.Key], r.Offset)
		}
		stored[s] = recs
	}
	reported := map[string]int{} // id → attempts of its batch
	for _, o := range outs.all() {
		if o.err != nil {
			t.Fatalf("batch of %s failed: %v", o.stream, o.err)
		}
		for k, id := range o.ids {
			if _, twice := reported[id]; twice {
				t.Fatalf("%s reported persisted twice", id)
			}
			reported[id] = o.attempts
			off := o.first + uint64(k)
			if off >= uint64(len(stored[o.stream])) || stored[o.stream][off].Key != id {
				t.Fatalf("%s was reported persisted at %s/%d, which does not hold it (lost)", id, o.stream, off)
			}
		}
	}
	if len(reported) != int(n) {
		t.Fatalf("%d records reported persisted, %d sent", len(reported), n)
	}
	for id, offs := range copies {
		if _, ok := reported[id]; !ok {
			t.Fatalf("%s is stored at %v but was never reported", id, offs)
		}
		if len(offs) != 1 {
			t.Fatalf("%s is stored %d times (%v): a retried batch was appended again", id, len(offs), offs)
		}
	}
	t.Logf("%d records persisted exactly once through 3 kills, %d retries", len(reported), st.Retries)
}

// An append that is durable when the server dies, before its answer is
// sent, is retried by the Producer; the retry carries the same producer ID
// and sequence number, so the restarted server answers it with the offsets
// the batch already has instead of storing it again. The failpoint makes
// the case certain rather than a matter of timing.
func TestProducerRetryOfADurableBatchIsNotStoredTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test runs the real tierd binary")
	}
	fx := newCrashFixture(t)
	d := fx.start("TIERD_FAILPOINTS=append/after-durable=crash@3")
	c := client.New(fx.addr)
	var outs outcomes
	p := client.NewProducer(c, client.ProducerOptions{
		Policy: client.Block, BatchRecords: 10, Linger: time.Millisecond,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, OnBatch: outs.add,
	})
	closeLater(t, p)
	const n = 100
	for i := range n {
		if err := p.Send("s", rec(0, i)); err != nil {
			t.Fatal(err)
		}
		if i == 29 {
			select { // the third append is durable and its answer lost
			case <-d.Exited():
			case <-time.After(30 * time.Second):
				t.Fatal("the failpoint did not kill tierd at the third append")
			}
			d = fx.start()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Persisted != n || st.Retries == 0 {
		t.Fatalf("stats %+v: want %d persisted after at least one retry", st, n)
	}
	recs := readStream(t, c, "s")
	if len(recs) != n {
		t.Fatalf("%d records stored for %d sent: the retried batch was stored twice", len(recs), n)
	}
	for i, r := range recs {
		checkRecord(t, "s", r)
		if want := rec(0, i).Key; r.Key != want || r.Offset != uint64(i) {
			t.Fatalf("offset %d holds %s (offset %d), want %s", i, r.Key, r.Offset, want)
		}
	}
	for _, o := range outs.all() {
		if o.err != nil {
			t.Fatalf("batch failed: %v", o.err)
		}
	}
}
