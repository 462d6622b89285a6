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
	n, err := p.deleteUnneeded(ctx, tbl, post, postLoc, ids)
	if err != nil {
		// What is left is garbage in the metadata directory, never
		// something the table needs: a leftover, not damage; the next
		// expiry sweeps it.
		p.opts.Logger.Warn("deleting table metadata no snapshot needs failed; it stays until the next expiry", "table", tbl.Identifier(), "deleted", n, "err", err)
	}
}

// deleteUnneeded deletes what the expiry left without a use: the expired
// snapshots' manifest files at once (collectManifests), then the older
// files of the metadata directory the table does not reference
// (sweepMetadata). The retained snapshots' manifests are read once for
// both. It returns how many files it deleted.
func (p *Publisher) deleteUnneeded(ctx context.Context, pre *table.Table, post table.Metadata, postLoc string, ids []int64) (int, error) {
	fio, err := pre.FS(ctx)
	if err != nil {
		return 0, err
	}
	keep, err := manifestsOf(fio, post)
	if err != nil {
		return 0, err
	}
	n, err := collectManifests(ctx, fio, pre, keep, ids)
	if err != nil {
		return n, err
	}
	swept, err := p.sweepMetadata(ctx, pre, post, postLoc, keep)
	return n + swept, err
}

// sweepGrace is how old a file in a table's metadata directory must be
// before sweepMetadata deletes it for being unreferenced: a writer's
// manifests and metadata file exist before the commit that references them,
// and no commit takes this long (Options.Timeout bounds each call).
const sweepGrace = time.Hour

// sweepMetadata deletes the files of the table's metadata directory that
// the table as committed (post, whose metadata file is postLoc; manifests
// the set of its manifest lists and manifests, manifestsOf) does not
// reference and that are older than the grace period: manifests and
// manifest lists written by iceberg-go that no snapshot came to list (it
// leaves some when it merges manifests), those of snapshots expired before
// a crash, and metadata files past the kept history. Only *.avro and
// *.metadata.json files are considered, so a catalog's own files (the file
// catalog's version hint) are never touched, and only under the metadata
// directory, where no data file lives.
func (p *Publisher) sweepMetadata(ctx context.Context, pre *table.Table, post table.Metadata, postLoc string, manifests map[string]bool) (int, error) {
	root := p.root + "/"
	dir, ok := strings.CutPrefix(metadataDir(pre), root)
	if !ok {
		return 0, fmt.Errorf("table location %s is not under the cold store's root %s", pre.Location(), p.root)
	}
	keep := map[string]bool{postLoc: true}
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
		if keep[root+a.Key] || manifests[root+a.Key] || !a.ModTime.Before(cutoff) {
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
// as the table pre had them) and every manifest they list that is not in
// keep (the retained snapshots', manifestsOf), and returns how many files
// it deleted. Only files in the
// table's metadata directory are deleted: a data file a manifest names is
// never touched. A file already gone counts as deleted.
//
// A concurrent writer cannot lose a manifest it builds on: it commits on
// top of the current snapshot, which is never expired, and a commit on an
// older base conflicts and is recomputed from the table as it then is.
func collectManifests(ctx context.Context, fio icebergio.IO, pre *table.Table, keep map[string]bool, ids []int64) (int, error) {
	dir := metadataDir(pre)
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

// metadataDir is the location of tbl's metadata directory, with a
// trailing slash.
func metadataDir(tbl *table.Table) string {
	return strings.TrimSuffix(tbl.Location(), "/") + "/metadata/"
}
