package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const hostileConfig = `
cold: {store: none}
http: {read_timeout: 3s, idle_timeout: 3s}
`

// Hostile connections against a real tierd with small timeouts: 10,000
// that never send a request and 500 that send a body at a byte a second,
// beyond http.max_connections (the default 10,000). The daemon's open
// descriptors return to what they were before, and a well-behaved
// producer's appends keep working throughout, each within a generous
// bound (a connection of its closed at the cap is retried, the producer
// headers making the retry safe).
func TestHostileConnections(t *testing.T) {
	const idle, slow = 10000, 500
	raiseNoFile(t, idle+slow+1000)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, hostileConfig)
	d := startDaemonEnv(t, cfg, filepath.Join(dir, "data"))
	pid := d.Pid()

	p := newProducer(d.addr, "good")
	for range 10 {
		if err := p.append(); err != nil {
			t.Fatal(err)
		}
	}
	// The producer's own connection is open: it belongs to the baseline.
	baseline := fdCount(t, pid)

	stop := make(chan struct{})
	var peak atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the daemon's descriptors, sampled
		defer wg.Done()
		for {
			if n := int64(fdCount(t, pid)); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	prodErr := make(chan error, 1)
	wg.Add(1)
	go func() { // the well-behaved producer, throughout
		defer wg.Done()
		for {
			select {
			case <-stop:
				prodErr <- nil
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := p.append(); err != nil {
				prodErr <- err
				return
			}
		}
	}()

	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	var slowDone sync.WaitGroup
	var cut atomic.Int64 // slow bodies the daemon stopped reading
	for i := range slow {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatalf("slow body %d: %v", i, err)
		}
		keep(c)
		slowDone.Add(1)
		go func() {
			defer slowDone.Done()
			fmt.Fprintf(c, "POST /v1/streams/slow/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n")
			for range 600 { // at most ten minutes; the daemon cuts it long before
				if _, err := c.Write([]byte("{")); err != nil {
					cut.Add(1)
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}
	start := time.Now()
	for i := range idle {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		keep(c)
	}
	t.Logf("%d idle and %d slow connections opened in %s", idle, slow, time.Since(start).Round(time.Millisecond))

	// Every hostile connection stays open on the client's side: the
	// daemon must let go of them by itself.
	waitFor(t, 2*time.Minute, "the daemon's descriptors back to the baseline", func() (bool, string) {
		n := fdCount(t, pid)
		return n <= baseline+10, fmt.Sprintf("%d open, baseline %d", n, baseline)
	})
	settled := time.Since(start)
	waitFor(t, 2*time.Minute, "every slow body cut", func() (bool, string) {
		return cut.Load() == slow, fmt.Sprintf("%d of %d cut", cut.Load(), slow)
	})
	close(stop)
	wg.Wait()
	if err := <-prodErr; err != nil {
		t.Fatalf("the well-behaved producer: %v", err)
	}
	slowDone.Wait()
	t.Logf("descriptors: baseline %d, peak %d, back at the baseline %s after the attack began", baseline, peak.Load(), settled.Round(time.Millisecond))
	t.Logf("producer: %d appends, slowest %s, %d retried after a closed connection", p.n, p.slowest.Round(time.Millisecond), p.retries)
	m := scrapeMetrics(t, d.addr)
	t.Logf("connections evicted at the cap %v, refused %v", m["tierd_http_connections_evicted_total"], m["tierd_http_connections_refused_total"])

	got := readAll(t, d.addr, "good")
	check(t, "good", got, p.ledger.all())
	if acked, _ := p.ledger.acked("good"); acked != p.n {
		t.Fatalf("%d of %d appends acknowledged", acked, p.n)
	}
}

// producer is a well-behaved client: one append at a time, each an
// idempotent producer's batch, so that a retry after a connection closed
// under it cannot store it twice.
type producer struct {
	addr, stream string
	id           string
	client       *http.Client
	r            *rand.Rand
	ledger       ledger
	n, retries   int
	slowest      time.Duration
}

func newProducer(addr, stream string) *producer {
	return &producer{addr: addr, stream: stream, id: "0123456789abcdef0123456789abcdef",
		client: &http.Client{Timeout: 30 * time.Second}, r: rand.New(rand.NewPCG(12, 1))}
}

// appendBound is the generous bound of one append under attack: a hang is
// minutes, a pass milliseconds.
const appendBound = 30 * time.Second

// append sends the next batch, retrying it after a transport error (a
// connection the daemon closed at the cap) within appendBound.
func (p *producer) append() error {
	p.n++
	b := newBatch(p.r, fmt.Sprintf("g%d", p.n), p.stream, 5)
	p.ledger.add(b)
	header := http.Header{"Tierd-Producer-Id": {p.id}, "Tierd-Producer-Seq": {fmt.Sprint(p.n)}}
	start := time.Now()
	for {
		o, err := appendOutcome(p.client, p.addr, b, header)
		took := time.Since(start)
		p.slowest = max(p.slowest, took)
		if err == nil && o.status == 200 {
			if took > appendBound {
				return fmt.Errorf("append %s took %s", b.id, took)
			}
			return nil
		}
		if err == nil {
			return fmt.Errorf("append %s: %d %s", b.id, o.status, o.code)
		}
		var ne net.Error
		if took > appendBound || (errors.As(err, &ne) && ne.Timeout()) || strings.Contains(err.Error(), "Client.Timeout") {
			return fmt.Errorf("append %s: %v after %s", b.id, err, took)
		}
		p.retries++
		time.Sleep(20 * time.Millisecond)
	}
}
