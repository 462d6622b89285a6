package tables

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
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

	footers := map[segID]*dataFile{} // read once per Sync, across attempts
	skipped := map[segID]Skipped{}
	total := SyncResult{Stream: stream}
	for attempt := 1; ; attempt++ {
		res = SyncResult{Stream: stream}
		more, err := p.syncOnce(ctx, stream, footers, skipped, &res)
		total.Attempts++
		if err == nil {
			total.Added += res.Added
			total.Removed += res.Removed
			total.Committed = total.Committed || res.Committed
			total.Files, total.SnapshotID = res.Files, res.SnapshotID
			if !more {
				break
			}
			// A backfill larger than one commit: the next batch, with
			// fresh retries.
			attempt = 0
			continue
		}
		if ctx.Err() != nil || attempt == maxAttempts || !retryable(err) {
			total.Duration = time.Since(start)
			return total, fmt.Errorf("tables: sync %s: %w", stream, err)
		}
		p.opts.Logger.Info("table commit conflict, retrying", "stream", stream, "attempt", attempt, "err", err)
		if err := backoff(ctx, attempt); err != nil {
			total.Duration = time.Since(start)
			return total, fmt.Errorf("tables: sync %s: %w", stream, err)
		}
	}
	res = total
	for _, s := range skipped {
		res.Skipped = append(res.Skipped, s)
	}
	slices.SortFunc(res.Skipped, func(a, b Skipped) int { return cmp.Compare(a.Segment.Base, b.Segment.Base) })
	res.Duration = time.Since(start)
	return res, nil
}

// maxAddsPerCommit bounds the files one commit adds, and so the footers
// held in memory at once: a backfill of a large archive (the first
// `tierctl table sync`) commits in several snapshots of this many files.
// footerReaders is how many footers are read at once.
const (
	maxAddsPerCommit = 1000
	footerReaders    = 8
)

// syncOnce is one attempt of Sync against the table as it is now. more
// reports that it committed a batch and files remain to be added.
//
// The table is loaded before the catalog is read, and the commit succeeds
// only if the table is still as loaded. So a file cannot come back after a
// Remove by another writer: either this attempt read the catalog after the
// segment left it (and does not want it), or the Remove commits after this
// commit (and takes the file out again), or it committed between the load
// and this commit (which then conflicts and is recomputed).
func (p *Publisher) syncOnce(ctx context.Context, stream string,
	footers map[segID]*dataFile, skipped map[segID]Skipped, res *SyncResult,
) (more bool, err error) {
	tbl, err := p.load(ctx, stream)
	if err != nil {
		return false, err
	}
	segs, err := p.opts.Segments.ColdSegments(ctx, stream)
	if err != nil {
		return false, fmt.Errorf("segments of %s: %w", stream, err)
	}
	want := make(map[segID]tiers.SegmentMeta, len(segs))
	for _, m := range segs {
		if m.Stream == stream && m.Tombstoned.IsZero() {
			want[idOf(m)] = m
		}
	}
	for id, df := range footers {
		if m, ok := want[id]; !ok || m.Digest != df.seg.Digest {
			delete(footers, id) // the catalog changed between attempts
		}
	}
	live, del, err := p.liveFiles(ctx, stream, tbl) // del: foreign files
	if err != nil {
		return false, err
	}
	total := len(del)
	// Each wanted segment keeps one file, at its key; any other file of a
	// segment (unwanted, doubled, or under a key it no longer has) goes.
	have := map[segID]iceberg.DataFile{}
	for id, dfs := range live {
		total += len(dfs)
		m, ok := want[id]
		keep := -1
		if ok {
			for _, key := range objectKeys(m) {
				if keep = slices.IndexFunc(dfs, func(df iceberg.DataFile) bool { return df.FilePath() == p.root+"/"+key }); keep >= 0 {
					break
				}
			}
		}
		for i, df := range dfs {
			if i == keep {
				have[id] = df
			} else {
				del = append(del, df)
			}
		}
	}
	var addIDs []segID
	for id := range want {
		_, in := have[id]
		_, skip := skipped[id]
		if !in && !skip {
			addIDs = append(addIDs, id)
		}
	}
	slices.SortFunc(addIDs, compareID)
	slices.SortFunc(del, func(a, b iceberg.DataFile) int { return cmp.Compare(a.FilePath(), b.FilePath()) })
	if len(addIDs) > p.maxAdds {
		addIDs, more = addIDs[:p.maxAdds], true
	}
	if err := p.readFooters(ctx, addIDs, want, footers, skipped); err != nil {
		return false, err
	}
	var adds []*dataFile
	for _, id := range addIDs {
		if df := footers[id]; df != nil {
			adds = append(adds, df)
		}
	}
	if len(adds) == 0 && len(del) == 0 {
		res.Files = total
		if tbl != nil && tbl.CurrentSnapshot() != nil {
			res.SnapshotID = tbl.CurrentSnapshot().SnapshotID
		}
		return more, nil
	}
	if tbl == nil {
		if tbl, err = p.create(ctx, stream); err != nil {
			return false, err
		}
	}

	tx := tbl.NewTransaction()
	// Fail, never replay, if another writer committed since the load:
	// the change was computed against this snapshot (see syncOnce).
	if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
		return false, fmt.Errorf("pin snapshot: %w", err)
	}
	sc, adds, err := p.evolve(tx, tbl, adds, skipped)
	if err != nil {
		return false, err
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
		res.Files = total
		return more, nil
	}
	props := iceberg.Properties{summaryOp: "sync"}
	if len(del) == 0 {
		err = tx.AddDataFiles(ctx, files, props)
	} else {
		err = tx.ReplaceDataFilesWithDataFiles(ctx, del, files, props)
	}
	if err != nil {
		return false, fmt.Errorf("stage snapshot: %w", err)
	}
	tbl, err = tx.Commit(ctx)
	if err != nil {
		return false, fmt.Errorf("%w: %w", errCommit, err)
	}
	res.Added, res.Removed, res.Committed = len(files), len(del), true
	res.Files = total + len(files) - len(del)
	if s := tbl.CurrentSnapshot(); s != nil {
		res.SnapshotID = s.SnapshotID
	}
	p.expire(ctx, tbl)
	// The footers of committed files are not needed again.
	for _, a := range adds {
		delete(footers, idOf(a.seg))
	}
	return more, nil
}

