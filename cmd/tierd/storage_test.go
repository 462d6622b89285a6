package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a tmpfs of size bytes in a fresh directory and
// unmounts it when the test ends (after every daemon the test starts
// later is gone). It skips the test, saying why, where mounting is not
// allowed (not root, no CAP_SYS_ADMIN); as root a failure to mount fails.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small-fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Geteuid() == 0 {
			// CI runs as root: a test it cannot run must fail, not vanish
			// into a skip that go test prints only with -v.
			t.Fatalf("cannot mount a %d-byte tmpfs as root: %v", size, err)
		}
		t.Skipf("SKIP: cannot mount a %d-byte tmpfs to fill (%v): this test needs root or CAP_SYS_ADMIN", size, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	// Small writes take what the big ones left.
	for _, err := f.Write(chunk[:512]); err == nil; _, err = f.Write(chunk[:512]) {
	}
	return path
}

const storageConfig = `
max_record_bytes: 64KiB
wal: {segment_bytes: 32KiB}
segment: {max_bytes: 128KiB, max_age: 1s}
hot: {max_age: 1s}
cold: {store: none}
`

// A full disk under the WAL and the warm tier: appends are refused with
// 503 storage_full and Retry-After, /healthz is not ready and status names
// the disk; once space is freed, with no restart, appends are taken again,
// and every acknowledged record is there exactly once, every refused one
// absent, verify clean — and the same after a restart.
func TestFullDiskRecoversWithoutRestart(t *testing.T) {
	mnt := mountTmpfs(t, 16<<20)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, storageConfig)
	data := filepath.Join(mnt, "data")
	d := startDaemonEnv(t, cfg, data)
	client := keepAliveClient()
	r := rand.New(rand.NewPCG(10, 1))
	var l ledger
	var refused []*batch
	n := 0
	send := func() (outcome, *batch) {
		t.Helper()
		b := newBatch(r, fmt.Sprintf("b%d", n), "full", 12)
		n++
		l.add(b)
		o, err := appendOutcome(client, d.addr, b, nil)
		if err != nil {
			t.Fatalf("append %s: %v", b.id, err)
		}
		switch {
		case o.status == 200:
		case o.status == 503 && (o.code == "storage_full" || o.code == "storage_unavailable"):
			if o.retry == "" {
				t.Fatalf("append %s refused %s without Retry-After", b.id, o.code)
			}
			refused = append(refused, b)
		default:
			t.Fatalf("append %s: %d %s, want 200 or an honest 503 storage_full", b.id, o.status, o.code)
		}
		return o, b
	}
	for range 30 {
		if o, b := send(); o.status != 200 {
			t.Fatalf("append %s before the disk is full: %d %s", b.id, o.status, o.code)
		}
	}

	filler := fillDisk(t, mnt)
	var full outcome
	waitFor(t, 60*time.Second, "an append refused for the full disk", func() (bool, string) {
		full, _ = send()
		return full.code == "storage_full", fmt.Sprintf("last answer %d %s", full.status, full.code)
	})
	for range 10 {
		send()
	}
	code, h := healthz(t, client, d.addr)
	if code != 503 || h.Cause != "disk_full" || h.Sticky || h.Error.Code != "storage_full" || h.Since == "" {
		t.Fatalf("healthz with the disk full: %d %+v", code, h)
	}
	if writes, since, errText := statusWrites(t, client, d.addr); writes != "disk_full" || since == "" || !strings.Contains(errText, "no space left") {
		t.Fatalf("status with the disk full: writes %q since %q error %q", writes, since, errText)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "healthz ready again after freeing space", func() (bool, string) {
		code, h := healthz(t, client, d.addr)
		return code == 200, fmt.Sprintf("%d %+v", code, h)
	})
	for range 30 {
		if o, b := send(); o.status != 200 {
			t.Fatalf("append %s after space was freed: %d %s", b.id, o.status, o.code)
		}
	}
	if writes, _, _ := statusWrites(t, client, d.addr); writes != "ok" {
		t.Fatalf("status after recovery: writes %q", writes)
	}
	acked, _ := l.acked("full")
	t.Logf("%d batches acknowledged, %d refused with the disk full", acked, len(refused))
	if len(refused) == 0 {
		t.Fatal("no append was refused: the disk was never full for tierd")
	}

	got := readAll(t, d.addr, "full")
	check(t, "full", got, l.all())
	refusedAbsent(t, got, refused)
	verifyOK(t, d.addr)
	if logs := d.logs(); strings.Contains(logs, "until restart") {
		t.Fatalf("the log says writes need a restart:\n%s", d.tail(4000))
	}

	d.stop(t)
	d.restart(t)
	got = readAll(t, d.addr, "full")
	check(t, "full", got, l.all())
	refusedAbsent(t, got, refused)
	verifyOK(t, d.addr)
}

