package tables

import (
	"cmp"
	"context"
	"slices"

	"github.com/apache/iceberg-go/table"
)

// History bounds: once a table has more than expireAbove snapshots, all but
// the newest keepSnapshots are expired, so its metadata stays small however
// many Syncs run.
const (
	keepSnapshots = 20
	expireAbove   = 2 * keepSnapshots
)

// expire drops old snapshots from the table's metadata. It deletes no file
// (gc is off: the data files are the archive); the manifests only the
// expired snapshots listed stay under _iceberg. A failure (say a concurrent
// commit) is logged: the next Sync tries again.
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
	_, _, err := p.cat.CommitTable(ctx, tbl.Identifier(),
		[]table.Requirement{table.AssertTableUUID(meta.TableUUID()), table.AssertRefSnapshotID(table.MainBranch, &id)},
		[]table.Update{table.NewRemoveSnapshotsUpdate(ids, false)})
	if err != nil {
		p.opts.Logger.Info("expiring old table snapshots failed; the next Sync retries", "table", tbl.Identifier(), "err", err)
	}
}
