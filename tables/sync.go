package tables

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/tiers"
)

// Skipped is a wanted segment that Sync left out of the table, and why.
// Nothing is dropped silently: each one is in SyncResult and in the log.
type Skipped struct {
	Segment tiers.SegmentMeta
	Key     string // the object key
	// Legacy is set for a format-1 object (and no Rewrite hook made it
	// format 2): it stays readable through tierd and as plain Parquet.
	Legacy bool
	Reason string
}

// SyncResult is what one Sync did.
type SyncResult struct {
	Stream     string
	Added      int   // files added by this Sync
	Removed    int   // files removed by this Sync
	Files      int   // files in the table afterwards
	SnapshotID int64 // the table's current snapshot afterwards (0: none)
	// Committed is whether this Sync made a snapshot (false: the table
	// already matched).
	Committed bool
	Attempts  int // commits tried (>1 after optimistic-commit conflicts)
	Skipped   []Skipped
	Duration  time.Duration
}

// snapshot summary property naming the operation, for people reading the
// table's history.
const summaryOp = "tierd.operation"

// Sync makes the stream's table hold exactly the stream's retained cold
// segments (Options.Segments): it adds the missing objects and removes the
// files no longer wanted, in one snapshot, or does nothing when they are
// equal. It creates the table on first use and adds typed columns found in
// new files to the schema. It is idempotent and safe after any crash: the
// change is recomputed from the catalog and the table on every attempt,
// including after an optimistic-commit conflict with another writer.
func (p *Publisher) Sync(ctx context.Context, stream string) (SyncResult, error) {
	start := time.Now()
	res := SyncResult{Stream: stream}
	if err := validName(stream); err != nil {
		return res, err
	}
	if p.opts.Segments == nil {
		return res, errors.New("tables: Options.Segments is nil")
	}
	unlock, err := p.lock(stream)
	if err != nil {
		return res, err
	}
	defer unlock()
	ctx, cancel := p.bound(ctx)
	defer cancel()

	segs, err := p.opts.Segments.ColdSegments(ctx, stream)
	if err != nil {
		return res, fmt.Errorf("tables: segments of %s: %w", stream, err)
	}
	want := make(map[string]tiers.SegmentMeta, len(segs))
	for _, m := range segs {
		if m.Stream != stream || !m.Tombstoned.IsZero() {
			continue
		}
		want[p.fileURI(m)] = m
	}
	footers := map[string]*dataFile{} // read once per Sync, across attempts
	skipped := map[string]Skipped{}
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		err := p.syncOnce(ctx, stream, want, footers, skipped, &res)
		if err == nil {
			break
		}
		if ctx.Err() != nil || attempt == maxAttempts || !retryable(err) {
			res.Duration = time.Since(start)
			return res, fmt.Errorf("tables: sync %s: %w", stream, err)
		}
		p.opts.Logger.Info("table commit conflict, retrying", "stream", stream, "attempt", attempt, "err", err)
		if err := backoff(ctx, attempt); err != nil {
			return res, fmt.Errorf("tables: sync %s: %w", stream, err)
		}
	}
	for _, s := range skipped {
		res.Skipped = append(res.Skipped, s)
	}
	slices.SortFunc(res.Skipped, func(a, b Skipped) int { return compareBase(a.Segment.Base, b.Segment.Base) })
	res.Duration = time.Since(start)
	return res, nil
}

