package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGSkipEnv is the variable that, set to "1", makes StartPostgres skip the
// test (saying so).
const PGSkipEnv = "TIERD_SKIP_POSTGRES"

// PGBinEnv, when set, names the directory holding initdb and postgres
// instead of the newest /usr/lib/postgresql/*/bin.
const PGBinEnv = "TIERD_PG_BIN"

// Postgres is a running PostgreSQL server and a database created for one
// test. The server comes from Debian's postgresql package (installed by
// testenv/postgres.sh when missing), initialised into a temporary
// directory and run as the postgres user when the tests run as root,
// since PostgreSQL refuses to run as root.
type Postgres struct {
	// DSN connects to the test's own, empty database:
	// postgres://postgres@127.0.0.1:PORT/DB?sslmode=disable.
	DSN string
	// Database is the test's database name.
	Database string

	srv       *pgServer
	dedicated bool
	tb        testing.TB
}

// sharedPG is the one PostgreSQL server a test binary's StartPostgres calls
// share, like shared for MinIO; Main stops it.
var sharedPG struct {
	mu  sync.Mutex
	srv *pgServer
	err error
}

// StartPostgres returns the test binary's shared PostgreSQL (started on
// first use) with a fresh database for tb, dropped when tb ends. Use
// StartDedicatedPostgres for a test that stops or restarts the server.
func StartPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	skipPGIfAsked(tb)
	shared.mu.Lock()
	inMain := shared.inMain
	shared.mu.Unlock()
	if !inMain {
		return StartDedicatedPostgres(tb)
	}
	sharedPG.mu.Lock()
	if sharedPG.srv == nil && sharedPG.err == nil {
		sharedPG.srv, sharedPG.err = startPG(tb)
	}
	srv, err := sharedPG.srv, sharedPG.err
	sharedPG.mu.Unlock()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return newPostgres(tb, srv, false)
}

// StartDedicatedPostgres starts a PostgreSQL server of tb's own, stopped and
// removed when tb ends, with one fresh database.
func StartDedicatedPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	skipPGIfAsked(tb)
	srv, err := startPG(tb)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() { srv.stop(); srv.removeDir() })
	return newPostgres(tb, srv, true)
}

// Stop stops a dedicated server (a fast shutdown: connections are cut).
func (p *Postgres) Stop() {
	p.tb.Helper()
	p.mustBeDedicated("Stop")
	if err := p.srv.stop(); err != nil {
		p.tb.Fatalf("testenv: stop postgres: %v", err)
	}
}

// Start starts a stopped dedicated server again on the same port and data.
func (p *Postgres) Start() {
	p.tb.Helper()
	p.mustBeDedicated("Start")
	if err := p.srv.start(); err != nil {
		p.tb.Fatalf("testenv: start postgres: %v", err)
	}
}

// Restart stops and starts a dedicated server; connections open at the
// time are cut, the data stays.
func (p *Postgres) Restart() {
	p.tb.Helper()
	p.Stop()
	p.Start()
}

// AdminDSN connects to the server's postgres database as the superuser.
func (p *Postgres) AdminDSN() string { return p.srv.dsn("postgres") }

func (p *Postgres) mustBeDedicated(op string) {
	if !p.dedicated {
		p.tb.Fatalf("testenv: %s needs StartDedicatedPostgres: the shared server serves other tests", op)
	}
}

func skipPGIfAsked(tb testing.TB) {
	tb.Helper()
	if os.Getenv(PGSkipEnv) == "1" {
		tb.Skipf("testenv: %s=1 is set: skipping a test that needs PostgreSQL", PGSkipEnv)
	}
}

var unsafeDBChars = regexp.MustCompile(`[^a-z0-9_]+`)

func newPostgres(tb testing.TB, srv *pgServer, dedicated bool) *Postgres {
	tb.Helper()
	name := strings.ToLower(tb.Name())
	name = unsafeDBChars.ReplaceAllString(name, "_")
	if len(name) > 40 {
		name = name[:40]
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	name = "t_" + name + "_" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.dsn("postgres"))
	if err != nil {
		tb.Fatalf("testenv: connect to postgres: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("testenv: create database %s: %v", name, err)
	}
	if !dedicated {
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, srv.dsn("postgres"))
			if err != nil {
				return // the server is gone; Main removes it
			}
			defer conn.Close(context.Background())
			conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		})
	}
	return &Postgres{DSN: srv.dsn(name), Database: name, srv: srv, dedicated: dedicated, tb: tb}
}

