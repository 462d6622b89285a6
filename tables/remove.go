package tables

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/tiers"
)

// Remove commits a snapshot without the given segments' files (files not
// in the table are ignored; no table, nothing to do). The caller deletes
// the objects only after Remove returned nil, so no snapshot ever lists a
// deleted object.
func (p *Publisher) Remove(ctx context.Context, stream string, segs []tiers.SegmentMeta) error {
	if err := validName(stream); err != nil {
		return err
	}
	unlock, err := p.lock(stream)
	if err != nil {
		return err
	}
	defer unlock()
	ctx, cancel := p.bound(ctx)
	defer cancel()
	gone := make(map[segID]bool, len(segs))
	for _, m := range segs {
		if m.Stream == stream {
			gone[idOf(m)] = true
		}
	}
	for attempt := 1; ; attempt++ {
		err := p.removeOnce(ctx, stream, gone)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt == maxAttempts || !retryable(err) {
			return fmt.Errorf("tables: remove from %s: %w", stream, err)
		}
		p.opts.Logger.Info("table commit conflict, retrying", "stream", stream, "attempt", attempt, "err", err)
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("tables: remove from %s: %w", stream, err)
		}
	}
}

func (p *Publisher) removeOnce(ctx context.Context, stream string, gone map[segID]bool) error {
	tbl, err := p.load(ctx, stream)
	if err != nil || tbl == nil {
		return err
	}
	live, _, err := p.liveFiles(ctx, stream, tbl)
	if err != nil {
		return err
	}
	var del []iceberg.DataFile
	for id, dfs := range live {
		if gone[id] {
			del = append(del, dfs...)
		}
	}
	if len(del) == 0 {
		return nil
	}
	tx := tbl.NewTransaction()
	// Fail, never replay, if another writer committed since the load:
	// the change was computed against this snapshot (see syncOnce).
	if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
		return fmt.Errorf("pin snapshot: %w", err)
	}
	if err := tx.ReplaceDataFilesWithDataFiles(ctx, del, nil, iceberg.Properties{summaryOp: "remove"}); err != nil {
		return fmt.Errorf("stage snapshot: %w", err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%w: %w", errCommit, err)
	}
	return nil
}

// liveFiles lists the data files of the table's current snapshot by the
// segment they hold, read from the object key (so a change in how keys
// are spelled does not make a file look foreign; a table should list each
// segment once, the caller sees any second file). foreign are the files
// that are no segment of this stream under the cold root.
func (p *Publisher) liveFiles(ctx context.Context, stream string, tbl *table.Table) (live map[segID][]iceberg.DataFile, foreign []iceberg.DataFile, err error) {
	live = map[segID][]iceberg.DataFile{}
	if tbl == nil || tbl.CurrentSnapshot() == nil {
		return live, nil, nil
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list data files: %w", err)
	}
	for _, t := range tasks {
		if id, ok := p.fileID(stream, t.File.FilePath()); ok {
			live[id] = append(live[id], t.File)
		} else {
			foreign = append(foreign, t.File)
		}
	}
	return live, foreign, nil
}

// segID identifies a segment within its stream.
type segID struct{ base, last uint64 }

func idOf(m tiers.SegmentMeta) segID { return segID{m.Base, m.Last} }

func compareID(a, b segID) int {
	if c := cmp.Compare(a.base, b.base); c != 0 {
		return c
	}
	return cmp.Compare(a.last, b.last)
}

// fileID is the segment a data file of stream's table holds, from its
// object key; false for a file that is not one.
func (p *Publisher) fileID(stream, path string) (segID, bool) {
	key, ok := strings.CutPrefix(path, p.root+"/")
	if !ok {
		return segID{}, false
	}
	s, base, last, ok := cold.ParseObjectKey(key)
	if !ok || s != stream {
		return segID{}, false
	}
	return segID{base, last}, true
}

// objectKeys are the keys a segment's object may have, in the order they
// are tried: its key, then the key of objects written before stream names
// were percent-encoded, when that differs (cold.LegacyObjectKey; the cold
// tier reads such objects where they are).
func objectKeys(m tiers.SegmentMeta) []string {
	if k, l := cold.ObjectKey(m), cold.LegacyObjectKey(m); k != l {
		return []string{k, l}
	}
	return []string{cold.ObjectKey(m)}
}

// errCommit marks a failed commit: another writer committed first, or the
// outcome is unknown. Both are retried by recomputing the change from a
// fresh load, which is right in either case (a commit that did land shows
// up as nothing left to do).
var errCommit = errors.New("commit")

func retryable(err error) bool {
	return errors.Is(err, errCommit) || errors.Is(err, table.ErrCommitFailed)
}

// backoff waits before attempt+1: growing, jittered, bounded by ctx.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(attempt*attempt) * 50 * time.Millisecond
	d += time.Duration(rand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// fileURI is where a segment's object is under its current key.
func (p *Publisher) fileURI(m tiers.SegmentMeta) string { return p.root + "/" + cold.ObjectKey(m) }

// Files lists the data files of stream's table as it is now: each as its
// object key under the cold store's root, or as its full location when it
// lies outside that root (written there by another tool). It answers
// ErrNoTable for a stream without a table. Verify compares the list with
// the segments the catalog holds.
func (p *Publisher) Files(ctx context.Context, stream string) ([]string, error) {
	if err := validName(stream); err != nil {
		return nil, err
	}
	unlock, err := p.lock(stream)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ctx, cancel := p.bound(ctx)
	defer cancel()
	tbl, err := p.load(ctx, stream)
	if err != nil {
		return nil, err
	}
	if tbl == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoTable, stream)
	}
	live, foreign, err := p.liveFiles(ctx, stream, tbl)
	if err != nil {
		return nil, fmt.Errorf("tables: files of %s: %w", stream, err)
	}
	var out []string
	add := func(df iceberg.DataFile) {
		path := df.FilePath()
		if key, ok := strings.CutPrefix(path, p.root+"/"); ok {
			path = key
		}
		out = append(out, path)
	}
	for _, dfs := range live {
		for _, df := range dfs {
			add(df)
		}
	}
	for _, df := range foreign {
		add(df)
	}
	slices.Sort(out)
	return out, nil
}
