// Package testenv gives tests a real MinIO server: built once from the Go
// module proxy at a pinned version (testenv/minio.sh build), started on a
// free loopback port with a temporary data directory, and stopped when the
// tests end. Tests get a fresh bucket each, so they never see each other's
// objects, while one server per test binary keeps the suite fast.
//
// Use it like this:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
//	func TestX(t *testing.T) {
//		mc := testenv.StartMinIO(t)
//		b, err := objstore.Open(ctx, mc.URL("minio"), objstore.Options{AccessKey: mc.AccessKey, SecretKey: mc.SecretKey})
//		…
//	}
//
// Tests that need MinIO are skipped only when TIERD_SKIP_MINIO=1 is set on
// purpose; in every other case a missing binary is built or the test fails.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// SkipEnv is the variable that, set to "1", makes StartMinIO skip the test.
const SkipEnv = "TIERD_SKIP_MINIO"

// BinEnv, when set, names the MinIO binary to run instead of
// <repo>/.cache/bin/minio.
const BinEnv = "TIERD_MINIO_BIN"

// Region is the region every test server and URL uses.
const Region = "us-east-1"

// MinIO is a running MinIO server and a bucket created for one test.
type MinIO struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Bucket    string // created empty for this test

	tb        testing.TB
	srv       *server
	dedicated bool
}

// URL returns the cold.store URL of the test's bucket with the prefix
// "tierd", for driver "minio" or "aws":
//
//	s3://BUCKET/tierd?endpoint=http://127.0.0.1:PORT&region=us-east-1&driver=minio
//
// It carries no credentials; pass AccessKey and SecretKey in the store
// options, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func (m *MinIO) URL(driver string) string {
	q := url.Values{"endpoint": {m.Endpoint}, "region": {Region}, "driver": {driver}}
	return "s3://" + m.Bucket + "/tierd?" + q.Encode()
}

// shared is the one server a test binary's StartMinIO calls share. It is
// process state by nature (it outlives any one test), so it lives in a
// package variable; Main owns its lifetime.
var shared struct {
	mu     sync.Mutex
	inMain bool // Main is running the tests and will stop srv
	srv    *server
	err    error // a failed start is not retried by every test
	hinted bool
}

// Main runs the tests of a package that uses StartMinIO or StartTierd, then
// stops the shared server and removes the tierd binary TierdBin built. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Without it StartMinIO still works but starts a server per test.
func Main(m *testing.M) {
	// Tests talk only to loopback: an S3 client that finds no credentials
	// must fail, not ask the EC2 metadata service (a link-local address).
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	removeTierdBuild()
	stopSharedPostgres()
	shared.mu.Lock()
	if shared.srv != nil {
		shared.srv.stop()
		shared.srv.removeDir()
		shared.srv = nil
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// StartMinIO returns the test binary's shared MinIO (starting it on first
// use, building the binary if needed) with a fresh bucket for tb. The
// server stops when Main returns. Use StartDedicatedMinIO for a test that
// needs to Stop or Restart the server.
func StartMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	skipIfAsked(tb)
	shared.mu.Lock()
	if !shared.inMain {
		if !shared.hinted {
			shared.hinted = true
			tb.Logf("testenv: no testenv.Main(m) in TestMain, so each test gets its own MinIO (slower)")
		}
		shared.mu.Unlock()
		return StartDedicatedMinIO(tb)
	}
	if shared.srv == nil && shared.err == nil {
		bin, err := binary(tb)
		if err == nil {
			var dir string
			if dir, err = os.MkdirTemp("", "tierd-minio-*"); err == nil {
				shared.srv, err = startServer(bin, dir, true)
			}
		}
		shared.err = err
	}
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if err != nil {
		tb.Fatalf("testenv: shared MinIO: %v", err)
	}
	return newMinIO(tb, srv, false)
}

// StartDedicatedMinIO starts a MinIO server for tb alone, stopped at the
// end of the test, whose Stop and Restart let fault tests take the store
// away and bring it back.
func StartDedicatedMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	skipIfAsked(tb)
	bin, err := binary(tb)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	srv, err := startServer(bin, tb.TempDir(), false)
	if err != nil {
		tb.Fatalf("testenv: dedicated MinIO: %v", err)
	}
	tb.Cleanup(func() { srv.stop() })
	return newMinIO(tb, srv, true)
}