// stopSharedPostgres is Main's: it stops the shared server, if any.
func stopSharedPostgres() {
	sharedPG.mu.Lock()
	defer sharedPG.mu.Unlock()
	if sharedPG.srv != nil {
		sharedPG.srv.stop()
		sharedPG.srv.removeDir()
		sharedPG.srv = nil
	}
}

// pgServer is one postgres process and its temporary directory.
type pgServer struct {
	binDir string
	dir    string // holds data/, sock/ and postgres.log
	port   int
	cred   *syscall.Credential // the postgres user's, when running as root

	mu   sync.Mutex
	proc *os.Process
	done chan struct{}
}

func (s *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

func (s *pgServer) logPath() string { return filepath.Join(s.dir, "postgres.log") }

func startPG(tb testing.TB) (*pgServer, error) {
	tb.Helper()
	binDir, err := pgBinDir(tb)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tierd-pg-*")
	if err != nil {
		return nil, err
	}
	s := &pgServer{binDir: binDir, dir: dir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres refuses to run as root and there is no postgres user (%v): run testenv/postgres.sh install", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sock"), 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.cred != nil {
		os.Chown(filepath.Join(dir, "sock"), int(s.cred.Uid), int(s.cred.Gid))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), "-D", filepath.Join(dir, "data"),
		"-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Dir = dir
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v:\n%s", err, out.String())
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		s.removeDir()
		return nil, err
	}
	return s, nil
}

// start launches postgres on s.port and waits until it accepts queries.
func (s *pgServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.binDir, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port), "-k", filepath.Join(s.dir, "sock"),
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=400",
		// Tests only: the data need not survive the machine's crash.
		"-c", "fsync=off", "-c", "full_page_writes=off")
	cmd.Stdout, cmd.Stderr = logf, logf
	attr := procAttr()
	attr.Credential = s.cred
	cmd.SysProcAttr = attr
	cmd.Dir = s.dir
	// Pdeathsig fires when the thread that started the child ends, and
	// Go may retire a thread (one a locked goroutine exited on): start
	// postgres, as MinIO is started (server.go), on a thread locked until
	// the child exits.
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
		return fmt.Errorf("start postgres: %w", err)
	}
	s.proc = cmd.Process
	s.done = done
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			s.proc = nil
			return fmt.Errorf("postgres exited at start:\n%s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("postgres not ready after %v (%v):\n%s", readyTimeout, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *pgServer) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// stopLocked asks for a fast shutdown (SIGINT: connections cut, the data
// consistent) and kills the process when it does not go in time.
func (s *pgServer) stopLocked() error {
	if s.proc == nil {
		return nil
	}
	s.proc.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(stopGrace):
		s.proc.Kill()
		<-s.done
	}
	s.proc = nil
	return nil
}

func (s *pgServer) removeDir() { os.RemoveAll(s.dir) }

func (s *pgServer) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// pgBinDir finds initdb and postgres: $TIERD_PG_BIN, else the newest
// /usr/lib/postgresql/*/bin, installing Debian's package with
// testenv/postgres.sh when there is none.
func pgBinDir(tb testing.TB) (string, error) {
	tb.Helper()
	if d := os.Getenv(PGBinEnv); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("%s=%s: %w", PGBinEnv, d, err)
		}
		return d, nil
	}
	if d := newestPGBin(); d != "" {
		return d, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	tb.Logf("testenv: no PostgreSQL under /usr/lib/postgresql; installing it with testenv/postgres.sh install")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(root, "testenv", "postgres.sh"), "install")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("installing PostgreSQL failed (%v); set %s=1 to skip the tests that need it on purpose:\n%s", err, PGSkipEnv, out.String())
	}
	if d := newestPGBin(); d != "" {
		return d, nil
	}
	return "", fmt.Errorf("postgres.sh install left no /usr/lib/postgresql/*/bin/initdb")
}

func newestPGBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return ""
	}
	sort.Slice(ok, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(ok[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(ok[j])))
		return vi < vj
	})
	return ok[len(ok)-1]
}
