package tablesync

import (
	"context"
	"errors"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// CatalogSource is what a stream's table should hold, read from a catalog
// (the bbolt one of local mode, the PostgreSQL one of cluster mode): the
// segments whose cold placement is committed and that retention has not
// tombstoned, in offset order. It has the methods of
// tables.SegmentSource.
type CatalogSource struct {
	Catalog catalog.Reads
	// Rewrite, when set, rewrites a segment's format-1 cold object in the
	// current format so that it can join its table (tables.Options.Rewrite):
	// the engine sets it, serialised with the segment's moves. Nil leaves
	// such segments out of the tables, reported as skipped.
	Rewrite func(ctx context.Context, m tiers.SegmentMeta) error
}

// ColdSegments returns stream's retained cold segments; none for a stream
// the catalog does not know.
func (c CatalogSource) ColdSegments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error) {
	segs, err := c.Catalog.Segments(ctx, stream)
	if errors.Is(err, tiers.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := segs[:0]
	for _, m := range segs {
		if m.Placements.Has(tiers.Cold) && m.Tombstoned.IsZero() {
			out = append(out, m)
		}
	}
	return out, nil
}

// StreamNames lists every stream the catalog knows, ordered by name.
func (c CatalogSource) StreamNames(ctx context.Context) ([]string, error) {
	infos, err := c.Catalog.Streams(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(infos))
	for i, s := range infos {
		names[i] = s.Name
	}
	return names, nil
}