const fdConfig = `
wal: {segment_bytes: 1KiB}
segment: {max_age: 1h}
hot: {max_age: 1h}
cold: {store: none}
http: {read_timeout: 5m}
`

// Descriptors exhausted while the WAL must rotate: connections hold every
// descriptor the daemon may open (its limit lowered with prlimit), so the
// next WAL file cannot be created. Appends are refused with 503
// storage_unavailable, /healthz names out_of_descriptors; once the
// connections are gone, with no restart, appends are taken again and every
// acknowledged record is there once.
func TestDescriptorExhaustionRecoversWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fdConfig)
	d := startDaemonEnv(t, cfg, filepath.Join(dir, "data"))
	pid := d.Pid()
	client := keepAliveClient()
	r := rand.New(rand.NewPCG(11, 1))
	var l ledger
	var refused []*batch
	n := 0
	send := func() outcome {
		t.Helper()
		b := newBatch(r, fmt.Sprintf("b%d", n), "fds", 12) // a few KiB: every append rotates the WAL
		n++
		l.add(b)
		o, err := appendOutcome(client, d.addr, b, nil)
		if err != nil {
			t.Fatalf("append %s: %v", b.id, err)
		}
		switch {
		case o.status == 200:
		case o.status == 503 && o.code == "storage_unavailable" && o.retry != "":
			refused = append(refused, b)
		default:
			t.Fatalf("append %s: %d %s (Retry-After %q), want 200 or 503 storage_unavailable with Retry-After", b.id, o.status, o.code, o.retry)
		}
		return o
	}
	for range 10 {
		if o := send(); o.status != 200 {
			t.Fatalf("append before the limit: %d %s", o.status, o.code)
		}
	}

	limit := uint64(fdCount(t, pid) + 40)
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Fatalf("cannot lower the daemon's open-file limit with prlimit: %v", err)
	}
	// Requests in progress (a header, then a body that never comes) hold
	// the descriptors: read_timeout is 5m, and they are not idle.
	var holders []net.Conn
	defer func() {
		for _, c := range holders {
			c.Close()
		}
	}()
	hold := func(n int) {
		for range n {
			c, err := net.Dial("tcp", d.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /v1/streams/held/records HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
			holders = append(holders, c)
		}
	}
	waitFor(t, 60*time.Second, "the daemon's descriptors used up", func() (bool, string) {
		hold(5)
		open := fdCount(t, pid)
		return uint64(open) >= limit, fmt.Sprintf("%d of %d descriptors open, %d connections held", open, limit, len(holders))
	})
	// More wait in the listen backlog: a descriptor the daemon frees is
	// taken again by the next accept.
	hold(20)

	waitFor(t, 60*time.Second, "an append refused for want of descriptors", func() (bool, string) {
		o := send()
		if o.status == 200 {
			hold(2)
		}
		return o.status == 503, fmt.Sprintf("%d %s; %d of %d descriptors open", o.status, o.code, fdCount(t, pid), limit)
	})
	code, h := healthz(t, client, d.addr)
	if code != 503 || h.Cause != "out_of_descriptors" || h.Sticky || h.Error.Code != "storage_unavailable" {
		t.Fatalf("healthz out of descriptors: %d %+v", code, h)
	}
	if writes, since, errText := statusWrites(t, client, d.addr); writes != "out_of_descriptors" || since == "" || !strings.Contains(errText, "too many open files") {
		t.Fatalf("status out of descriptors: writes %q since %q error %q", writes, since, errText)
	}

	for _, c := range holders {
		c.Close()
	}
	holders = nil
	waitFor(t, 60*time.Second, "healthz ready again once descriptors are free", func() (bool, string) {
		code, h := healthz(t, client, d.addr)
		return code == 200, fmt.Sprintf("%d %+v; %d descriptors open", code, h, fdCount(t, pid))
	})
	for range 20 {
		if o := send(); o.status != 200 {
			t.Fatalf("append after descriptors were freed: %d %s", o.status, o.code)
		}
	}
	t.Logf("%d batches acknowledged, %d refused while out of descriptors", n-len(refused), len(refused))
	got := readAll(t, d.addr, "fds")
	check(t, "fds", got, l.all())
	refusedAbsent(t, got, refused)
	verifyOK(t, d.addr)
}
