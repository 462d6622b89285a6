package testenv_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tierd/tierd/internal/tierdproc"
	"github.com/tierd/tierd/testenv"
)

// TestTierdLifeCycle: StartTierd listens on a port the kernel chose and
// says which; a record acknowledged before kill -9 is served after Restart,
// which keeps the address and the data directory; Stop is a clean exit.
func TestTierdLifeCycle(t *testing.T) {
	d := testenv.StartTierd(t, testenv.TierdOptions{})
	addr := d.Addr()
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") || d.URL() != "http://"+addr {
		t.Fatalf("Addr %q, URL %q: not a bound loopback port", addr, d.URL())
	}
	resp, err := http.Post(d.URL()+"/v1/streams/s/records", "application/x-ndjson", strings.NewReader(`{"value":"kept"}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("append: %d", resp.StatusCode)
	}
	d.Kill()
	if _, err := http.Get(d.URL() + "/healthz"); err == nil {
		t.Fatal("a killed tierd still answers")
	}
	d.Restart()
	if d.Addr() != addr {
		t.Fatalf("restarted on %s, was on %s", d.Addr(), addr)
	}
	resp, err = http.Get(d.URL() + "/v1/streams/s/records")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"kept"`) {
		t.Fatalf("after kill -9 and restart: %d %s", resp.StatusCode, body)
	}
	if strings.Count(d.Logs(), tierdproc.ListeningMsg) != 2 || strings.Count(d.RunLogs(), tierdproc.ListeningMsg) != 1 {
		t.Fatalf("Logs holds every run, RunLogs the last:\n%s", d.Logs())
	}
	if _, err := os.Stat(filepath.Join(d.DataDir(), "catalog.db")); err != nil {
		t.Fatalf("data dir: %v", err)
	}
	d.Stop()
	if code := d.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after Stop", code)
	}
}

// TestTierdRefused: a tierd that refuses its configuration is an
// ExitError with its output, not a hang until the ready timeout.
func TestTierdRefused(t *testing.T) {
	config := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(config, []byte("hot: {max_bytes: -1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := testenv.StartTierdErr(t, testenv.TierdOptions{Config: config})
	var ee *tierdproc.ExitError
	if !errors.As(err, &ee) || ee.Code == 0 || !strings.Contains(ee.Output, "hot.max_bytes") {
		t.Fatalf("StartTierdErr = %v, want an ExitError naming hot.max_bytes", err)
	}
}

// TestReservePort: a reserved port refuses connections until Listen, and
// then serves on the same address.
func TestReservePort(t *testing.T) {
	r := testenv.ReservePort(t)
	if _, err := net.Dial("tcp", r.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a reserved port: %v, want connection refused", err)
	}
	if _, err := net.Listen("tcp", r.Addr()); err == nil {
		t.Fatal("another listener took the reserved port")
	}
	l, err := r.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr().String() != r.Addr() {
		t.Fatalf("listening on %s, reserved %s", l.Addr(), r.Addr())
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := r.Listen(); err == nil {
		t.Fatal("a second Listen succeeded")
	}
}