// readFooters reads the footers of the segments not read yet,
// footerReaders at a time, into footers (or skipped). An error is the
// store failing.
func (p *Publisher) readFooters(ctx context.Context, ids []segID, want map[segID]tiers.SegmentMeta,
	footers map[segID]*dataFile, skipped map[segID]Skipped,
) error {
	var todo []segID
	for _, id := range ids {
		if _, ok := footers[id]; !ok {
			todo = append(todo, id)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	fio, err := icebergio.LoadFS(ctx, p.props, p.root)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	type result struct {
		df   *dataFile
		skip *Skipped
		err  error
	}
	results := make([]result, len(todo))
	sem := make(chan struct{}, footerReaders)
	var wg sync.WaitGroup
	for i, id := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := &results[i]
			r.df, r.skip, r.err = p.footer(ctx, fio, want[id])
		}()
	}
	wg.Wait()
	var errs []error
	for i, r := range results {
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case r.skip != nil:
			p.skip(skipped, *r.skip)
		default:
			footers[todo[i]] = r.df
		}
	}
	return errors.Join(errs...)
}

// footer reads a segment's footer, asking Options.Rewrite to convert a
// format-1 object first. A segment that cannot be published is returned as
// skipped; an error means the store failed (retry later).
func (p *Publisher) footer(ctx context.Context, fio icebergio.IO, m tiers.SegmentMeta) (*dataFile, *Skipped, error) {
	key, df, err := p.readAnyKey(ctx, fio, m)
	if errors.Is(err, errLegacy) && p.opts.Rewrite != nil {
		if rerr := p.opts.Rewrite(ctx, m); rerr != nil {
			return nil, &Skipped{Segment: m, Key: key, Legacy: true, Reason: fmt.Sprintf("%v; rewrite failed: %v", errLegacy, rerr)}, nil
		}
		key, df, err = p.readAnyKey(ctx, fio, m)
	}
	switch {
	case err == nil:
		return df, nil, nil
	case errors.Is(err, errLegacy):
		return nil, &Skipped{Segment: m, Key: key, Legacy: true, Reason: err.Error()}, nil
	case errors.Is(err, errBadFile):
		return nil, &Skipped{Segment: m, Key: key, Reason: err.Error()}, nil
	case isNotFound(err):
		return nil, &Skipped{Segment: m, Key: key, Reason: "object not found"}, nil
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	default:
		return nil, nil, fmt.Errorf("read footer of %s: %w", key, err)
	}
}

// readAnyKey reads the footer at the first of the segment's keys that
// exists, and says which key that was.
func (p *Publisher) readAnyKey(ctx context.Context, fio icebergio.IO, m tiers.SegmentMeta) (string, *dataFile, error) {
	keys := objectKeys(m)
	for i, key := range keys {
		df, err := readFooter(ctx, fio, m, p.root+"/"+key)
		if isNotFound(err) && i+1 < len(keys) {
			continue
		}
		return key, df, err
	}
	panic("unreachable: a segment has a key")
}

func (p *Publisher) skip(skipped map[segID]Skipped, s Skipped) {
	id := idOf(s.Segment)
	if _, ok := skipped[id]; !ok {
		p.opts.Logger.Warn("cold segment not published in its table", "stream", s.Segment.Stream,
			"base", s.Segment.Base, "key", s.Key, "legacy", s.Legacy, "reason", s.Reason)
	}
	skipped[id] = s
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
func (p *Publisher) evolve(tx *table.Transaction, tbl *table.Table, adds []*dataFile, skipped map[segID]Skipped) (*iceberg.Schema, []*dataFile, error) {
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