// syncOnce is one attempt of Sync against the table as it is now.
func (p *Publisher) syncOnce(ctx context.Context, stream string, want map[string]tiers.SegmentMeta,
	footers map[string]*dataFile, skipped map[string]Skipped, res *SyncResult,
) error {
	tbl, err := p.load(ctx, stream)
	if err != nil {
		return err
	}
	have, err := liveFiles(ctx, tbl)
	if err != nil {
		return err
	}
	var del []iceberg.DataFile
	for path, df := range have {
		if _, ok := want[path]; !ok {
			del = append(del, df)
		}
	}
	var addPaths []string
	for path := range want {
		if _, ok := have[path]; !ok {
			addPaths = append(addPaths, path)
		}
	}
	slices.SortFunc(addPaths, func(a, b string) int { return compareBase(want[a].Base, want[b].Base) })
	slices.SortFunc(del, func(a, b iceberg.DataFile) int { return compareString(a.FilePath(), b.FilePath()) })

	// Read the footers of the files to add (once per Sync).
	fio, err := icebergio.LoadFS(ctx, p.props, p.root)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var adds []*dataFile
	for _, path := range addPaths {
		if _, ok := skipped[path]; ok {
			continue
		}
		df, ok := footers[path]
		if !ok {
			df, err = p.footer(ctx, fio, want[path], path, skipped)
			if err != nil {
				return err
			}
			if df == nil {
				continue
			}
			footers[path] = df
		}
		adds = append(adds, df)
	}
	if len(adds) == 0 && len(del) == 0 {
		res.Files = len(have)
		if tbl != nil && tbl.CurrentSnapshot() != nil {
			res.SnapshotID = tbl.CurrentSnapshot().SnapshotID
		}
		return nil
	}
	if tbl == nil {
		if tbl, err = p.create(ctx, stream); err != nil {
			return err
		}
	}

	tx := tbl.NewTransaction()
	sc, adds, err := p.evolve(tx, tbl, adds, skipped)
	if err != nil {
		return err
	}
	var files []iceberg.DataFile
	for _, a := range adds {
		df, err := table.DataFileFromMetadata(table.DataFileArgs{
			Schema:        sc,
			Spec:          tbl.Spec(),
			Format:        iceberg.ParquetFile,
			Metadata:      a.meta,
			FilePath:      a.path,
			FileSize:      a.size,
			Content:       iceberg.EntryContentData,
			Properties:    tbl.Properties(),
			FormatVersion: tbl.Metadata().Version(),
		})
		if err != nil {
			p.skip(skipped, Skipped{Segment: a.seg, Key: cold.ObjectKey(a.seg), Reason: "data file metadata: " + err.Error()})
			continue
		}
		files = append(files, df)
	}
	if len(files) == 0 && len(del) == 0 {
		res.Files = len(have)
		return nil
	}
	props := iceberg.Properties{summaryOp: "sync"}
	if len(del) == 0 {
		err = tx.AddDataFiles(ctx, files, props)
	} else {
		err = tx.ReplaceDataFilesWithDataFiles(ctx, del, files, props)
	}
	if err != nil {
		return fmt.Errorf("stage snapshot: %w", err)
	}
	tbl, err = tx.Commit(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errCommit, err)
	}
	res.Added, res.Removed, res.Committed = len(files), len(del), true
	res.Files = len(have) + len(files) - len(del)
	if s := tbl.CurrentSnapshot(); s != nil {
		res.SnapshotID = s.SnapshotID
	}
	p.expire(ctx, tbl)
	return nil
}

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

// footer reads a segment's footer, asking Options.Rewrite to convert a
// format-1 object first. A segment that cannot be published is recorded in
// skipped and nil returned; an error means the store failed (retry later).
func (p *Publisher) footer(ctx context.Context, fio icebergio.IO, m tiers.SegmentMeta, path string, skipped map[string]Skipped) (*dataFile, error) {
	key := cold.ObjectKey(m)
	df, err := readFooter(ctx, fio, m, path)
	if errors.Is(err, errLegacy) && p.opts.Rewrite != nil {
		if rerr := p.opts.Rewrite(ctx, m); rerr != nil {
			p.skip(skipped, Skipped{Segment: m, Key: key, Legacy: true, Reason: fmt.Sprintf("%v; rewrite failed: %v", errLegacy, rerr)})
			return nil, nil
		}
		df, err = readFooter(ctx, fio, m, path)
	}
	switch {
	case err == nil:
		return df, nil
	case errors.Is(err, errLegacy):
		p.skip(skipped, Skipped{Segment: m, Key: key, Legacy: true, Reason: err.Error()})
	case errors.Is(err, errBadFile):
		p.skip(skipped, Skipped{Segment: m, Key: key, Reason: err.Error()})
	case isNotFound(err):
		p.skip(skipped, Skipped{Segment: m, Key: key, Reason: "object not found"})
	default:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read footer of %s: %w", key, err)
	}
	return nil, nil
}

func (p *Publisher) skip(skipped map[string]Skipped, s Skipped) {
	path := p.fileURI(s.Segment)
	if _, ok := skipped[path]; !ok {
		p.opts.Logger.Warn("cold segment not published in its table", "stream", s.Segment.Stream,
			"base", s.Segment.Base, "key", s.Key, "legacy", s.Legacy, "reason", s.Reason)
	}
	skipped[path] = s
}

// create makes the stream's table (and the namespace) with the base schema.
// A table created meanwhile by another writer is loaded instead.
func (p *Publisher) create(ctx context.Context, stream string) (*table.Table, error) {
	if err := p.ensureNamespace(ctx); err != nil {
		return nil, err
	}
	opts := []catalog.CreateTableOpt{catalog.WithProperties(iceberg.Properties{
		"format-version": "2",
		"comment":        "tierd stream " + stream + ": its retained cold segments, one Parquet object each",
		// The data files are the archive itself: no engine's maintenance
		// (expire_snapshots, remove_orphan_files) may delete them.
		table.GCEnabledKey: "false",
		// Old metadata JSON files go after each commit, a few kept.
		table.MetadataDeleteAfterCommitEnabledKey: "true",
		table.MetadataPreviousVersionsMaxKey:      strconv.Itoa(keepSnapshots),
		// Each Sync writes a manifest; merging them keeps a scan's
		// planning (and Sync's own listing) from slowing down with every
		// commit.
		table.ManifestMergeEnabledKey:  "true",
		table.ManifestMinMergeCountKey: "8",
	})}
	if p.opts.CatalogDSN != "" {
		// The Hadoop catalog places tables itself (at this same place).
		opts = append(opts, catalog.WithLocation(p.tableLocation(stream)))
	}
	tbl, err := p.cat.CreateTable(ctx, p.ident(stream), baseSchema(), opts...)
	if errors.Is(err, catalog.ErrTableAlreadyExists) {
		return nil, fmt.Errorf("%w: table created concurrently", errCommit)
	}
	if err != nil {
		return nil, fmt.Errorf("create table %s: %w", stream, err)
	}
	return tbl, nil
}