// Stop stops the server (SIGTERM, then SIGKILL after a grace period) and
// keeps its data; clients then get connection errors. Only for a
// dedicated server.
func (m *MinIO) Stop() {
	m.tb.Helper()
	m.mustBeDedicated("Stop")
	if err := m.srv.stop(); err != nil {
		m.tb.Fatalf("testenv: stop MinIO: %v", err)
	}
}

// Restart starts a stopped server again on the same port with the same
// data, and waits until it serves requests. Only for a dedicated server.
func (m *MinIO) Restart() {
	m.tb.Helper()
	m.mustBeDedicated("Restart")
	if err := m.srv.start(false); err != nil {
		m.tb.Fatalf("testenv: restart MinIO: %v", err)
	}
}

// Pause stops the server's process with SIGSTOP: it keeps its port and
// its connections, and the kernel still accepts new ones, but nothing is
// answered — a hung store, not a dead one. Resume continues it; a cleanup
// resumes it at the end of the test whatever happens (a stopped process
// would ignore the SIGTERM that stops it). Only for a dedicated server.
func (m *MinIO) Pause() {
	m.tb.Helper()
	m.mustBeDedicated("Pause")
	if err := m.srv.signal(syscall.SIGSTOP); err != nil {
		m.tb.Fatalf("testenv: pause MinIO: %v", err)
	}
	m.tb.Cleanup(func() { m.srv.signal(syscall.SIGCONT) })
	// The stop takes effect when each thread next runs; one in a disk
	// wait finishes it first. Return once it has.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if isStopped, ok := m.srv.isStopped(); isStopped || !ok {
			return
		}
		if time.Now().After(deadline) {
			m.tb.Fatalf("testenv: MinIO at %s not stopped 10 s after SIGSTOP", m.Endpoint)
		}
	}
}

// Paused reports whether the server's process is stopped now (true where
// the platform cannot tell). A test that sees its paused store answer can
// tell whether something continued the process.
func (m *MinIO) Paused() bool {
	isStopped, ok := m.srv.isStopped()
	return isStopped || !ok
}

// Resume continues a paused server with SIGCONT. Only for a dedicated
// server.
func (m *MinIO) Resume() {
	m.tb.Helper()
	m.mustBeDedicated("Resume")
	if err := m.srv.signal(syscall.SIGCONT); err != nil {
		m.tb.Fatalf("testenv: resume MinIO: %v", err)
	}
}

func (m *MinIO) mustBeDedicated(op string) {
	m.tb.Helper()
	if !m.dedicated {
		m.tb.Fatalf("testenv: %s needs StartDedicatedMinIO: the shared server serves other tests too", op)
	}
}

func skipIfAsked(tb testing.TB) {
	tb.Helper()
	if os.Getenv(SkipEnv) == "1" {
		tb.Skipf("testenv: %s=1 is set, so this test, which needs a real MinIO, is skipped", SkipEnv)
	}
}

func newMinIO(tb testing.TB, srv *server, dedicated bool) *MinIO {
	tb.Helper()
	m := &MinIO{
		Endpoint: srv.endpoint, AccessKey: srv.user, SecretKey: srv.pass,
		Bucket: bucketName(tb.Name()), tb: tb, srv: srv, dedicated: dedicated,
	}
	u, _ := url.Parse(srv.endpoint)
	client, err := minio.New(u.Host, &minio.Options{
		Creds: credentials.NewStaticV4(srv.user, srv.pass, ""), Region: Region, MaxRetries: 3,
	})
	if err != nil {
		tb.Fatalf("testenv: minio client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for {
		err := client.MakeBucket(ctx, m.Bucket, minio.MakeBucketOptions{Region: Region})
		if err == nil {
			return m
		}
		// A server that just answered its readiness check may still be
		// initializing its object layer on a loaded machine.
		if !strings.Contains(err.Error(), "Server not initialized") || ctx.Err() != nil {
			tb.Fatalf("testenv: create bucket %s at %s: %v", m.Bucket, srv.endpoint, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// bucketName derives a valid, unique S3 bucket name from a test name, so
// a bucket left in a data dir says which test made it.
func bucketName(test string) string {
	var b strings.Builder
	b.WriteString("t-")
	dash := true
	for _, r := range strings.ToLower(test) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 44 {
			break
		}
	}
	name := strings.TrimRight(b.String(), "-")
	var rnd [6]byte
	rand.Read(rnd[:])
	return name + "-" + hex.EncodeToString(rnd[:])
}

func randomSecret() string {
	var b [18]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errorf formats testenv errors uniformly.
func errorf(format string, args ...any) error { return fmt.Errorf("testenv: "+format, args...) }
