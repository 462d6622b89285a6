package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
	"github.com/tierd/tierd/warm"
)

// RebuildProgress is told what the rebuild is reading: the phase ("warm",
// "cold"), how many of its items are done, and how many there are.
type RebuildProgress func(phase string, done, total int)

// RebuildReport says what RebuildCatalog found.
type RebuildReport struct {
	catalog.RebuildReport
	// WarmFiles and ColdObjects count what was read.
	WarmFiles, ColdObjects int
	// Unreadable lists the files and objects that could not be read, one
	// line each; their segments are not in the new catalog.
	Unreadable []string
}

// RebuildCatalog recreates <dataDir>/catalog.db from the warm directory and a
// listing of the cold store alone (coldTier may be nil): every warm file's
// footer and every cold object's Parquet metadata describe their segment.
// It runs offline — tierd must not be running on dataDir — and refuses to
// overwrite an existing catalog (catalog.ErrExists).
//
// What retention deleted is not forgotten: the retention markers in
// <dataDir>/retention (RetentionDir) give each stream its watermark back,
// so the WAL does not replay deleted records and segments found below it
// are catalogued tombstoned (catalog.Rebuild). What the files do not carry
// is lost: intents (an interrupted move is redone by the migrator) and last
// errors. A segment's SealedAt comes from the warm file's footer or the
// cold object's metadata (the seal time itself); for files written before
// those carried it, from the warm file's modification time (written right
// after the seal, so the age is at most the flusher's delay younger, or a
// few milliseconds older, as file times come from the kernel's coarse
// clock), else now (the age restarts: retention comes late, never early).
func RebuildCatalog(ctx context.Context, dataDir string, coldTier *cold.Tier, log *slog.Logger, progress RebuildProgress) (RebuildReport, error) {
	var rep RebuildReport
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if progress == nil {
		progress = func(string, int, int) {}
	}
	path := filepath.Join(dataDir, "catalog.db")
	if _, err := os.Lstat(path); err == nil {
		return rep, fmt.Errorf("%w: %s (move it aside to rebuild)", catalog.ErrExists, path)
	}
	ws, err := warm.Open(filepath.Join(dataDir, "warm"), warm.Options{Logger: log})
	if err != nil {
		return rep, fmt.Errorf("engine: rebuild: %w", err)
	}
	defer ws.Close()
	files, err := ws.List()
	if err != nil {
		return rep, fmt.Errorf("engine: rebuild: %w", err)
	}
	var warmSegs, coldSegs []tiers.SegmentMeta
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		m, err := warmMeta(ws, f)
		if err != nil {
			rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("warm %s: %v", f.Path, err))
		} else {
			warmSegs = append(warmSegs, m)
		}
		progress("warm", i+1, len(files))
	}
	rep.WarmFiles = len(files)
	if coldTier != nil {
		var objs []cold.Object
		for o, err := range coldTier.Objects(ctx, "") {
			if err != nil {
				return rep, fmt.Errorf("engine: rebuild: %w", err)
			}
			if tablesync.NotASegment(o.Key, o.Size) {
				continue // the Iceberg tables' metadata: `tierctl table sync` rebuilds the tables after the catalog
			}
			objs = append(objs, o)
		}
		for i, o := range objs {
			if !o.Segment {
				rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("cold %s: not a segment object", o.Key))
				continue
			}
			m, err := coldTier.ObjectMeta(ctx, o.Key)
			if err != nil {
				rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("cold %s: %v", o.Key, err))
			} else {
				coldSegs = append(coldSegs, m)
			}
			progress("cold", i+1, len(objs))
		}
		rep.ColdObjects = len(objs)
	}
	reconcileSealedAt(warmSegs, coldSegs, time.Now().UTC())
	cr, err := catalog.Rebuild(ctx, path, warmSegs, coldSegs, catalog.Options{Logger: log, RetentionDir: RetentionDir(dataDir)})
	rep.RebuildReport = cr
	if err != nil {
		return rep, err
	}
	return rep, nil
}

// warmMeta reads a warm file's footer, with its sealed_at, or the file's
// modification time for a file written before the footer carried it.
func warmMeta(ws *warm.Store, f warm.SegmentFile) (tiers.SegmentMeta, error) {
	r, err := ws.Acquire(f.Stream, f.Base)
	if err != nil {
		return tiers.SegmentMeta{}, err
	}
	defer r.Release()
	m := r.Meta()
	m.Stream = f.Stream
	if !m.SealedAt.IsZero() {
		m.Placements = tiers.Of(tiers.Warm)
		return m, nil
	}
	info, err := os.Stat(f.Path)
	if err != nil {
		return tiers.SegmentMeta{}, err
	}
	m.SealedAt = info.ModTime().UTC()
	m.Placements = tiers.Of(tiers.Warm)
	return m, nil
}

// reconcileSealedAt gives the warm and cold copies of a segment one seal
// time: the cold object's tierd.sealed_at when it has one (the seal time
// itself; a version 1 warm file's modification time only approximates it),
// else the warm copy's, else now for a cold object written before format
// 1.1 with no warm copy (its age restarts: retention comes late, never
// early).
func reconcileSealedAt(warmSegs, coldSegs []tiers.SegmentMeta, now time.Time) {
	type id struct {
		stream string
		base   uint64
	}
	warmAt := make(map[id]*tiers.SegmentMeta, len(warmSegs))
	for i := range warmSegs {
		warmAt[id{warmSegs[i].Stream, warmSegs[i].Base}] = &warmSegs[i]
	}
	for i := range coldSegs {
		c := &coldSegs[i]
		w := warmAt[id{c.Stream, c.Base}]
		switch {
		case !c.SealedAt.IsZero() && w != nil:
			w.SealedAt = c.SealedAt
		case c.SealedAt.IsZero() && w != nil:
			c.SealedAt = w.SealedAt
		case c.SealedAt.IsZero():
			c.SealedAt = now
		}
	}
}
