package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/server"
	"github.com/tierd/tierd/testenv"
)

// closedAddr is an address nothing listens on: connections are refused.
// The port stays reserved for the test (testenv.ReservePort).
func closedAddr(t *testing.T) string {
	t.Helper()
	return testenv.ReservePort(t).Addr()
}

// TestAppendToNoServerGivesUpAtOnce: a wrong address fails the append in
// well under a second with one line naming the address and the hint, not
// two minutes of retries; --wait-for-server waits that long, saying so
// once.
func TestAppendToNoServerGivesUpAtOnce(t *testing.T) {
	addr := "http://" + closedAddr(t)
	start := time.Now()
	r := tierctl(t, addr, `{"value":1}`+"\n", "append", "s")
	took := time.Since(start)
	want := "error: cannot reach tierd at " + addr + " (from TIERD_ADDR): connection refused; is tierd running there? Set the address with --addr URL or TIERD_ADDR.\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("append to a closed port: exit %d, stderr %q; want exit 1 and\n%q", r.code, r.stderr, want)
	}
	if took > 10*time.Second {
		t.Fatalf("append to a closed port took %s to give up", took)
	}

	start = time.Now()
	r = tierctl(t, addr, `{"value":1}`+"\n", "append", "s", "--wait-for-server", "600ms")
	took = time.Since(start)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.code != 1 || len(lines) != 2 || lines[0] != "tierctl: cannot reach tierd at "+addr+" (from TIERD_ADDR): connection refused; waiting up to 600ms for it (--wait-for-server)" ||
		lines[1]+"\n" != want {
		t.Fatalf("append --wait-for-server 600ms to a closed port: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if took < 600*time.Millisecond {
		t.Fatalf("append --wait-for-server 600ms gave up after %s", took)
	}
}

// TestAppendWaitsForAServerStarting: with --wait-for-server, a tierd that
// starts listening a moment later gets the records.
func TestAppendWaitsForAServerStarting(t *testing.T) {
	port := testenv.ReservePort(t)
	hostport := port.Addr()
	eng, err := engine.Open(context.Background(), engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	srv := httptest.NewUnstartedServer(server.New(eng, server.Options{}))
	started := make(chan struct{})
	go func() {
		defer close(started)
		time.Sleep(700 * time.Millisecond)
		l, err := port.Listen()
		if err != nil {
			t.Errorf("listening on %s: %v", hostport, err)
			return
		}
		srv.Listener.Close()
		srv.Listener = l
		srv.Start()
	}()
	t.Cleanup(func() { <-started; srv.Close() })
	r := tierctl(t, "http://"+hostport, `{"value":1}`+"\n"+`{"value":2}`+"\n", "append", "s", "--wait-for-server", "1m", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"count": 2`) || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "waiting up to 1m") {
		t.Fatalf("append --wait-for-server 1m to a server starting in 0.7s: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
}

// TestAppendRetryLinesAreShort: a batch pushed back twice is retried
// with one short line each time, and appended once.
func TestAppendRetryLinesAreShort(t *testing.T) {
	eng, err := engine.Open(context.Background(), engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	api := server.New(eng, server.Options{})
	var appends atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && appends.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":{"code":"backpressure","message":"tiers: backpressure: the hot tier is full"}}`))
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	r := tierctl(t, srv.URL, `{"value":1}`+"\n", "append", "s")
	want := "tierctl: batch 1: backpressure (HTTP 503); retry 1 of 30 in 100ms\n" +
		"tierctl: batch 1: backpressure (HTTP 503); retry 2 of 30 in 200ms\n"
	if r.code != 0 || r.stderr != want {
		t.Fatalf("append through two pushbacks: exit %d, stderr\n%s\nwant\n%s", r.code, r.stderr, want)
	}
	if out := mustRun(t, srv.URL, "", "read", "s"); strings.Count(out, "\n") != 1 {
		t.Fatalf("the stream holds %q, want the record once", out)
	}
}

// TestAppendServerGoneMidRun: once the server has answered, a refused
// connection is a restart to wait out (--retries), and a batch whose
// answer was lost is reported as possibly appended, never as not.
func TestAppendServerGoneMidRun(t *testing.T) {
	eng, err := engine.Open(context.Background(), engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	api := server.New(eng, server.Options{})

	// The server goes away after the first batch: the second is refused.
	// (Without keep-alive, so that the second batch dials anew rather
	// than meet the first one's connection closing.)
	// The listener is closed before the first answer leaves, so that the
	// second batch's dial is refused whatever the scheduling (closing the
	// whole server from a goroutine raced that dial, which could be
	// accepted and served).
	var posts atomic.Int32
	gone := httptest.NewUnstartedServer(nil)
	gone.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r)
		if r.Method == http.MethodPost && posts.Add(1) == 1 {
			gone.Listener.Close()
		}
	})
	gone.Config.SetKeepAlivesEnabled(false)
	gone.Start()
	t.Cleanup(gone.Close)
	srv := gone
	in := `{"value":1}` + "\n" + `{"value":2}` + "\n"
	r := tierctl(t, srv.URL, in, "append", "gone", "--batch", "1", "--retries", "2")
	if r.code != 1 || !strings.Contains(r.stderr, "tierctl: batch 2: connection refused; retry 1 of 2 in 100ms\n") ||
		!strings.Contains(r.stderr, "tierctl: batch 2: connection refused; retry 2 of 2 in 200ms\n") ||
		!strings.Contains(r.stderr, "tierctl: the batch of input line 2 was not appended; 1 records in 1 earlier batches were (offsets 0–0)\n") ||
		!strings.Contains(r.stderr, "error: cannot reach tierd at "+srv.URL) {
		t.Fatalf("append to a server gone after batch 1: exit %d, stderr:\n%s", r.code, r.stderr)
	}

	// The server takes the batch and the connection breaks before its
	// answer.
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			api.ServeHTTP(httptest.NewRecorder(), r) // stored; the answer goes nowhere
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	r = tierctl(t, srv.URL, `{"value":3}`+"\n", "append", "lost", "--retries", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "tierctl: the batch of input line 1 may have been appended: its answer was lost\n") ||
		!strings.Contains(r.stderr, "error: lost the connection to tierd at "+srv.URL) {
		t.Fatalf("append whose answers are lost: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if out := mustRun(t, srv.URL, "", "read", "lost"); strings.Count(out, "\n") != 1 {
		t.Fatalf("the batch whose answer was lost, sent twice with one producer ID, is stored %d times, want once", strings.Count(out, "\n"))
	}
}
