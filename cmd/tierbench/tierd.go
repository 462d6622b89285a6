package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/tierd/tierd/internal/tierdproc"
)

// Starting and stopping the tierd that tierbench produce and memory measure.

// tierdProc is a tierd this command started on a throwaway data directory;
// its output goes to tierd.log there.
type tierdProc struct {
	*tierdproc.Proc
	addr string
	logf *os.File
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

// startTierd starts bin with produceConfig and its data in dir, on
// 127.0.0.1:0, and returns once it logs the address it listens on
// (internal/tierdproc: no port is picked first, so none can be lost to
// another process in between).
func startTierd(ctx context.Context, bin, dir string) (*tierdProc, error) {
	return startTierdConfig(ctx, bin, dir, produceConfig)
}

// startTierdConfig is startTierd with the configuration file's text.
func startTierdConfig(ctx context.Context, bin, dir, config string) (*tierdProc, error) {
	cfg := filepath.Join(dir, "tierd.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "tierd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// info: rare events only, and the "listening" line gives the address.
	p, err := tierdproc.Start(ctx, tierdproc.Options{Bin: bin, Args: []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data")}, Output: logf})
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("produce: %s did not start: %w", bin, err)
	}
	return &tierdProc{Proc: p, addr: p.Addr(), logf: logf}, nil
}

// stop shuts the daemon down with SIGTERM (killed if it is still running
// tierdproc.StopTimeout later) and closes its log file.
func (d *tierdProc) stop() {
	d.Stop()
	d.logf.Close()
}
