package catalog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

// ErrExists refuses Rebuild over an existing catalog: rebuilding forgets
// intents and failures, so the operator moves the old file aside first.
var ErrExists = errors.New("catalog: catalog already exists")

// ErrDamagedMarker refuses Rebuild when a retention marker cannot be read:
// without it the rebuild cannot tell which of the stream's records
// retention deleted, and the WAL could bring them back.
var ErrDamagedMarker = errors.New("catalog: damaged retention marker")

// RebuildReport says what Rebuild found.
type RebuildReport struct {
	// Streams and Segments count what the new catalog holds.
	Streams, Segments int
	// Conflicts describes, one line each, every segment that was not
	// catalogued as given: warm and cold copies of one base that disagree,
	// segments that overlap, and metadata that fails the catalog's checks.
	Conflicts []string
	// Markers counts the streams whose retention watermark came from their
	// retention marker; Expired the segments found below it, catalogued
	// tombstoned (retention had begun deleting them; their copies go after
	// cold.delete_delay).
	Markers, Expired int
}

// Rebuild creates a fresh catalog at path from segment metadata gathered from
// the tiers themselves: warmSegments from the warm files' footers,
// coldSegments from the cold objects' metadata (ColdBytes their sizes). The
// placements given are ignored: a segment found in warmSegments is warm, in
// coldSegments cold, in both — same Last and Digest — warm and cold.
//
// What retention deleted comes from the retention markers in
// opts.RetentionDir (readMarkers): each marked stream gets its watermark
// back, its next offset is at least that (so the WAL never replays a
// deleted record, and offsets are never handed out twice), and its segments
// found below the watermark are catalogued tombstoned, now, to be deleted
// again. A marker that cannot be read fails the rebuild (ErrDamagedMarker)
// before anything is written. Streams' next offsets otherwise follow from
// their highest segments. Nothing is stored about intents or failures (the
// files do not carry them).
//
// What cannot be catalogued is reported, never silently dropped: a warm and a
// cold segment with the same base but different Last or Digest (the warm one
// is kept: it is local and its frames are checksummed), a segment that
// overlaps one with a lower base (the lower one is kept), and invalid
// metadata. Identical duplicates within one tier are merged.
//
// Rebuild fails with ErrExists if path exists. It writes path+".tmp"
// (replacing a leftover one) and renames it into place only when complete,
// so a failed or interrupted rebuild leaves no catalog behind. opts are
// those of Open, except that no metrics are registered.
func Rebuild(ctx context.Context, path string, warmSegments []tiers.SegmentMeta, coldSegments []tiers.SegmentMeta, opts Options) (RebuildReport, error) {
	var rep RebuildReport
	if _, err := os.Lstat(path); err == nil {
		return rep, fmt.Errorf("%w: %s (move it aside to rebuild)", ErrExists, path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("catalog: rebuild: %w", err)
	}
	marks := map[string]uint64{}
	if opts.RetentionDir != "" {
		m, problems, err := readMarkers(opts.RetentionDir)
		if err != nil {
			return rep, err
		}
		if len(problems) > 0 {
			return rep, fmt.Errorf("%w: %s; move it aside to rebuild without it (what retention deleted from that stream may come back from the WAL)", ErrDamagedMarker, strings.Join(problems, "; "))
		}
		marks = m
	}
	segs, conflicts := mergeTiers(warmSegments, coldSegments)
	rep.Conflicts = conflicts
	if opts.Now == nil {
		opts.Now = time.Now
	}
	now := opts.Now().Round(0).UTC()
	for i := range segs {
		if w, ok := marks[segs[i].Stream]; ok && segs[i].Last < w {
			segs[i].Tombstoned = now
			if segs[i].SealedAt.After(now) {
				segs[i].Tombstoned = segs[i].SealedAt
			}
			rep.Expired++
		} else if ok && segs[i].Base < w {
			rep.Conflicts = append(rep.Conflicts, fmt.Sprintf("%s %s straddles the retention watermark %d: kept live", segs[i].Placements, describe(&segs[i]), w))
		}
	}

	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("catalog: rebuild: %w", err)
	}
	// The temporary catalog registers no metrics: the caller's registerer
	// is for the catalog it opens afterwards, and a second registration of
	// the same collectors would fail. Nor does it touch the markers: they
	// are its input.
	opts.Registerer = nil
	opts.RetentionDir = ""
	c, err := Open(tmp, opts)
	if err != nil {
		return rep, err
	}
	streams := map[string]bool{}
	err = c.update(ctx, "rebuild", func(tx *bolt.Tx) error {
		for i := range segs {
			if i%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := c.putTx(tx, &segs[i]); err != nil {
				return err
			}
			streams[segs[i].Stream] = true
		}
		if err := c.setCreatedTx(tx, segs); err != nil {
			return err
		}
		for name, w := range marks {
			s, _, err := c.ensureStreamTx(tx, name)
			if err != nil {
				return err
			}
			s.NextOffset = max(s.NextOffset, w)
			s.RetainedFrom = w
			if err := storeStream(tx, name, &s); err != nil {
				return err
			}
			streams[name] = true
		}
		rep.Markers = len(marks)
		return nil
	})
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return rep, fmt.Errorf("catalog: rebuild %s: %w", path, err)
	}
	rep.Streams, rep.Segments = len(streams), len(segs)
	c.log.Info("catalog rebuilt", "path", path, "streams", rep.Streams, "segments", rep.Segments, "conflicts", len(rep.Conflicts))
	return rep, nil
}