// evolve adds the typed columns of the new files that the table lacks (a new
// policy column) and keeps the name mapping equal to the schema, since files
// carry no field ids. A file whose typed column has another type than the
// table's is skipped (the table's column stays as it is). It returns the
// schema the files are described with and the files still to add.
func (p *Publisher) evolve(tx *table.Transaction, tbl *table.Table, adds []*dataFile, skipped map[string]Skipped) (*iceberg.Schema, []*dataFile, error) {
	cur := tbl.Schema()
	added := map[string]iceberg.Type{}
	var keep []*dataFile
	var upd *table.UpdateSchema
next:
	for _, a := range adds {
		for _, c := range a.typed {
			t := added[c.name]
			if f, ok := cur.FindFieldByName(c.name); ok && f.ID != 0 {
				t = f.Type
			}
			if t != nil && !t.Equals(c.typ) {
				p.skip(skipped, Skipped{Segment: a.seg, Key: cold.ObjectKey(a.seg),
					Reason: fmt.Sprintf("typed column %s is %s in the file, %s in the table", c.name, c.typ, t)})
				continue next
			}
		}
		for _, c := range a.typed {
			if _, ok := cur.FindFieldByName(c.name); ok {
				continue
			}
			if _, ok := added[c.name]; ok {
				continue
			}
			if upd == nil {
				upd = tx.UpdateSchema(true, false)
			}
			upd.AddColumn([]string{c.name}, c.typ, "policy column", false, nil)
			added[c.name] = c.typ
		}
		keep = append(keep, a)
	}
	if upd != nil {
		if err := upd.Commit(); err != nil {
			return nil, nil, fmt.Errorf("schema update: %w", err)
		}
	}
	staged, err := tx.StagedTable()
	if err != nil {
		return nil, nil, fmt.Errorf("staged table: %w", err)
	}
	sc := staged.Schema()
	mapping, err := json.Marshal(sc.NameMapping())
	if err != nil {
		return nil, nil, err
	}
	if staged.Properties()[table.DefaultNameMappingKey] != string(mapping) {
		if err := tx.SetProperties(iceberg.Properties{table.DefaultNameMappingKey: string(mapping)}); err != nil {
			return nil, nil, fmt.Errorf("name mapping: %w", err)
		}
	}
	return sc, keep, nil
}

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
	gone := make(map[string]bool, len(segs))
	for _, m := range segs {
		gone[p.fileURI(m)] = true
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

func (p *Publisher) removeOnce(ctx context.Context, stream string, gone map[string]bool) error {
	tbl, err := p.load(ctx, stream)
	if err != nil || tbl == nil {
		return err
	}
	have, err := liveFiles(ctx, tbl)
	if err != nil {
		return err
	}
	var del []iceberg.DataFile
	for path, df := range have {
		if gone[path] {
			del = append(del, df)
		}
	}
	if len(del) == 0 {
		return nil
	}
	tx := tbl.NewTransaction()
	if err := tx.ReplaceDataFilesWithDataFiles(ctx, del, nil, iceberg.Properties{summaryOp: "remove"}); err != nil {
		return fmt.Errorf("stage snapshot: %w", err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%w: %w", errCommit, err)
	}
	return nil
}

// liveFiles lists the data files of the table's current snapshot by path.
func liveFiles(ctx context.Context, tbl *table.Table) (map[string]iceberg.DataFile, error) {
	have := map[string]iceberg.DataFile{}
	if tbl == nil || tbl.CurrentSnapshot() == nil {
		return have, nil
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("list data files: %w", err)
	}
	for _, t := range tasks {
		have[t.File.FilePath()] = t.File
	}
	return have, nil
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

// fileURI is the data file location of a segment's object.
func (p *Publisher) fileURI(m tiers.SegmentMeta) string { return p.root + "/" + cold.ObjectKey(m) }

func compareBase(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SyncAll runs Sync for every stream of Options.Segments (at start, or for
// `tierctl table sync` without a stream). A stream's failure does not stop
// the others: its error is returned, joined with the rest, and its result
// is in the list all the same.
func (p *Publisher) SyncAll(ctx context.Context) ([]SyncResult, error) {
	if p.opts.Segments == nil {
		return nil, errors.New("tables: Options.Segments is nil")
	}
	names, err := p.opts.Segments.StreamNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("tables: stream names: %w", err)
	}
	var results []SyncResult
	var errs []error
	for _, name := range names {
		res, err := p.Sync(ctx, name)
		results = append(results, res)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return results, errors.Join(errs...)
}
