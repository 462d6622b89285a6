package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/internal/boot"
)

// catalog rebuild: the one verb that opens tierd's data itself, offline.

func newCatalogCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "catalog",
		Short:   "Work with a stopped tierd's catalog offline",
		Example: `  tierctl catalog rebuild --config /etc/tierd/tierd.yaml`,
		Args:    noArgs,
	}
	cmd.AddCommand(newCatalogRebuildCmd(a))
	return cmd
}

func newCatalogRebuildCmd(a *app) *cobra.Command {
	var config, dataDir string
	cmd := &cobra.Command{
		Use:   "rebuild --config FILE [--data-dir DIR]",
		Short: "Recreate catalog.db from the warm files and the cold store (offline)",
		Long: `rebuild recreates <data_dir>/catalog.db from what the tiers hold: every warm
file's footer and every cold object's Parquet metadata describe their
segment. It needs no server: it reads FILE (tierd's configuration, for
data_dir and cold.store; --data-dir overrides data_dir as it does for
tierd) and opens the data directory and the cold store itself.

Stop tierd first, and move the damaged catalog aside: rebuild refuses to
overwrite an existing catalog.db. It prints the streams and segments
catalogued, the warm files and cold objects read, and, one per line, every
conflict (copies that disagree, overlapping segments) and unreadable file
or object; those are left out of the new catalog, never dropped silently,
and do not change the exit code. It exits 1 when it could not rebuild.

What retention deleted stays deleted: each stream's retention marker
(<data_dir>/retention) gives back its watermark, so the WAL does not replay
deleted records, and segments found below it come back tombstoned. A
damaged marker stops the rebuild (move it aside to rebuild without it). What
the files do not carry is lost: move intents (the migrator redoes an
interrupted move) and last errors. Progress goes to stderr when it is a
terminal.`,
		Example: `  mv tierd-data/catalog.db tierd-data/catalog.db.broken
  tierctl catalog rebuild --config /etc/tierd/tierd.yaml
  tierctl catalog rebuild --config tierd.yaml --data-dir /srv/tierd -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" {
				return usagef("catalog rebuild needs --config FILE, tierd's configuration (for data_dir and cold.store)")
			}
			a.ran = true
			return a.catalogRebuild(cmd.Context(), config, dataDir)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "tierd's configuration file (required)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (overrides data_dir)")
	return cmd
}

// rebuildReport is catalog rebuild's JSON output.
type rebuildReport struct {
	Catalog     string   `json:"catalog"`
	Streams     int      `json:"streams"`
	Segments    int      `json:"segments"`
	WarmFiles   int      `json:"warm_files"`
	ColdObjects int      `json:"cold_objects"`
	Conflicts   []string `json:"conflicts"`
	Unreadable  []string `json:"unreadable"`
	// RetentionMarkers counts the streams whose retention watermark came
	// back from their marker; Expired the segments found below one,
	// catalogued tombstoned.
	RetentionMarkers int `json:"retention_markers"`
	Expired          int `json:"expired"`
}

func (a *app) catalogRebuild(ctx context.Context, config, dataDir string) error {
	cfg, err := boot.LoadConfig(config, dataDir, "")
	if err != nil {
		return err
	}
	if cfg.Cluster.Enabled() {
		// A cluster node's data_dir is a cache: a catalog.db made from it
		// would be a second, partial catalog beside the shared one.
		return fmt.Errorf("%s is a cluster configuration (cluster.catalog %s): its catalog is that PostgreSQL database, shared by every node, and data_dir holds only a cache; catalog rebuild is for a local node's catalog.db", config, cfg.Cluster.Catalog.Redacted())
	}
	// A mistyped directory must not get a new, empty catalog.
	if fi, err := os.Stat(cfg.DataDir); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("data_dir %s is not a directory", cfg.DataDir)
	}
	log := slog.New(slog.NewTextHandler(a.noteWriter(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	coldTier, err := boot.OpenCold(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	if coldTier != nil {
		defer coldTier.Close()
	}
	// The data directory, cold store and retention markers tierd would
	// open on this configuration: the engine's own options.
	opts := boot.EngineOptions(cfg, coldTier, log, nil)
	prog := a.newProgress("rebuild: warm", "files")
	rep, err := engine.RebuildCatalog(ctx, opts.DataDir, opts.Cold, opts.Logger, func(phase string, done, total int) {
		unit := "files"
		if phase == "cold" {
			unit = "objects"
		}
		prog.phase("rebuild: "+phase, unit)
		prog.update(int64(done), int64(total))
	})
	prog.done()
	path := filepath.Join(opts.DataDir, "catalog.db")
	if errors.Is(err, catalog.ErrExists) {
		return fmt.Errorf("%w\nrebuild only creates a missing catalog: stop tierd if it runs on %s, then move the catalog aside (mv %s %s.old) and run again",
			err, cfg.DataDir, path, path)
	}
	if err != nil {
		return fmt.Errorf("rebuilding %s: %w", path, err)
	}
	out := rebuildReport{Catalog: path, Streams: rep.Streams, Segments: rep.Segments, WarmFiles: rep.WarmFiles, ColdObjects: rep.ColdObjects,
		Conflicts: rep.Conflicts, Unreadable: rep.Unreadable, RetentionMarkers: rep.Markers, Expired: rep.Expired}
	if out.Conflicts == nil {
		out.Conflicts = []string{}
	}
	if out.Unreadable == nil {
		out.Unreadable = []string{}
	}
	if a.output == "json" {
		return writeJSON(a.stdout, out)
	}
	return printRebuild(a.stdout, out, coldTier != nil)
}

func printRebuild(w io.Writer, r rebuildReport, hasCold bool) error {
	fmt.Fprintf(w, "rebuilt %s: %d %s, %d %s\n", r.Catalog, r.Streams, plural(r.Streams, "stream", "streams"), r.Segments, plural(r.Segments, "segment", "segments"))
	if hasCold {
		fmt.Fprintf(w, "read %d warm %s and %d cold %s\n", r.WarmFiles, plural(r.WarmFiles, "file", "files"), r.ColdObjects, plural(r.ColdObjects, "object", "objects"))
	} else {
		fmt.Fprintf(w, "read %d warm %s (no cold store)\n", r.WarmFiles, plural(r.WarmFiles, "file", "files"))
	}
	if r.RetentionMarkers > 0 {
		fmt.Fprintf(w, "kept what retention deleted from %d %s; %d %s below it catalogued tombstoned\n",
			r.RetentionMarkers, plural(r.RetentionMarkers, "stream", "streams"), r.Expired, plural(r.Expired, "segment", "segments"))
	}
	for _, sec := range []struct {
		one, many string
		lines     []string
	}{{"conflict", "conflicts", r.Conflicts}, {"unreadable file or object", "unreadable files or objects", r.Unreadable}} {
		if len(sec.lines) == 0 {
			continue
		}
		fmt.Fprintf(w, "%d %s, not catalogued:\n", len(sec.lines), plural(len(sec.lines), sec.one, sec.many))
		for _, l := range sec.lines {
			if _, err := fmt.Fprintf(w, "  %s\n", oneLine(l)); err != nil {
				return err
			}
		}
	}
	return nil
}