// setCreatedTx stamps each rebuilt stream's CreatedAt with the earliest
// SealedAt of its segments, the closest the files come to its creation.
func (c *Catalog) setCreatedTx(tx *bolt.Tx, segs []tiers.SegmentMeta) error {
	first := map[string]time.Time{}
	for _, m := range segs {
		if f, ok := first[m.Stream]; !m.SealedAt.IsZero() && (!ok || m.SealedAt.Before(f)) {
			first[m.Stream] = m.SealedAt
		}
	}
	for name, at := range first {
		s, ok, err := c.loadStream(tx, name)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		s.CreatedAt = at
		if err := storeStream(tx, name, &s); err != nil {
			return err
		}
	}
	return nil
}

// mergeTiers combines the two tiers' segments into the set to catalogue,
// ordered by stream and base and free of overlaps, and describes what it
// left out.
func mergeTiers(warm, cold []tiers.SegmentMeta) ([]tiers.SegmentMeta, []string) {
	type id struct {
		stream string
		base   uint64
	}
	var conflicts []string
	byID := map[id]tiers.SegmentMeta{}
	add := func(m tiers.SegmentMeta, p tiers.Placement) {
		m.Placements = tiers.Of(p)
		m.Tombstoned = time.Time{}
		if p == tiers.Warm {
			m.ColdBytes = 0
		}
		if err := validForPut(&m); err != nil {
			conflicts = append(conflicts, fmt.Sprintf("%s %s: %v", p, describe(&m), err))
			return
		}
		k := id{m.Stream, m.Base}
		have, ok := byID[k]
		switch {
		case !ok:
			byID[k] = m
		case have.Last != m.Last || have.Digest != m.Digest:
			conflicts = append(conflicts, fmt.Sprintf("%s %s conflicts with %s %s: kept %s", p, describe(&m), have.Placements, describe(&have), have.Placements))
		default:
			have.Placements = have.Placements.With(p)
			if p == tiers.Cold {
				have.ColdBytes = m.ColdBytes
			}
			if have.SealedAt.IsZero() {
				have.SealedAt = m.SealedAt
			}
			byID[k] = have
		}
	}
	for _, m := range warm {
		add(m, tiers.Warm)
	}
	for _, m := range cold {
		add(m, tiers.Cold)
	}
	all := make([]tiers.SegmentMeta, 0, len(byID))
	for _, m := range byID {
		all = append(all, m)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Stream != all[j].Stream {
			return all[i].Stream < all[j].Stream
		}
		return all[i].Base < all[j].Base
	})
	out := all[:0]
	for _, m := range all {
		if n := len(out); n > 0 && out[n-1].Stream == m.Stream && out[n-1].Last >= m.Base {
			prev := out[n-1]
			conflicts = append(conflicts, fmt.Sprintf("%s %s overlaps %s %s: kept the latter", m.Placements, describe(&m), prev.Placements, describe(&prev)))
			continue
		}
		out = append(out, m)
	}
	return out, conflicts
}

// describe names a segment in a conflict report.
func describe(m *tiers.SegmentMeta) string {
	return fmt.Sprintf("%s [%d, %d] %s", m.Stream, m.Base, m.Last, m.Digest)
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
