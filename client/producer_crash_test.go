package client_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/client"
)

// The kill -9 test runs the real tierd binary, as cmd/tierd's crash test
// does, and a Producer against it.

// buildTierd compiles the daemon into dir.
func buildTierd(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tierd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tierd/tierd/cmd/tierd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build tierd: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer collects a daemon's output; it may be read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// count is how many times sub occurs in what was written.
func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Count(s.b.Bytes(), []byte(sub))
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// tierdProcess is one run of the daemon.
type tierdProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startTierd runs tierd on addr and dataDir with the embedded defaults
// (wal.sync always) and waits until /healthz answers. Its output goes to
// log, printed if the test fails.
func startTierd(t *testing.T, bin, addr, dataDir string, log *syncBuffer, env ...string) *tierdProcess {
	t.Helper()
	d := &tierdProcess{exited: make(chan struct{})}
	started := log.count("tierd listening") // the log holds earlier runs too
	d.cmd = exec.Command(bin, "--data-dir", dataDir, "--listen", addr)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-d.exited:
			t.Fatalf("tierd exited at start:\n%s", log.tail(4000))
		default:
		}
		if resp, err := hc.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			// Its own "listening" line too: another process that took the
			// port may answer /healthz in its place.
			if resp.StatusCode == http.StatusOK && log.count("tierd listening") > started {
				return d
			}
		}
	}
	t.Fatalf("tierd did not answer on %s within 30 s:\n%s", addr, log.tail(4000))
	return nil
}

// crashFixture is a tierd binary, its data directory and address, kept
// across the restarts of a crash test, and the log of all its runs (its
// tail is printed when the test fails).
type crashFixture struct {
	t             *testing.T
	bin           string
	addr, dataDir string
	log           *syncBuffer
}

func newCrashFixture(t *testing.T) *crashFixture {
	t.Helper()
	fx := &crashFixture{t: t, bin: buildTierd(t, t.TempDir()), addr: reservedAddr(t), dataDir: t.TempDir(), log: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tierd log tail:\n%s", fx.log.tail(6000))
		}
	})
	return fx
}

// start runs tierd (again) on the fixture's address and data, with env.
func (fx *crashFixture) start(env ...string) *tierdProcess {
	fx.t.Helper()
	return startTierd(fx.t, fx.bin, fx.addr, fx.dataDir, fx.log, env...)
}

// kill sends SIGKILL and reaps the process.
func (d *tierdProcess) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
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
		d.kill()
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
			case <-d.exited:
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
