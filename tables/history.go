package tables

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// History bounds: once a table has more than expireAbove snapshots, all but
// the newest keepSnapshots are expired, so its metadata stays small however
// many Syncs run.
const (
	keepSnapshots = 20
	expireAbove   = 2 * keepSnapshots
)

// expire drops old snapshots from the table's metadata, then deletes the
// manifest lists and manifests that only the expired snapshots referenced
// (collectManifests) and sweeps what else the table no longer references
// (sweepMetadata), so the table's metadata directory stays bounded too.
// It never deletes a data file (gc is off: the data files are the archive).
// A failure (say a concurrent commit) is logged: the next Sync tries again.
func (p *Publisher) expire(ctx context.Context, tbl *table.Table) {
	meta := tbl.Metadata()
	snaps := meta.Snapshots()
	cur := tbl.CurrentSnapshot()
	if len(snaps) <= expireAbove || cur == nil {
		return
	}
	snaps = slices.Clone(snaps)
	slices.SortFunc(snaps, func(a, b table.Snapshot) int { return cmp.Compare(a.TimestampMs, b.TimestampMs) })
	var ids []int64
	for _, s := range snaps[:len(snaps)-keepSnapshots] {
		if s.SnapshotID != cur.SnapshotID {
			ids = append(ids, s.SnapshotID)
		}
	}
	id := cur.SnapshotID
	post, postLoc, err := p.cat.CommitTable(ctx, tbl.Identifier(),
		[]table.Requirement{table.AssertTableUUID(meta.TableUUID()), table.AssertRefSnapshotID(table.MainBranch, &id)},
		[]table.Update{table.NewRemoveSnapshotsUpdate(ids, false)})
	if err != nil {
		p.opts.Logger.Info("expiring old table snapshots failed; the next Sync retries", "table", tbl.Identifier(), "err", err)
		return
	}
	n, err := p.collectManifests(ctx, tbl, post, ids)
	if err == nil {
		var swept int
		swept, err = p.sweepMetadata(ctx, tbl, post, postLoc)
		n += swept
	}
	if err != nil {
		// What is left is garbage in the metadata directory, never
		// something the table needs: a leftover, not damage; the next
		// expiry sweeps it.
		p.opts.Logger.Warn("deleting table metadata no snapshot needs failed; it stays until the next expiry", "table", tbl.Identifier(), "deleted", n, "err", err)
	}
}

// sweepGrace is how old a file in a table's metadata directory must be
// before sweepMetadata deletes it for being unreferenced: a writer's
// manifests and metadata file exist before the commit that references them,
// and no commit takes this long (Options.Timeout bounds each call).
const sweepGrace = time.Hour

// sweepMetadata deletes the files of the table's metadata directory that
// the table as committed (post, whose metadata file is postLoc) does not
// reference and that are older than the grace period: manifests and
// manifest lists written by iceberg-go that no snapshot came to list (it
// leaves some when it merges manifests), those of snapshots expired before
// a crash, and metadata files past the kept history. Only *.avro and
// *.metadata.json files are considered, so a catalog's own files (the file
// catalog's version hint) are never touched, and only under the metadata
// directory, where no data file lives.
func (p *Publisher) sweepMetadata(ctx context.Context, pre *table.Table, post table.Metadata, postLoc string) (int, error) {
	root := p.root + "/"
	dir, ok := strings.CutPrefix(strings.TrimSuffix(pre.Location(), "/")+"/metadata/", root)
	if !ok {
		return 0, fmt.Errorf("table location %s is not under the cold store's root %s", pre.Location(), p.root)
	}
	fio, err := pre.FS(ctx)
	if err != nil {
		return 0, err
	}
	keep, err := manifestsOf(fio, post)
	if err != nil {
		return 0, err
	}
	keep[postLoc] = true
	for e := range post.PreviousFiles() {
		keep[e.MetadataFile] = true
	}
	cutoff := time.Now().Add(-p.sweepGrace)
	n := 0
	for a, err := range p.bucket.List(ctx, dir) {
		if err != nil {
			return n, err
		}
		if !strings.HasSuffix(a.Key, ".avro") && !strings.HasSuffix(a.Key, ".metadata.json") {
			continue
		}
		if keep[root+a.Key] || !a.ModTime.Before(cutoff) {
			continue
		}
		if err := p.bucket.Delete(ctx, a.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// collectManifests deletes the manifest list of each expired snapshot (ids,
// as the table pre had them) and every manifest they list that no snapshot
// of post lists, and returns how many files it deleted. Only files in the
// table's metadata directory are deleted: a data file a manifest names is
// never touched. A file already gone counts as deleted.
//
// A concurrent writer cannot lose a manifest it builds on: it commits on
// top of the current snapshot, which is never expired, and a commit on an
// older base conflicts and is recomputed from the table as it then is.
func (p *Publisher) collectManifests(ctx context.Context, pre *table.Table, post table.Metadata, ids []int64) (int, error) {
	fio, err := pre.FS(ctx)
	if err != nil {
		return 0, err
	}
	dir := strings.TrimSuffix(pre.Location(), "/") + "/metadata/"
	keep, err := manifestsOf(fio, post)
	if err != nil {
		return 0, err
	}
	var drop []string
	seen := map[string]bool{}
	for _, id := range ids {
		s := pre.Metadata().SnapshotByID(id)
		if s == nil {
			continue
		}
		candidates := []string{s.ManifestList}
		mans, err := s.Manifests(fio)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
		for _, m := range mans {
			candidates = append(candidates, m.FilePath())
		}
		for _, path := range candidates {
			if !keep[path] && !seen[path] && strings.HasPrefix(path, dir) {
				seen[path] = true
				drop = append(drop, path)
			}
		}
	}
	slices.Sort(drop)
	return removeFiles(ctx, fio, drop)
}

// removeFiles deletes paths, stopping at the first failure other than a
// file already gone; it returns how many are gone.
func removeFiles(ctx context.Context, fio icebergio.IO, paths []string) (int, error) {
	for i, path := range paths {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		if err := fio.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return i, err
		}
	}
	return len(paths), nil
}

// manifestsOf is the set of the manifest lists of meta's snapshots and of
// the manifests they list, by location.
func manifestsOf(fio icebergio.IO, meta table.Metadata) (map[string]bool, error) {
	out := map[string]bool{}
	for _, s := range meta.Snapshots() {
		out[s.ManifestList] = true
		mans, err := s.Manifests(fio)
		if err != nil {
			return nil, err
		}
		for _, m := range mans {
			out[m.FilePath()] = true
		}
	}
	return out, nil
}
