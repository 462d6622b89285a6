package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tierd/tierd/internal/tierdproc"
)

// TierdOptions says how StartTierd runs tierd. Zero fields take defaults.
type TierdOptions struct {
	// Config is the --config file; "" runs on the embedded defaults.
	Config string
	// DataDir is the --data-dir; "" means a fresh t.TempDir().
	DataDir string
	// Env is added to the test's environment ("TIERD_FAILPOINTS=...").
	Env []string
	// Args are more flags (--insecure-listen, --log-format json, ...).
	Args []string
	// Listen is the --listen address; "" means 127.0.0.1:0. A fixed port
	// is for tests that must listen beyond loopback ("0.0.0.0:0" is the
	// usual choice, still port 0).
	Listen string
	// Bin is the tierd binary; "" builds cmd/tierd once per test binary.
	Bin string
	// Command, if set, is the whole command line to run instead (the
	// binary, then its flags: a README's command), in the working
	// directory Dir; Config, DataDir, Args and Bin are then unused and
	// DataDir() is "". --listen is still added.
	Command []string
	Dir     string
}

// Tierd is a real tierd process started by StartTierd: its address, data
// directory and logs, and its life cycle (Stop, Kill, Restart). It is
// killed when the test ends, and the end of its log is printed if the test
// failed.
type Tierd struct {
	*tierdproc.Proc
	tb      testing.TB
	dataDir string
}

// StartTierd starts tierd for tb on 127.0.0.1:0 and returns once it
// listens, with the address it logged in its "tierd listening" line; a
// tierd that exits or does not listen within tierdproc.ReadyTimeout fails
// the test with its output. Use StartTierdErr for a start that is meant to
// fail.
func StartTierd(tb testing.TB, o TierdOptions) *Tierd {
	tb.Helper()
	d, err := StartTierdErr(tb, o)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// StartTierdErr is StartTierd returning the start's error (a
// *tierdproc.ExitError for a tierd that refused to start, holding its
// output) instead of failing the test.
func StartTierdErr(tb testing.TB, o TierdOptions) (*Tierd, error) {
	tb.Helper()
	var args []string
	switch {
	case len(o.Command) > 0:
		o.Bin, args, o.DataDir = o.Command[0], o.Command[1:], ""
	default:
		if o.Bin == "" {
			o.Bin = TierdBin(tb)
		}
		if o.DataDir == "" {
			o.DataDir = tb.TempDir()
		}
		if o.Config != "" {
			args = append(args, "--config", o.Config)
		}
		args = append(args, "--data-dir", o.DataDir)
		args = append(args, o.Args...)
	}
	p, err := tierdproc.Start(context.Background(), tierdproc.Options{
		Bin: o.Bin, Args: args, Listen: o.Listen, Env: o.Env, Dir: o.Dir, SysProcAttr: procAttr(),
	})
	if err != nil {
		return nil, err
	}
	d := &Tierd{Proc: p, tb: tb, dataDir: o.DataDir}
	tb.Cleanup(func() {
		d.Proc.Kill()
		if tb.Failed() {
			tb.Logf("tierd %s (data %s, env %v) log tail:\n%s", d.Addr(), d.dataDir, o.Env, d.Tail(6000))
		}
	})
	return d, nil
}

// DataDir is the daemon's --data-dir.
func (d *Tierd) DataDir() string { return d.dataDir }

// Tail is the last n bytes of the output of every run.
func (d *Tierd) Tail(n int) string { return tierdproc.Tail(d.Logs(), n) }

// Stop shuts tierd down with SIGTERM and fails the test unless it exits
// with code 0 within tierdproc.StopTimeout.
func (d *Tierd) Stop() {
	d.tb.Helper()
	if err := d.Proc.Stop(); err != nil {
		d.tb.Fatal(err)
	}
}

// Restart starts tierd again (after Stop or Kill) with the same flags and
// data directory, on the address it had (see tierdproc.Proc.Restart), and
// fails the test if it does not listen. env replaces TierdOptions.Env: a
// restart without arguments runs with the test's environment alone (no
// failpoint of the first run).
func (d *Tierd) Restart(env ...string) {
	d.tb.Helper()
	d.Proc.SetEnv(env)
	if err := d.Proc.Restart(context.Background()); err != nil {
		d.tb.Fatal(err)
	}
}

// tierdBuild is the tierd binary built for this test binary, removed by
// Main.
var tierdBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// TierdBin returns the tierd binary, built from this module's cmd/tierd on
// first use (once per test binary; Main removes it at the end).
func TierdBin(tb testing.TB) string {
	tb.Helper()
	tierdBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "tierd-bin-")
		if err != nil {
			tierdBuild.err = err
			return
		}
		bin := filepath.Join(dir, "tierd")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/tierd/tierd/cmd/tierd").CombinedOutput()
		if err != nil {
			os.RemoveAll(dir)
			tierdBuild.err = fmt.Errorf("testenv: go build tierd: %v\n%s", err, out)
			return
		}
		tierdBuild.dir, tierdBuild.bin = dir, bin
	})
	if tierdBuild.err != nil {
		tb.Fatal(tierdBuild.err)
	}
	return tierdBuild.bin
}

// removeTierdBuild removes the binary TierdBin built, if any.
func removeTierdBuild() {
	if tierdBuild.dir != "" {
		os.RemoveAll(tierdBuild.dir)
	}
}
