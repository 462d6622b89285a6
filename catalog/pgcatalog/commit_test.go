package pgcatalog_test

import (
	"bytes"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/catalog/pgcatalog"
	"github.com/tierd/tierd/testenv"
)

// commitMsg is the simple-protocol Query message pgx sends to commit.
var commitMsg = []byte("Q\x00\x00\x00\x0bcommit\x00")

// cutter is a TCP proxy to PostgreSQL that, when armed, cuts the one
// connection that sends COMMIT: after forwarding it ("after": the server
// commits, the client never hears) or instead of it ("before": the server
// rolls back).
type cutter struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	armed string
	cuts  int
	conns []net.Conn
}

func startCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutter{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *cutter) arm(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = mode
}

func (p *cutter) cutCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// take disarms the cutter and returns its mode when chunk commits.
func (p *cutter) take(chunk []byte) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.armed == "" || !bytes.Contains(chunk, commitMsg) {
		return ""
	}
	mode := p.armed
	p.armed = ""
	p.cuts++
	return mode
}

func (p *cutter) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		muted := new(atomic.Bool)
		go func() {
			defer client.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 && !muted.Load() {
					if _, err := client.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go p.forward(client, server, muted)
	}
}

// forward copies the client's bytes to the server, cutting both
// connections at an armed COMMIT.
func (p *cutter) forward(client, server net.Conn, muted *atomic.Bool) {
	defer server.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			switch p.take(buf[:n]) {
			case "after":
				muted.Store(true) // the client never hears the answer
				server.Write(buf[:n])
				time.Sleep(100 * time.Millisecond) // let the server read it before the cut
				client.Close()
				return
			case "before":
				client.Close()
				return
			}
			if _, err := server.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestCommitLostInFlight: a COMMIT whose answer is lost is resolved by
// asking the server (txid_status): one the server made is success, never
// redone (a RecordFailure is not counted twice); one it rolled back is
// retried. Nothing lost, nothing doubled.
func TestCommitLostInFlight(t *testing.T) {
	ctx := testCtx(t)
	pg := testenv.StartPostgres(t)
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	p := startCutter(t, u.Host)
	u.Host = p.ln.Addr().String()
	reg := prometheus.NewRegistry()
	pool := newPool(t, u.String())
	c, err := pgcatalog.OpenWith(ctx, pool, pgcatalog.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustPut(t, c, seg("s", 0, 9))

	for i, mode := range []string{"after", "before"} {
		t.Run(mode, func(t *testing.T) {
			cuts := p.cutCount()
			p.arm(mode)
			base := uint64(10 * (i + 1))
			if err := c.PutSegment(ctx, seg("s", base, base+9)); err != nil {
				t.Fatalf("PutSegment with its commit cut %s: %v", mode, err)
			}
			p.arm(mode)
			if err := c.RecordFailure(ctx, "s", 0, "boom "+mode); err != nil {
				t.Fatalf("RecordFailure with its commit cut %s: %v", mode, err)
			}
			if got := p.cutCount(); got != cuts+2 {
				t.Fatalf("the proxy cut %d commits, want 2: the test tested nothing", got-cuts)
			}
			in := streamsOf(t, c)[0]
			if want := int(base/10) + 1; in.Segments != want || in.NextOffset != base+10 || in.Records != uint64(want*10) {
				t.Fatalf("stream after the cut = %+v; want %d segments counted once", in, want)
			}
			f, ok, err := c.LastError(ctx, "s", 0)
			if err != nil || !ok || f.Attempts != i+1 || f.Err != "boom "+mode {
				t.Fatalf("last failure after the cut = %+v %v %v; want %d attempts: each failure counted once", f, ok, err, i+1)
			}
			// Only a commit the server rolled back is retried.
			lost := counterValue(t, reg, "tierd_catalog_retries_total", "record_failure", "commit_lost")
			if want := float64(i); lost != want {
				t.Fatalf("tierd_catalog_retries_total{op=record_failure,reason=commit_lost} = %v, want %v", lost, want)
			}
		})
	}
}

// counterValue reads the counter name{op, reason} from reg, 0 when absent.
func counterValue(t *testing.T, reg *prometheus.Registry, name, op, reason string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["op"] == op && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
