package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Starting and stopping the tierd that tierbench produce and memory measure.

// tierdProc is a tierd this command started on a throwaway data directory.
type tierdProc struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	exited  chan struct{}
}

// findTierd returns the tierd binary to start: explicit if given, else the
// one `make build` put next to this executable, else one go build makes in
// tmp (which needs the module's source around the working directory).
func findTierd(ctx context.Context, explicit, tmp string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	exe, err := os.Executable()
	if err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			bin := filepath.Join(filepath.Dir(exe), "tierd")
			if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return bin, nil
			}
		}
	}
	bin := filepath.Join(tmp, "tierd")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/tierd/tierd/cmd/tierd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("produce: no tierd next to %s, and go build failed (run make build, or pass --tierd or --addr): %w\n%s", exe, err, out)
	}
	return bin, nil
}

// startTierd starts bin with produceConfig and its data in dir, on a free
// loopback port, and waits until GET /healthz answers 200. The port is
// found as the tests find it (listen on :0, close, pass it on), so another
// process can take it in between: that start is retried on a new port.
func startTierd(ctx context.Context, bin, dir string) (*tierdProc, error) {
	return startTierdConfig(ctx, bin, dir, produceConfig)
}

// startTierdConfig is startTierd with the configuration file's text.
func startTierdConfig(ctx context.Context, bin, dir, config string) (*tierdProc, error) {
	cfg := filepath.Join(dir, "tierd.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	for range 5 {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		d := &tierdProc{addr: addr, logPath: filepath.Join(dir, "tierd.log"), exited: make(chan struct{})}
		logf, err := os.Create(d.logPath)
		if err != nil {
			return nil, err
		}
		d.cmd = exec.Command(bin, "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--listen", addr) // info: rare events only, and its "listening" line tells this process from another on the port
		d.cmd.Stdout, d.cmd.Stderr = logf, logf
		err = d.cmd.Start()
		logf.Close() // the child has its own descriptor
		if err != nil {
			return nil, fmt.Errorf("produce: start %s: %w", bin, err)
		}
		go func() { d.cmd.Wait(); close(d.exited) }()
		if err := d.waitHealthy(ctx, 30*time.Second); err == nil {
			return d, nil
		}
		d.stop()
		if log := d.logTail(4000); !strings.Contains(log, "address already in use") {
			return nil, fmt.Errorf("produce: %s did not become healthy on %s; its log:\n%s", bin, addr, log)
		}
	}
	return nil, errors.New("produce: tierd found no free port in 5 tries")
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitHealthy polls /healthz until it answers 200 and the log says this
// process listens, the process exits, or timeout passes.
func (d *tierdProc) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			return errors.New("tierd exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := http.Get("http://" + d.addr + "/healthz"); err == nil {
			resp.Body.Close()
			// Its own "listening" line too: a process that took the port
			// after it was picked may answer /healthz in its place.
			if log, _ := os.ReadFile(d.logPath); resp.StatusCode == http.StatusOK && strings.Contains(string(log), "tierd listening") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("timed out")
}

// stop shuts the daemon down with SIGTERM, and kills it if it is still
// running 15 s later.
func (d *tierdProc) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// logTail returns the last n bytes of the daemon's log.
func (d *tierdProc) logTail(n int) string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > n {
		b = append([]byte("…"), b[len(b)-n:]...)
	}
	return string(b)
}
