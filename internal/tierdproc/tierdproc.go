// Package tierdproc starts a real tierd process and finds where it listens,
// for the tests (through testenv.StartTierd) and for tierbench.
//
// tierd is started on 127.0.0.1:0, so the kernel picks a port that is free
// and stays tierd's: no port is picked first and handed over, which raced
// with every other process on the machine (another test's tierd or MinIO
// took the port between the pick and the bind, and answered in its place).
// The address is read from tierd's own "tierd listening" log line, written
// once the engine is open, just before it serves.
package tierdproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ListeningMsg is the message of the log line tierd writes once it
// listens; its addr attribute is the bound address, scheme http or https.
const ListeningMsg = "tierd listening"

// Timeouts of the life cycle. Generous: a start on a loaded 2-core CI
// machine, with a WAL to replay, must not look like a broken one.
const (
	// ReadyTimeout bounds a start: the listening line, or the exit.
	ReadyTimeout = 90 * time.Second
	// StopTimeout bounds the wait for a clean exit after SIGTERM.
	StopTimeout = 30 * time.Second
	// rebindFor bounds a restart's retries of the address it had, while
	// the kernel or another process briefly holds the port.
	rebindFor = 10 * time.Second
)

// Options says what to start.
type Options struct {
	// Bin is the tierd binary.
	Bin string
	// Args are tierd's flags (--config, --data-dir, ...), without --listen.
	Args []string
	// Listen is the address to listen on; "" means 127.0.0.1:0.
	Listen string
	// Env is added to this process's environment.
	Env []string
	// Dir is the working directory; "" means this process's.
	Dir string
	// Output, if set, receives a copy of everything tierd writes (a log
	// file); the Proc keeps its own copy for Logs.
	Output io.Writer
	// SysProcAttr, if set, is the child's (tests set Pdeathsig, so that a
	// dying test binary takes its daemons with it).
	SysProcAttr *syscall.SysProcAttr
}

// Proc is a tierd process: the current run of it, and the output of every
// run since Start (restarts keep appending).
type Proc struct {
	opts Options
	log  *buffer

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the current run is reaped
	runStart int           // offset in log where the current run's output starts
	addr     string        // the address tierd logged, as it logged it
	scheme   string
}

// Start starts tierd and waits, within ReadyTimeout or ctx, until it logs
// that it listens. A tierd that exits first (a refused configuration) is an
// error holding its output; so is one that does not listen in time (it is
// killed).
func Start(ctx context.Context, o Options) (*Proc, error) {
	p := &Proc{opts: o, log: &buffer{}}
	if err := p.start(ctx, o.Listen); err != nil {
		return nil, err
	}
	return p, nil
}

// start runs tierd once on listen ("" for 127.0.0.1:0).
func (p *Proc) start(ctx context.Context, listen string) error {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	p.mu.Lock()
	if p.cmd != nil && !p.isExited() {
		p.mu.Unlock()
		return errors.New("tierdproc: tierd is still running")
	}
	cmd := exec.Command(p.opts.Bin, append(append([]string{}, p.opts.Args...), "--listen", listen)...)
	cmd.Env = append(os.Environ(), p.opts.Env...)
	cmd.Dir = p.opts.Dir
	var out io.Writer = p.log
	if p.opts.Output != nil {
		out = io.MultiWriter(p.log, p.opts.Output)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = p.opts.SysProcAttr
	p.runStart = p.log.Len()
	// With Pdeathsig the child dies when the thread that forked it ends,
	// and Go ends a thread when a goroutine locked to it exits (testenv
	// starts MinIO and PostgreSQL that way): a tierd forked on a thread
	// that later served such a goroutine would be killed when PostgreSQL
	// stops. So the fork happens on a thread locked until the child exits:
	// no other goroutine runs on it meanwhile.
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		p.mu.Unlock()
		return fmt.Errorf("tierdproc: start %s: %w", p.opts.Bin, err)
	}
	p.cmd, p.exited, p.addr, p.scheme = cmd, exited, "", ""
	runStart := p.runStart
	p.mu.Unlock()

	timer := time.NewTimer(ReadyTimeout)
	defer timer.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if addr, scheme, ok := ParseListening(p.log.From(runStart)); ok {
			p.mu.Lock()
			p.addr, p.scheme = addr, scheme
			p.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			if addr, scheme, ok := ParseListening(p.log.From(runStart)); ok { // listened, then exited
				p.mu.Lock()
				p.addr, p.scheme = addr, scheme
				p.mu.Unlock()
				return nil
			}
			return &ExitError{Code: cmd.ProcessState.ExitCode(), Output: p.log.From(runStart)}
		case <-ctx.Done():
			p.Kill()
			return fmt.Errorf("tierdproc: waiting for tierd to listen: %w\n%s", ctx.Err(), Tail(p.log.From(runStart), 4000))
		case <-timer.C:
			p.Kill()
			return fmt.Errorf("tierdproc: tierd did not log %q within %s:\n%s", ListeningMsg, ReadyTimeout, Tail(p.log.From(runStart), 4000))
		case <-tick.C:
		}
	}
}

