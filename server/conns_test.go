package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// connEnv is a real HTTP server built by NewHTTPServer around a small
// handler: /healthz answers at once, /block waits for release, /sleep
// answers after a while, /stream writes for a while, /body reads its body.
type connEnv struct {
	t       *testing.T
	addr    string
	lim     *connLimiter
	release chan struct{}
	blocked chan struct{} // one value per /block request that started
	written chan error    // what /flood's writes ended with
}

func newConnEnv(t *testing.T, o HTTPOptions) *connEnv {
	t.Helper()
	e := &connEnv{t: t, release: make(chan struct{}), blocked: make(chan struct{}, 100), written: make(chan error, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /block", func(w http.ResponseWriter, r *http.Request) {
		e.blocked <- struct{}{}
		select {
		case <-e.release:
		case <-r.Context().Done():
		}
		w.Write([]byte("released\n"))
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		select {
		case <-time.After(d):
			w.Write([]byte("slept\n"))
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := range 15 {
			fmt.Fprintf(w, "line %d\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	mux.HandleFunc("GET /flood", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				e.written <- err
				return
			}
		}
	})
	mux.HandleFunc("POST /body", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			writeError(w, 400, "invalid_body", err.Error())
			return
		}
		w.Write([]byte("read\n"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, sln := NewHTTPServer(mux, ln, o)
	e.addr, e.lim = ln.Addr().String(), sln.(*connLimiter)
	go srv.Serve(sln)
	t.Cleanup(func() {
		select {
		case <-e.release:
		default:
			close(e.release)
		}
		srv.Close()
	})
	return e
}

// dial opens a raw connection.
func (e *connEnv) dial() net.Conn {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// get sends one GET on c and reads the answer (bounded by a deadline).
func get(t *testing.T, c net.Conn, path string) (*http.Response, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// waitCounts waits until the limiter holds open and reserved connections.
func (e *connEnv) waitCounts(open, reserved int) {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		o, r := e.lim.counts()
		if o == open && r == reserved {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("limiter holds %d + %d reserve connections, want %d + %d", o, r, open, reserved)
		}
	}
}

// waitWaiting waits until n connections wait for a request.
func (e *connEnv) waitWaiting(n int) {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		e.lim.mu.Lock()
		got := e.lim.mu.waiting.Len()
		e.lim.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d connections wait for a request, want %d", got, n)
		}
	}
}

// closedWithin reports whether the server closes c within d (a read ends
// with EOF or a reset rather than a timeout).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// At the cap, a new connection takes the place of the one that has waited
// longest for a request; it is served, the other closed.
func TestNewConnectionTakesTheLongestWaitingPlace(t *testing.T) {
	e := newConnEnv(t, HTTPOptions{MaxConnections: 3})
	var silent []net.Conn
	for range 3 {
		silent = append(silent, e.dial())
		e.waitWaiting(len(silent)) // in order of arrival
	}
	e.waitCounts(3, 0)
	c := e.dial()
	if resp, _ := get(t, c, "/healthz"); resp.StatusCode != 200 {
		t.Fatalf("new connection at the cap: %d", resp.StatusCode)
	}
	if !closedWithin(silent[0], 10*time.Second) {
		t.Fatal("the longest waiting connection was not closed")
	}
	if closedWithin(silent[1], 200*time.Millisecond) || closedWithin(silent[2], 200*time.Millisecond) {
		t.Fatal("a younger waiting connection was closed")
	}
	e.waitCounts(3, 0)
}

// With every place busy with a request, a new connection gets the reserve:
// /healthz is answered, any other route 503 too_many_connections; past the
// reserve a connection is answered 503 at once and closed. Requests in
// progress are never cut to make room.
func TestReserveAndRefusal(t *testing.T) {
	e := newConnEnv(t, HTTPOptions{MaxConnections: 2})
	busy := []net.Conn{e.dial(), e.dial()}
	for _, c := range busy {
		fmt.Fprintf(c, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
		<-e.blocked
	}
	e.waitCounts(2, 0)

	c := e.dial()
	resp, body := get(t, c, "/v1/status")
	var eb errorBody
	if resp.StatusCode != 503 || json.Unmarshal([]byte(body), &eb) != nil || eb.Error.Code != "too_many_connections" ||
		resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Fatalf("non-health request on a reserve connection: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, _ := get(t, e.dial(), "/healthz"); resp.StatusCode != 200 {
		t.Fatalf("healthz on a reserve connection: %d", resp.StatusCode)
	}
	// An append's body is not read, yet its client gets the answer (the
	// connection is half-closed after it, not reset).
	pc := e.dial()
	pc.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(pc, "POST /v1/streams/s/records HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", 100<<10, strings.Repeat("x", 100<<10))
	if resp, err := http.ReadResponse(bufio.NewReader(pc), nil); err != nil || resp.StatusCode != 503 {
		t.Fatalf("append on a reserve connection: %v %v", resp, err)
	}
	// Take the whole reserve with silent connections (they end within
	// reserveHeaderWait).
	reserve := ReservedConnections(2)
	for range reserve {
		e.dial()
	}
	e.waitCounts(2, reserve)
	start := time.Now()
	resp, body = get(t, e.dial(), "/healthz")
	if resp.StatusCode != 503 || !strings.Contains(body, "too_many_connections") {
		t.Fatalf("past the reserve: %d %s", resp.StatusCode, body)
	}
	t.Logf("refused past the reserve in %s", time.Since(start))
	// The busy requests were never touched.
	close(e.release)
	for _, c := range busy {
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("busy request: %v %v", r, err)
		}
	}
	// The reserve empties by itself: a reserve connection is held at most
	// reserveHeaderWait.
	e.waitCounts(2, 0)
}

// Every way of holding a connection without progress ends: a body sent
// byte by byte past read_timeout, a keep-alive connection idle past
// idle_timeout, a connection that never sends a request, a client that
// stops reading a response. Long requests without a body and slow streamed
// answers to a reading client are not cut. The limiter's count returns to
// zero.
func TestTimeouts(t *testing.T) {
	const readTimeout, idle = 500 * time.Millisecond, 500 * time.Millisecond
	e := newConnEnv(t, HTTPOptions{ReadTimeout: readTimeout, IdleTimeout: idle})
	var wg sync.WaitGroup
	check := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	check("slow body", func() error {
		c := e.dial()
		start := time.Now()
		fmt.Fprintf(c, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
		for i := 0; i < 100; i++ {
			if _, err := c.Write([]byte("x")); err != nil {
				break // closed by the server
			}
			time.Sleep(50 * time.Millisecond)
			if time.Since(start) > 30*time.Second {
				return errors.New("still open after 30s")
			}
		}
		if !closedWithin(c, 30*time.Second) {
			return errors.New("not closed")
		}
		if time.Since(start) > 4900*time.Millisecond {
			return fmt.Errorf("closed only after %s", time.Since(start))
		}
		return nil
	})
	check("idle keep-alive", func() error {
		c := e.dial()
		if resp, _ := get(t, c, "/healthz"); resp.StatusCode != 200 {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		if !closedWithin(c, 30*time.Second) {
			return errors.New("idle connection not closed")
		}
		return nil
	})
	check("silent", func() error {
		if !closedWithin(e.dial(), 30*time.Second) {
			return errors.New("silent connection not closed")
		}
		return nil
	})
	check("long request without a body", func() error {
		resp, body := get(t, e.dial(), "/sleep?d=1500ms")
		if resp.StatusCode != 200 || body != "slept\n" {
			return fmt.Errorf("%d %q", resp.StatusCode, body)
		}
		return nil
	})
	check("slow stream to a reader", func() error {
		resp, body := get(t, e.dial(), "/stream")
		if resp.StatusCode != 200 || strings.Count(body, "\n") != 15 {
			return fmt.Errorf("%d, %d lines", resp.StatusCode, strings.Count(body, "\n"))
		}
		return nil
	})
	check("client that stops reading", func() error {
		c := e.dial()
		fmt.Fprintf(c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
		select {
		case err := <-e.written:
			if err == nil {
				return errors.New("no write error")
			}
		case <-time.After(30 * time.Second):
			return errors.New("the response to a client that reads nothing was not cut")
		}
		return nil
	})
	wg.Wait()
	e.waitCounts(0, 0)
}
