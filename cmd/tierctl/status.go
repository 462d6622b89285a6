package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

func newStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show what each tier holds, the budgets, the WAL and the migrator",
		Long: `status shows one row per tier (hot, warm and, with a cold store, cold): the
streams and segments it holds, their size, the age of its oldest and newest
record (by record ts), and its budget use (hot: memory in use against
hot.max_bytes; warm: files on local disk against warm.max_bytes; cold has
none). Below the table: memory not yet persisted, the WAL, whether the
server takes writes (or what keeps it from it — a full disk, no file
descriptors, a failed WAL — and since when), whether the
cold store answers (after a call times out, cold.read_timeout, it is
unavailable and its calls fail fast until it answers a probe), and the
migrator: its schedule, when it runs next, what its last run did, and the
segments whose last move failed, with their errors.

-o json prints GET /v1/status as the server sent it.`,
		Example: `  tierctl status
  tierctl status -o json | jq '.tiers.warm.budget_used_bytes'
  watch -n 5 tierctl status`,
		Args: noArgs,
		RunE: a.verb(func(cmd *cobra.Command, _ []string) error {
			st, err := a.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				_, err := fmt.Fprintf(a.stdout, "%s\n", st.Raw)
				return err
			}
			return printStatus(a.stdout, st, time.Now())
		}),
	}
}

// writesLine says whether the server takes writes: "ok", or the condition
// that keeps it from them, since when, and whether it clears by itself.
// Empty for a server that does not report it.
func writesLine(st client.ServerStatus, now time.Time) string {
	if st.Writes == "" || st.Writes == "ok" {
		return st.Writes
	}
	what := map[string]string{
		"disk_full":           "disk full",
		"out_of_descriptors":  "out of file descriptors",
		"storage_unavailable": "storage unavailable",
		"wal_failed":          "WAL failed",
	}[st.Writes]
	if what == "" {
		what = st.Writes
	}
	since := ""
	if !st.WritesSince.IsZero() {
		since = ", began " + ago(now, st.WritesSince)
	}
	how := "REFUSED (retried; resumes by itself once storage takes writes)"
	if st.Writes == "wal_failed" {
		how = "DISABLED until restart"
	}
	return fmt.Sprintf("%s: %s%s: %s", how, what, since, oneLine(st.WritesError))
}

// statusFailures is how many failing segments the table lists.
const statusFailures = 10

func printStatus(w io.Writer, st client.ServerStatus, now time.Time) error {
	t := newTable(w, "TIER", "STREAMS", "SEGMENTS", "SIZE", "OLDEST", "NEWEST", "BUDGET")
	for _, name := range []string{"hot", "warm", "cold"} {
		ts, ok := st.Tiers[name]
		if !ok {
			continue
		}
		oldest, newest := "-", "-"
		if ts.Segments > 0 {
			oldest, newest = ago(now, ts.OldestTS), ago(now, ts.NewestTS)
		}
		t.row(name, ts.Streams, ts.Segments, humanBytes(ts.Bytes), oldest, newest, budget(ts.BudgetUsed, ts.BudgetBytes))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "memory:   %s in use of %s, %s not yet persisted warm\n",
		humanBytes(st.HotBytes), humanBytes(st.HotMaxBytes), humanBytes(st.HotUnpersisted))
	wal := fmt.Sprintf("%d %s, %s, sync %s", st.WALFiles, plural(st.WALFiles, "file", "files"), humanBytes(st.WALBytes), st.WALSync)
	if st.WALFailed != "" {
		wal += "; WRITES DISABLED: " + oneLine(st.WALFailed)
	}
	if st.Mode == "cluster" {
		// No WAL: an append is durable in a journal object and PostgreSQL.
		fmt.Fprintf(w, "mode:     cluster, node %s (epoch %d); appends are durable in the shared store and PostgreSQL\n", st.NodeID, st.Epoch)
	} else {
		fmt.Fprintf(w, "wal:      %s\n", wal)
	}
	if line := writesLine(st, now); line != "" {
		fmt.Fprintf(w, "writes:   %s\n", line)
	}
	if st.ColdStore == "unavailable" {
		fmt.Fprintf(w, "cold:     STORE UNAVAILABLE since %s, calls fail fast until it answers: %s\n", ago(now, st.ColdStoreSince), oneLine(st.ColdStoreError))
	} else if st.ColdStore != "" {
		fmt.Fprintf(w, "cold:     store %s\n", st.ColdStore)
	}
	if !st.Started.IsZero() {
		fmt.Fprintf(w, "up:       %s (since %s)\n", humanAge(now.Sub(st.Started)), tableTime(st.Started))
	}
	m := st.Migrator
	if m == nil {
		_, err := fmt.Fprintln(w, "migrator: none")
		return err
	}
	sched := "on demand only (no migrator.schedule)"
	if m.Schedule != "" {
		sched = fmt.Sprintf("schedule %q", m.Schedule)
		if !m.NextRun.IsZero() {
			sched += ", next run " + in(now, m.NextRun)
		}
	}
	if m.Running {
		sched += ", running now"
	}
	fmt.Fprintf(w, "migrator: %s\n", sched)
	if r := m.LastRun; r != nil {
		fmt.Fprintf(w, "last run: %s, took %s: %d %s, %d failed, %d skipped (backing off)\n",
			ago(now, r.Started), humanAge(time.Duration(r.DurationMS)*time.Millisecond), r.Actions, plural(r.Actions, "action", "actions"), r.Failed, r.Skipped)
	} else {
		fmt.Fprintln(w, "last run: none since tierd started")
	}
	if m.LastError != "" {
		fmt.Fprintf(w, "run error: %s: %s\n", ago(now, m.LastErrorAt), oneLine(m.LastError))
	}
	if m.Failing == 0 {
		_, err := fmt.Fprintln(w, "failing:  none")
		return err
	}
	fmt.Fprintf(w, "failing:  %d %s\n\n", m.Failing, plural(m.Failing, "segment", "segments"))
	t = newTable(w, "STREAM", "BASE", "ACTION", "ATTEMPTS", "FAILED", "RETRY", "ERROR")
	for i, f := range m.Failures {
		if i == statusFailures {
			break
		}
		retry := "-"
		if !f.RetryAt.IsZero() {
			retry = in(now, f.RetryAt)
		}
		t.row(f.Stream, f.Base, f.Action, f.Attempts, ago(now, f.At), retry, shorten(f.Error, lastErrorWidth))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if m.Failing > statusFailures {
		_, err := fmt.Fprintf(w, "… and %d more (tierctl status -o json lists up to 20; tierctl explain STREAM shows each)\n", m.Failing-statusFailures)
		return err
	}
	return nil
}

// budget renders "1.2 GiB / 10.0 GiB (12%)", or "-" without a budget.
func budget(used, max int64) string {
	if max <= 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s (%.0f%%)", humanBytes(used), humanBytes(max), 100*float64(used)/float64(max))
}

// ago renders how long before now t was: "3d 4h ago", "just now".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < time.Second {
		if d < -time.Second {
			return "in " + humanAge(-d) // a clock ahead of ours
		}
		return "just now"
	}
	return humanAge(d) + " ago"
}

// in renders how long after now t is: "in 42s", "now".
func in(now, t time.Time) string {
	d := t.Sub(now)
	if d < time.Second {
		return "now"
	}
	return "in " + humanAge(d)
}
