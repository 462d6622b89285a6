package testenv

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts for the server's life cycle. Generous: the CI machine is a noisy
// 2-core VM, and a slow start must not look like a broken one.
const (
	readyTimeout = 90 * time.Second
	stopGrace    = 10 * time.Second
)

// server is one MinIO process and the directory holding its data and log.
type server struct {
	bin, dir   string
	user, pass string
	port       int
	endpoint   string
	ownsDir    bool // remove dir after the last stop (the shared server)

	mu   sync.Mutex
	proc *os.Process
	done chan struct{} // closed when proc has exited
}

func startServer(bin, dir string, ownsDir bool) (*server, error) {
	s := &server{bin: bin, dir: dir, user: "tierd-test", pass: randomSecret(), ownsDir: ownsDir}
	if err := s.start(true); err != nil {
		if ownsDir {
			s.removeDir()
		}
		return nil, err
	}
	return s, nil
}

func (s *server) logPath() string { return filepath.Join(s.dir, "minio.log") }

// start launches the process and waits until it serves requests. With
// newPort it picks a free port (and tries another if someone takes it
// between the pick and MinIO's bind); a restart keeps the old one.
func (s *server) start(newPort bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errorf("MinIO at %s is already running", s.endpoint)
	}
	attempts := 1
	if newPort {
		attempts = 5
	}
	var err error
	for range attempts {
		if newPort {
			if s.port, err = freePort(); err != nil {
				return err
			}
			s.endpoint = "http://127.0.0.1:" + strconv.Itoa(s.port)
		}
		if err = s.launchLocked(); err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return err
}

func (s *server) launchLocked() error {
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "server", "--quiet",
		"--address", "127.0.0.1:"+strconv.Itoa(s.port),
		"--certs-dir", filepath.Join(s.dir, "certs"), data)
	cmd.Env = append(envWithout("MINIO_"),
		"MINIO_ROOT_USER="+s.user, "MINIO_ROOT_PASSWORD="+s.pass,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()

	// The child gets SIGKILL when the thread that started it dies
	// (Pdeathsig, on Linux), so a test binary that crashes or times out
	// leaves no MinIO behind. Go ends a thread when a goroutine locked to
	// it exits, so every child with Pdeathsig (MinIO, PostgreSQL, tierd in
	// internal/tierdproc) is forked on a thread locked until that child
	// exits: no thread that forked a live child ever ends.
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return errorf("start %s: %w", s.bin, err)
	}
	s.proc, s.done = cmd.Process, done
	if err := s.waitReady(); err != nil {
		s.stopLocked()
		return err
	}
	return nil
}

func (s *server) waitReady() error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errorf("MinIO exited during start-up on port %d; log %s:\n%s", s.port, s.logPath(), s.logTail())
		default:
		}
		resp, err := client.Get(s.endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errorf("MinIO on port %d not ready after %v; log %s:\n%s", s.port, readyTimeout, s.logPath(), s.logTail())
}

func (s *server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// signal sends sig to the running process.
func (s *server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return errorf("MinIO at %s is not running", s.endpoint)
	}
	return s.proc.Signal(sig)
}

// isStopped reports whether the process is stopped, where the platform
// can tell (ok).
func (s *server) isStopped() (isStopped, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false, true
	}
	return stopped(s.proc.Pid)
}

func (s *server) stopLocked() error {
	if s.proc == nil {
		return nil
	}
	s.proc.Signal(syscall.SIGCONT) // a paused process would hold SIGTERM until continued
	s.proc.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopGrace):
		s.proc.Kill()
		<-s.done
	}
	s.proc, s.done = nil, nil
	return nil
}

func (s *server) removeDir() {
	if s.ownsDir {
		os.RemoveAll(s.dir)
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func envWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// binary returns the MinIO binary, building it with minio.sh when it is
// missing. The build takes minutes the first time; it is logged so a slow
// test is not a mystery.
func binary(tb testing.TB) (string, error) {
	tb.Helper()
	if p := os.Getenv(BinEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", errorf("%s=%s: %w", BinEnv, p, err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".cache", "bin", "minio")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	tb.Logf("testenv: %s is missing; building it with testenv/minio.sh build (several minutes the first time)", bin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(root, "testenv", "minio.sh"), "build")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", errorf("building MinIO failed (%v); set %s=1 to skip the tests that need it on purpose:\n%s", err, SkipEnv, out.String())
	}
	if _, err := os.Stat(bin); err != nil {
		return "", errorf("minio.sh build did not produce %s: %w", bin, err)
	}
	return bin, nil
}

// repoRoot finds the tierd module root above the working directory (go
// test runs in the package directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/tierd/tierd\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no tierd go.mod above the working directory; set " + BinEnv)
		}
		dir = parent
	}
}
