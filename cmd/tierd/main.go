// Command tierd is the tiered-storage archiver daemon: it accepts records
// over HTTP, acknowledges them once durable, and serves them back from
// whichever tier holds them.
//
//	tierd --config examples/tierd.yaml [--data-dir DIR] [--listen ADDR]
//
// With no --config it runs on the embedded defaults (data in ./tierd-data,
// listening on 127.0.0.1:7070). Port 0 (--listen 127.0.0.1:0) takes a port
// the kernel picks; the "tierd listening" line's addr names the bound
// address, which is how tests find it (testenv.StartTierd). SIGINT or
// SIGTERM shuts it down gracefully.
// GET /metrics serves its Prometheus metrics (docs/metrics.md).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/internal/boot"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/server"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tierd:", err)
		os.Exit(1)
	}
}

type flags struct {
	config    string
	dataDir   string
	listen    string
	logFormat string
	logLevel  string
	// insecureListen allows an API without tokens on a non-loopback address.
	insecureListen bool
}

func newRootCmd() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "tierd",
		Short: "tierd, the tiered-storage archiver daemon",
		Example: `  tierd --config examples/tierd.yaml
  tierd --data-dir /var/lib/tierd --listen 127.0.0.1:7070`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML configuration file (default: embedded defaults)")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory (overrides data_dir)")
	fl.StringVar(&f.listen, "listen", "", "HTTP listen address host:port (overrides listen)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.BoolVar(&f.insecureListen, "insecure-listen", false, "allow listening beyond loopback with no auth.tokens configured (an open API)")
	return cmd
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

func run(ctx context.Context, f flags) error {
	log, err := newLogger(f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	cfg, err := boot.LoadConfig(f.config, f.dataDir, f.listen)
	if err != nil {
		return err
	}
	memLimit := setMemoryLimit(cfg)
	tokens, err := serverTokens(cfg)
	if err != nil {
		return err
	}
	if err := checkOpenListen(cfg.Listen, len(tokens) == 0, f.insecureListen); err != nil {
		return err
	}

	var tlsConfig *tls.Config
	if cfg.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// The port first, before anything is created on disk: a tierd that
	// cannot listen (the port is taken) leaves no data directory, cold
	// store or spool behind. Nothing is served until the engine is open:
	// connections wait in the listen backlog meanwhile.
	ln, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close() // after Serve, closing it again is harmless

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := newRegistry()
	backend, closeBackend, err := boot.OpenBackend(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	mig, err := newMigrator(backend, cfg, log, reg)
	if err != nil {
		closeBackend(context.Background())
		return err
	}
	api := server.New(backend, server.Options{
		MaxBodyBytes:   cfg.MaxBodyBytes,
		MaxRecordBytes: int(cfg.MaxRecordBytes),
		Logger:         log,
		Migrator:       mig,
		Registerer:     reg,
		Gatherer:       reg,
		Tokens:         tokens,
	})
	srv, sln := server.NewHTTPServer(api, ln, server.HTTPOptions{
		ReadTimeout:    cfg.HTTP.ReadTimeout,
		IdleTimeout:    cfg.HTTP.IdleTimeout,
		MaxConnections: fitConnections(cfg.HTTP.MaxConnections, log),
		TLSConfig:      tlsConfig,
		ErrorLog:       log,
		Logger:         log,
		Registerer:     reg,
	})
	srv.RegisterOnShutdown(api.Shutdown) // long-polling reads answer at once
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	mode := []any{"mode", "local"}
	if n, ok := backend.(interface {
		NodeID() string
		Epoch() uint64
	}); ok {
		mode = []any{"mode", "cluster", "node_id", n.NodeID(), "epoch", n.Epoch(), "catalog", cfg.Cluster.Catalog.Redacted()}
	}
	log.Info("tierd listening", append([]any{"addr", ln.Addr().String(), "scheme", scheme, "data_dir", cfg.DataDir, "wal_sync", cfg.WAL.Sync,
		"cold_store", boot.StoreURL(cfg), "migrator_schedule", cfg.Migrator.Schedule, "tokens", len(tokens), "go_memory_limit", memLimit}, mode...)...)
	if len(tokens) == 0 {
		log.Warn("no auth.tokens configured: the API is open to anyone who can reach it", "addr", ln.Addr().String(), "insecure_listen", f.insecureListen)
	}
	serveErr := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			serveErr <- srv.ServeTLS(sln, "", "") // the certificate is in TLSConfig
			return
		}
		serveErr <- srv.Serve(sln)
	}()
	if mig != nil {
		mig.Start()
	}

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// End the operator's long operations (offload, migrate, verify) and the
	// migrator's run before waiting for them: a move stalled on a hung
	// cold store is safe to abandon (its intent is settled at the next
	// start), and must not hold up the exit.
	api.Shutdown()
	if mig != nil {
		mig.Stop(shutCtx)
	}
	if serr := srv.Shutdown(shutCtx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if cerr := closeBackend(shutCtx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err == nil {
		log.Info("stopped")
	}
	return err
}

// newMigrator is the migrator on the configuration's schedule: of a local
// node's engine, or of a cluster node's retention (its Executor: the
// expire actions over the shared catalog's Parquet segments); nil for
// another backend (the server answers migrate and explain 409
// migrator_disabled).
func newMigrator(b server.Backend, cfg policy.Config, log *slog.Logger, reg prometheus.Registerer) (*migrator.Migrator, error) {
	var exec migrator.Executor
	switch x := b.(type) {
	case *engine.Engine:
		exec = x
	case interface{ Executor() migrator.Executor }:
		exec = x.Executor() // a cluster node: retention of its Parquet segments
	default:
		return nil, nil
	}
	return migrator.New(exec, migrator.Options{
		Config:         cfg,
		Schedule:       cfg.Migrator.Schedule,
		Concurrency:    cfg.Migrator.Concurrency,
		BytesPerSecond: cfg.Migrator.MaxBytesPerSecond,
		Logger:         log,
		Registerer:     reg,
	})
}

// listen binds addr, saying what to do when the port is taken.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w: another process (another tierd?) holds %s; stop it, or choose another address with --listen or listen: in the configuration", err, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// newRegistry is the registry every component registers its metrics
// with, served at GET /metrics (docs/metrics.md lists the series): tierd's
// own, plus the Go runtime's, the process's and the build's.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}

// setMemoryLimit makes the garbage collector keep the heap within what the
// budgets allow (policy.Config.MemoryLimit), unless $GOMEMLIMIT chose a
// limit already. It returns the limit in force.
func setMemoryLimit(cfg policy.Config) int64 {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MemoryLimit())
	}
	return debug.SetMemoryLimit(-1)
}
