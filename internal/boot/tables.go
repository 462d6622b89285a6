package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tables"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
)

// TablesOpener is the engine's or the cluster node's Options.Tables for
// cfg: nil when tables are off (tables.enabled false, or no cold store).
// catalogDSN is the PostgreSQL catalog of cluster mode (the Iceberg
// catalog lives in the same database), "" for local mode's file-based
// catalog in the bucket. The publisher is opened on first use, not at
// start: a cold store that is down when tierd starts makes the table calls
// fail (tables_unavailable, retried by the loop) without stopping tierd,
// as it makes uploads fail.
func TablesOpener(cfg policy.Config, catalogDSN string, log *slog.Logger, reg prometheus.Registerer) func(ctx context.Context, src tablesync.CatalogSource) (*tablesync.Loop, error) {
	if !cfg.TablesEnabled() {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, src tablesync.CatalogSource) (*tablesync.Loop, error) {
		storeURL, err := cfg.StoreURL()
		if err != nil {
			return nil, err
		}
		pt := &publisherTables{opts: tables.Options{
			ColdURL:    storeURL,
			CatalogDSN: catalogDSN,
			Namespace:  cfg.Tables.Namespace,
			Segments:   src,
			Rewrite:    src.Rewrite,
			Logger:     log,
		}}
		return tablesync.New(tablesync.Options{
			Tables:     pt,
			Streams:    src.StreamNames,
			Interval:   cfg.Tables.CommitInterval,
			Logger:     log,
			Registerer: reg,
		}), nil
	}
}

// publisherTables adapts a *tables.Publisher, opened on first use, to
// tablesync.Tables: its answers in the API's types, its errors in
// tablesync's sentinels.
type publisherTables struct {
	opts tables.Options
	mu   struct {
		sync.Mutex
		p      *tables.Publisher
		closed bool
	}
}

// publisher opens the publisher if it is not open yet.
func (t *publisherTables) publisher(ctx context.Context) (*tables.Publisher, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return nil, fmt.Errorf("%w: %w", tiers.ErrClosed, tables.ErrClosed)
	}
	if t.mu.p == nil {
		p, err := tables.Open(ctx, t.opts)
		if err != nil {
			return nil, fmt.Errorf("%w: open the Iceberg catalog: %w", tablesync.ErrUnavailable, err)
		}
		t.mu.p = p
	}
	return t.mu.p, nil
}

// classify maps the publisher's errors to tablesync's: no table, or
// unavailable (the catalog, the metadata or the store did not answer or
// refused a commit after its retries); a canceled context stays itself.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tables.ErrNoTable):
		return fmt.Errorf("%w: %w", tablesync.ErrNoTable, err)
	case errors.Is(err, context.Canceled), errors.Is(err, tiers.ErrClosed):
		return err
	}
	return fmt.Errorf("%w: %w", tablesync.ErrUnavailable, err)
}

func (t *publisherTables) Sync(ctx context.Context, stream string) (api.TableSync, error) {
	p, err := t.publisher(ctx)
	if err != nil {
		return api.TableSync{}, err
	}
	res, err := p.Sync(ctx, stream)
	if err != nil {
		return api.TableSync{}, classify(err)
	}
	out := api.TableSync{Stream: stream, Added: res.Added, Removed: res.Removed, SnapshotID: res.SnapshotID}
	for _, s := range res.Skipped {
		out.Skipped = append(out.Skipped, s.Key)
	}
	return out, nil
}

func (t *publisherTables) Remove(ctx context.Context, stream string, segs []tiers.SegmentMeta) error {
	p, err := t.publisher(ctx)
	if err != nil {
		return err
	}
	return classify(p.Remove(ctx, stream, segs))
}

func (t *publisherTables) Describe(ctx context.Context, stream string) (api.Table, error) {
	p, err := t.publisher(ctx)
	if err != nil {
		return api.Table{}, err
	}
	info, err := p.Describe(ctx, stream)
	if err != nil {
		return api.Table{}, classify(err)
	}
	return api.Table{
		Stream: stream, Table: info.Table, MetadataLocation: info.MetadataLocation, SnapshotID: info.SnapshotID,
		Files: info.Files, Records: info.Records, LastUpdated: info.LastUpdated,
		Queries: api.TableQueries{DuckDB: info.Queries["duckdb"], Spark: info.Queries["spark"], Trino: info.Queries["trino"]},
	}, nil
}

// Files lists the data files of stream's table.
func (t *publisherTables) Files(ctx context.Context, stream string) ([]string, error) {
	p, err := t.publisher(ctx)
	if err != nil {
		return nil, err
	}
	files, err := p.Files(ctx, stream)
	return files, classify(err)
}

// Close closes the publisher if it was opened; later calls fail.
func (t *publisherTables) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.closed = true
	if t.mu.p == nil {
		return nil
	}
	return t.mu.p.Close()
}
