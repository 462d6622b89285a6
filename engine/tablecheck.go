package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/tablesync"
)

// TableFindings compares the Iceberg table of each of streams with the
// segments the catalog holds: every data file a table lists must be the
// object of a segment, live or tombstoned (held reports whether a cold
// object key is one). A file no segment holds is a FindingTable; a table
// that cannot be read is FindingUnreadable, since nothing is known of it.
// A stream without a table, and tierd without tables (a nil loop), have
// nothing to report. A table that lacks a segment is not reported: the
// loop adds it within its interval, so a lag is not damage.
func TableFindings(ctx context.Context, tables *tablesync.Loop, streams []string, held func(key string) bool) []Finding {
	if !tables.Enabled() {
		return nil
	}
	var out []Finding
	for _, s := range streams {
		files, err := tables.Files(ctx, s)
		switch {
		case errors.Is(err, tablesync.ErrNoTable):
			continue
		case err != nil:
			out = append(out, Finding{Kind: api.FindingUnreadable, Stream: s, Tier: "table",
				Message: fmt.Sprintf("the stream's Iceberg table could not be read: %v", err)})
			continue
		}
		for _, f := range files {
			if !held(f) {
				out = append(out, Finding{Kind: api.FindingTable, Stream: s, Tier: "table", Path: f,
					Message: "the stream's Iceberg table lists this data file, but no segment holds it: a query of the table reads records tierd does not have, or fails; `tierctl table sync " + s + "` takes it out"})
			}
		}
	}
	return out
}