// ExitError is a tierd that exited before it listened.
type ExitError struct {
	Code   int
	Output string // what the run wrote
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("tierdproc: tierd exited with code %d before it listened:\n%s", e.Code, Tail(e.Output, 4000))
}

// SetEnv replaces Options.Env for the runs Restart starts.
func (p *Proc) SetEnv(env []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opts.Env = env
}

// ProcessState is the current run's state once it exited; nil before.
func (p *Proc) ProcessState() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isExited() {
		return nil
	}
	return p.cmd.ProcessState
}

// Restart starts tierd again, with the same flags and data, on the address
// it listened on before, so that clients holding the address find it again
// (a kill -9 test's producer, a tierctl tail following across restarts).
// The port was tierd's until it stopped; while something else briefly
// holds it the start is retried for up to 10 s. The previous run must have
// exited (Stop or Kill).
func (p *Proc) Restart(ctx context.Context) error {
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	if addr == "" {
		return p.start(ctx, p.opts.Listen)
	}
	deadline := time.Now().Add(rebindFor)
	for {
		err := p.start(ctx, addr)
		var ee *ExitError
		if err == nil || !errors.As(err, &ee) || !strings.Contains(ee.Output, "address already in use") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Addr is the host:port to dial: the address tierd logged, with an
// unspecified host (0.0.0.0, ::) replaced by 127.0.0.1.
func (p *Proc) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return DialAddr(p.addr)
}

// ListenAddr is the address tierd logged, as it logged it.
func (p *Proc) ListenAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// URL is scheme://Addr.
func (p *Proc) URL() string {
	p.mu.Lock()
	scheme := p.scheme
	p.mu.Unlock()
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + p.Addr()
}

// Logs is everything tierd wrote, over every run.
func (p *Proc) Logs() string { return p.log.From(0) }

// RunLogs is what the current (or last) run wrote.
func (p *Proc) RunLogs() string {
	p.mu.Lock()
	from := p.runStart
	p.mu.Unlock()
	return p.log.From(from)
}

// Exited is closed once the current run has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// ExitCode is the current run's exit code; -1 while it runs or when a
// signal ended it.
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isExited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Pid is the current run's process id.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Signal sends sig to the current run.
func (p *Proc) Signal(sig os.Signal) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	return cmd.Process.Signal(sig)
}

func (p *Proc) isExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Stop shuts tierd down with SIGTERM and waits up to StopTimeout for it to
// exit; it is killed then. The error says why the exit was not clean: a
// timeout, or a code other than 0.
func (p *Proc) Stop() error {
	exited := p.Exited()
	p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(StopTimeout):
		p.Kill()
		return fmt.Errorf("tierdproc: tierd still running %s after SIGTERM (killed):\n%s", StopTimeout, Tail(p.RunLogs(), 4000))
	}
	if code := p.ExitCode(); code != 0 {
		return fmt.Errorf("tierdproc: tierd exited with code %d after SIGTERM:\n%s", code, Tail(p.RunLogs(), 4000))
	}
	return nil
}

// Kill sends SIGKILL (kill -9: no shutdown, nothing flushed) and waits for
// the exit. Killing an exited tierd does nothing.
func (p *Proc) Kill() {
	exited := p.Exited()
	p.Signal(syscall.SIGKILL)
	<-exited
}

var (
	textAddr   = regexp.MustCompile(`(?:^|\s)addr=("(?:[^"\\]|\\.)*"|\S+)`)
	textScheme = regexp.MustCompile(`(?:^|\s)scheme=(\S+)`)
)

// ParseListening finds tierd's listening line in its output (text or JSON
// log format) and returns the address and scheme it gives.
func ParseListening(out string) (addr, scheme string, ok bool) {
	for line := range strings.Lines(out) {
		if !strings.HasSuffix(line, "\n") {
			break // not written whole yet
		}
		switch {
		case strings.Contains(line, `msg="`+ListeningMsg+`"`):
			m := textAddr.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			addr = m[1]
			if strings.HasPrefix(addr, `"`) {
				var err error
				if err = json.Unmarshal([]byte(addr), &addr); err != nil {
					continue
				}
			}
			scheme = "http"
			if s := textScheme.FindStringSubmatch(line); s != nil {
				scheme = s[1]
			}
			return addr, scheme, true
		case strings.Contains(line, `"msg":"`+ListeningMsg+`"`):
			var rec struct {
				Addr   string `json:"addr"`
				Scheme string `json:"scheme"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil || rec.Addr == "" {
				continue
			}
			if rec.Scheme == "" {
				rec.Scheme = "http"
			}
			return rec.Addr, rec.Scheme, true
		}
	}
	return "", "", false
}

// DialAddr is addr with an unspecified host (0.0.0.0, ::, none) replaced by
// 127.0.0.1, to connect to a server listening on every interface.
func DialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// Tail is the last n bytes of s, marked as cut.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// buffer collects a process's output; it may be read while written.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}

// From is what was written from offset off on.
func (b *buffer) From(off int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b.Bytes()[off:])
}
