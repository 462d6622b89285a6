package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tablesync"
)

// tableCheckTimeout bounds the read of one table's file list by verify,
// below the loop's own SyncTimeout: a store that stopped answering costs
// verify this once, not once per stream.
const tableCheckTimeout = 30 * time.Second

// TableFindings compares the Iceberg table of each of streams with the
// segments the catalog holds: every data file a table lists must be the
// object of a segment, live or tombstoned (held reports whether a cold
// object key is one). A file no segment holds is a FindingTable. A table
// that cannot be read is FindingUnreadable with tier "table", and the
// tables after it are not tried, since the store they share is not
// answering; nor are any while store, the cold store's health, says it is
// unavailable. A stream without a table, and tierd without tables (a nil
// loop), have nothing to report. A table that lacks a segment is not
// reported: the loop adds it within its interval, so a lag is not damage.
func TableFindings(ctx context.Context, tables *tablesync.Loop, streams []string, held func(key string) bool, store objstore.Health) []Finding {
	if !tables.Enabled() {
		return nil
	}
	if !store.Available {
		return []Finding{{Kind: api.FindingUnreadable, Tier: "table",
			Message: fmt.Sprintf("the Iceberg tables were not checked: the cold store has not answered since %s (%s)", store.Since.UTC().Format(time.RFC3339), store.Err)}}
	}
	var out []Finding
	for i, s := range streams {
		cctx, cancel := context.WithTimeout(ctx, tableCheckTimeout)
		files, err := tables.Files(cctx, s)
		cancel()
		switch {
		case errors.Is(err, tablesync.ErrNoTable):
			continue
		case err != nil:
			msg := fmt.Sprintf("the stream's Iceberg table could not be read: %v", err)
			if rest := len(streams) - i - 1; rest > 0 {
				msg += fmt.Sprintf("; the tables of the %d streams after it were not checked", rest)
			}
			return append(out, Finding{Kind: api.FindingUnreadable, Stream: s, Tier: "table", Message: msg})
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
