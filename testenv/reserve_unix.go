//go:build unix

package testenv

import (
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// Reserved is a loopback port bound for one test and not listening: a
// connection to it is refused (a server that is down, as a client sees
// it), and no other process can take the port, until Listen makes it a
// server. It replaces picking a free port and closing it, which left the
// port to whoever asked next.
type Reserved struct {
	addr string

	mu sync.Mutex
	fd int // -1 once Listen or the cleanup took it
}

// ReservePort binds a loopback port for tb; the test's end releases it.
func ReservePort(tb testing.TB) *Reserved {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatalf("testenv: reserve a port: %v", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		tb.Fatalf("testenv: reserve a port: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		tb.Fatalf("testenv: reserve a port: %v", err)
	}
	r := &Reserved{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)), fd: fd}
	tb.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fd >= 0 {
			syscall.Close(r.fd)
			r.fd = -1
		}
	})
	return r
}

// Addr is the reserved host:port.
func (r *Reserved) Addr() string { return r.addr }

// Listen starts listening on the reserved port and returns the listener
// (the caller closes it). It can be called once.
func (r *Reserved) Listen() (net.Listener, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return nil, errorf("port %s: Listen called twice, or after the test", r.addr)
	}
	fd := r.fd
	r.fd = -1
	if err := syscall.Listen(fd, syscall.SOMAXCONN); err != nil {
		syscall.Close(fd)
		return nil, errorf("listen on %s: %v", r.addr, err)
	}
	f := os.NewFile(uintptr(fd), "reserved "+r.addr)
	defer f.Close() // FileListener holds its own copy
	return net.FileListener(f)
}
