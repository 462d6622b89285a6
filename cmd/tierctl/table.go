package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

func newTableCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "table STREAM | table sync [STREAM]",
		Short: "Show a stream's Apache Iceberg table and ready queries for DuckDB, Spark and Trino",
		Long: `table shows the Apache Iceberg table tierd publishes over STREAM's cold
segments (tables.enabled; docs/analytics.md): its identifier in the
catalog, the location of its current metadata file in the cold store, its
current snapshot, how many data files and records it holds and when it
last changed, then one ready query per engine (DuckDB, Spark, Trino).

A stream whose segments are not cold yet has no table ("no_table"); a
tierd without tables says so ("tables_disabled"). Both exit 1.
--json (or -o json) prints GET /v1/streams/{stream}/table's answer.

"tierctl table sync" makes tables exact now (see its help). A stream
named "sync" is shown with "tierctl table -- sync".`,
		Example: `  tierctl table IF2406
  tierctl table IF2406 --json | jq -r .queries.duckdb
  tierctl table sync`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			t, err := a.client().Table(cmd.Context(), args[0])
			if err != nil {
				return a.about(subject{stream: args[0]}, a.tablesHint(err))
			}
			if asJSON || a.output == "json" {
				return writeJSON(a.stdout, t)
			}
			return printTable(a.stdout, t)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the answer as JSON (same as -o json)")
	cmd.AddCommand(newTableSyncCmd(a))
	return cmd
}

func newTableSyncCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "sync [STREAM]",
		Short: "Make the Iceberg table of STREAM (of every stream) exactly its cold segments now",
		Long: `sync makes the Iceberg table of STREAM, or of every stream without one,
hold exactly the stream's retained cold segments now, in at most one new
snapshot per stream, instead of waiting for tables.commit_interval. Run
it after "tierctl catalog rebuild", or to publish segments that were cold
before tables were enabled. It is idempotent: a table already exact is
left as it is (0 added, 0 removed).

One row per stream: the files added and removed, the snapshot the table
is at, and the objects it could not publish as they are (Parquet format 1
files: they stay readable through tierd and as plain Parquet). It ends
with "N streams synced, M failed" and exits 1 when any failed.`,
		Example: `  tierctl table sync
  tierctl table sync IF2406
  tierctl table sync -o json | jq '.streams[] | select(.error)'`,
		ValidArgsFunction: a.completeStreams,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%s takes at most one argument, STREAM (got %d)", cmd.Name(), len(args))
			}
			return nil
		},
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			stream := ""
			if len(args) == 1 {
				stream = args[0]
			}
			rep, err := a.client().SyncTables(cmd.Context(), stream)
			if err != nil {
				err = a.tablesHint(err)
				if stream == "" {
					return a.explain(err)
				}
				return a.about(subject{stream: stream}, err)
			}
			if rep.Streams == nil {
				rep.Streams = []client.TableSync{}
			}
			if a.output == "json" {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else if err := printTableSync(a.stdout, rep); err != nil {
				return err
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d of %d %s failed", rep.Failed, len(rep.Streams), plural(len(rep.Streams), "stream", "streams"))
			}
			return nil
		}),
	}
}

// tablesHint says what to do about a tierd without tables.
func (a *app) tablesHint(err error) error {
	var ae *client.APIError
	if !client.TablesDisabled(err) || !errors.As(err, &ae) {
		return err
	}
	e := *ae
	e.Message = fmt.Sprintf("tierd at %s publishes no Iceberg tables: set tables.enabled: true (with a cold.store) in its configuration and restart it", a.addr)
	return &e
}

func printTable(w io.Writer, t client.Table) error {
	updated := "-"
	if !t.LastUpdated.IsZero() {
		updated = t.LastUpdated.UTC().Format(time.RFC3339)
	}
	snap := "none"
	if t.SnapshotID != 0 {
		snap = fmt.Sprint(t.SnapshotID)
	}
	fmt.Fprintf(w, "stream:    %s\ntable:     %s\nmetadata:  %s\nsnapshot:  %s\nfiles:     %d\nrecords:   %d\nupdated:   %s\n\n",
		t.Stream, t.Table, t.MetadataLocation, snap, t.Files, t.Records, updated)
	for _, q := range []struct{ engine, text string }{{"DuckDB", t.Queries.DuckDB}, {"Spark", t.Queries.Spark}, {"Trino", t.Queries.Trino}} {
		if _, err := fmt.Fprintf(w, "%s:\n  %s\n", q.engine, strings.ReplaceAll(q.text, "\n", "\n  ")); err != nil {
			return err
		}
	}
	return nil
}

func printTableSync(w io.Writer, rep client.TableSyncReport) error {
	if len(rep.Streams) > 0 {
		t := newTable(w, "STREAM", "ADDED", "REMOVED", "NOT_PUBLISHED", "SNAPSHOT", "ERROR")
		for _, s := range rep.Streams {
			msg := ""
			if s.Error != nil {
				msg = oneLine(s.Error.Code + ": " + s.Error.Message)
			}
			snap := "-"
			if s.SnapshotID != 0 {
				snap = fmt.Sprint(s.SnapshotID)
			}
			t.row(s.Stream, s.Added, s.Removed, len(s.Skipped), snap, dash(msg))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	n := len(rep.Streams)
	_, err := fmt.Fprintf(w, "%d %s synced, %d failed\n", n-rep.Failed, plural(n-rep.Failed, "stream", "streams"), rep.Failed)
	return err
}
