package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/policy"
)

// The operator's verbs on a running server: explain, migrate and verify.

func newExplainCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "explain STREAM",
		Short: "Show where each segment of a stream is and what happens to it next, when and why",
		Long: `explain shows the policy that applies to STREAM (its hot, warm and cold
max ages; "forever" when a tier keeps segments forever), then one row per
segment: its tiers, its age since it was sealed, the next action the
migrator will take, how long until it is due ("now" means at the next run),
the reason in words, and the last error of a failed move. The table
shortens the last error; -o json shows it whole, with its attempts and
the time of the next retry.`,
		Example: `  tierctl explain IF2406
  tierctl explain IF2406 -o json | jq '.segments[] | select(.last_error)'`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			ex, err := a.client().Explain(cmd.Context(), args[0])
			if err != nil {
				return a.about(subject{stream: args[0]}, err)
			}
			if ex.Segments == nil {
				ex.Segments = []client.ExplainSegment{}
			}
			if a.output == "json" {
				return writeJSON(a.stdout, ex)
			}
			return printExplanation(a.stdout, ex)
		}),
	}
}

// lastErrorWidth is how much of a last error the explain table shows.
const lastErrorWidth = 48

func printExplanation(w io.Writer, ex client.Explanation) error {
	p := ex.Policy
	fmt.Fprintf(w, "stream %s: policy %s (hot %s, warm %s, cold %s)\n\n", ex.Stream, p.Name,
		orForever(p.HotMaxAge), orForever(p.WarmMaxAge), orForever(p.ColdMaxAge))
	t := newTable(w, "BASE", "LAST", "TIERS", "AGE", "NEXT", "DUE_IN", "REASON", "LAST_ERROR")
	for _, s := range ex.Segments {
		tiers := strings.Join(s.Tiers, ",")
		if !s.Tombstoned.IsZero() {
			tiers += " (tombstoned)"
		}
		next, in, reason := "-", "-", s.Note
		switch {
		case s.Next != nil:
			next, reason = s.Next.Action, s.Next.Reason
			in = dueIn(s.Next, ex.Now)
		case s.InFlight:
			reason = "a move is running"
		case reason == "":
			reason = "none: the policy keeps it here forever"
		}
		if s.InFlight && s.Next != nil {
			next += " (moving)"
		}
		lastErr := "-"
		if s.LastError != nil {
			lastErr = shorten(s.LastError.Error, lastErrorWidth)
		}
		t.row(s.Base, s.Last, tiers, dash(s.Age), next, in, dash(oneLine(reason)), lastErr)
	}
	return t.flush()
}

// dueIn says how long until next is due: "now" when it is due (the next
// run takes it), else the time left rounded up to the second, so that an
// action due in 0.4s does not read as due now.
func dueIn(next *client.NextAction, now time.Time) string {
	if next.Due.IsZero() || now.IsZero() {
		return dash(next.In) // an older server: its own rendering
	}
	d := next.Due.Sub(now)
	if d <= 0 {
		return "now"
	}
	return policy.FormatDuration((d + time.Second - 1).Truncate(time.Second))
}

func newMigrateCmd(a *app) *cobra.Command {
	var dryRun bool
	var stream string
	cmd := &cobra.Command{
		Use:   "migrate [--dry-run] [--stream S]",
		Short: "Run the migrator now, or show what it would do",
		Long: `migrate asks the server's migrator to plan now and, without --dry-run, to
carry out the plan at once instead of waiting for migrator.schedule: one
row per action (upload, drop-warm, delete-warm, tombstone, delete-cold)
with its stream, segment, size, reason and, in a run, its error. A segment
needing two steps (upload, then drop-warm once the cold copy is committed)
takes two runs. --dry-run changes nothing. Segments leave memory without
the migrator: the hot tier evicts them at hot.max_age, or sooner while
memory is over hot.max_bytes (tierctl explain says when).

A run ends with the line "N actions, M failed, K skipped (backing off)"
and exits 1 when any action failed; skipped actions belong to segments
whose last move failed and that wait for their retry time (tierctl explain
shows the error).`,
		Example: `  tierctl migrate --dry-run
  tierctl migrate --stream IF2406
  tierctl migrate -o json | jq '.actions[] | select(.error)'`,
		Args: noArgs,
		RunE: a.verb(func(cmd *cobra.Command, _ []string) error {
			req := client.MigrateRequest{DryRun: dryRun, Stream: stream}
			prog := a.newProgress("migrate", "actions")
			if prog != nil && !dryRun {
				req.Progress = func(p client.Progress) { prog.update(p.Done, p.Total) }
			}
			rep, err := a.client().Migrate(cmd.Context(), req)
			prog.done()
			if err != nil {
				return a.aboutFlag("--stream", stream, err)
			}
			if rep.Actions == nil {
				rep.Actions = []client.MigrateAction{}
			}
			if a.output == "json" {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else if err := printMigrate(a.stdout, rep); err != nil {
				return err
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d of %d %s failed", rep.Failed, len(rep.Actions), plural(len(rep.Actions), "action", "actions"))
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only show the plan; change nothing")
	cmd.Flags().StringVar(&stream, "stream", "", "only this stream")
	return cmd
}

func printMigrate(w io.Writer, rep client.MigrateReport) error {
	if len(rep.Actions) > 0 {
		header := []string{"ACTION", "STREAM", "BASE", "SIZE", "REASON"}
		if !rep.DryRun {
			header = append(header, "ERROR")
		}
		t := newTable(w, header...)
		for _, act := range rep.Actions {
			cells := []any{act.Action, act.Stream, act.Base, humanBytes(act.Bytes), oneLine(act.Reason)}
			if !rep.DryRun {
				cells = append(cells, dash(oneLine(act.Error)))
			}
			t.row(cells...)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	n := len(rep.Actions)
	if rep.DryRun {
		_, err := fmt.Fprintf(w, "%d %s planned (dry run: nothing changed)\n", n, plural(n, "action", "actions"))
		return err
	}
	_, err := fmt.Fprintf(w, "%d %s, %d failed, %d skipped (backing off)\n", n, plural(n, "action", "actions"), rep.Failed, rep.Skipped)
	return err
}

func newVerifyCmd(a *app) *cobra.Command {
	var stream string
	cmd := &cobra.Command{
		Use:   "verify [--stream S]",
		Short: "Check that every retained record is stored exactly once and intact",
		Long: `verify asks the server to prove, for every stream (or --stream S), that the
retained offsets [FIRST, NEXT) are held by live segments exactly once, and
to read every copy of every segment (warm files and cold objects) back
against the catalog's digest; then it lists the warm directory and the cold
store for files and objects no segment claims. It reads the whole archive,
so it takes as long as that.

It prints what it checked per stream, with the records held only in memory
(IN_MEMORY: not yet persisted, so there is no copy to check yet), then
every finding (gap, overlap, digest, missing, unreadable, orphan_warm,
orphan_cold) and a summary line.
It exits 0 when the archive is clean and 1 on any finding.`,
		Example: `  tierctl verify
  tierctl verify --stream IF2406
  tierctl verify -o json | jq '.findings'`,
		Args: noArgs,
		RunE: a.verb(func(cmd *cobra.Command, _ []string) error {
			req := client.VerifyRequest{Stream: stream}
			prog := a.newProgress("verify", "segments")
			if prog != nil {
				req.Progress = func(p client.Progress) { prog.update(p.Done, p.Total) }
			}
			rep, err := a.client().Verify(cmd.Context(), req)
			prog.done()
			if err != nil {
				return a.aboutFlag("--stream", stream, err)
			}
			if rep.Streams == nil {
				rep.Streams = []client.StreamCheck{}
			}
			if rep.Findings == nil {
				rep.Findings = []client.Finding{}
			}
			if a.output == "json" {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else if err := printVerify(a.stdout, rep); err != nil {
				return err
			}
			if n := len(rep.Findings); n > 0 || !rep.OK {
				return fmt.Errorf("verify found %d %s", n, plural(n, "problem", "problems"))
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&stream, "stream", "", "only this stream")
	return cmd
}

func printVerify(w io.Writer, rep client.VerifyReport) error {
	segs, places := 0, 0
	var mem uint64
	t := newTable(w, "STREAM", "FIRST", "NEXT", "SEGMENTS", "PLACEMENTS", "IN_MEMORY")
	for _, s := range rep.Streams {
		t.row(s.Stream, s.First, s.Next, s.Segments, s.Placements, inMemory(s))
		segs += s.Segments
		places += s.Placements
		mem += s.UnpersistedRecords
	}
	if err := t.flush(); err != nil {
		return err
	}
	if mem > 0 {
		one := mem == 1
		fmt.Fprintf(w, "IN_MEMORY: %d %s only in memory and the WAL, not yet persisted warm: verify checks %s once %s ('tierctl seal STREAM' persists a stream's now)\n",
			mem, pick(one, "record is", "records are"), pick(one, "it", "them"), pick(one, "it is", "they are"))
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintln(w)
		t = newTable(w, "KIND", "STREAM", "OFFSETS", "TIER", "PATH", "MESSAGE")
		for _, f := range rep.Findings {
			t.row(f.Kind, dash(f.Stream), findingOffsets(f), dash(f.Tier), dash(f.Path), oneLine(f.Message))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	checked := fmt.Sprintf("%d %s, %d %s, %d %s; %d warm %s and %d cold %s listed",
		len(rep.Streams), plural(len(rep.Streams), "stream", "streams"),
		segs, plural(segs, "segment", "segments"), places, plural(places, "placement", "placements"),
		rep.WarmFiles, plural(rep.WarmFiles, "file", "files"), rep.ColdObjects, plural(rep.ColdObjects, "object", "objects"))
	if len(rep.Findings) == 0 {
		_, err := fmt.Fprintf(w, "OK: %s, no problems found\n", checked)
		return err
	}
	_, err := fmt.Fprintf(w, "FAILED: %d %s (%s) in %s\n", len(rep.Findings), plural(len(rep.Findings), "problem", "problems"),
		findingKinds(rep.Findings), checked)
	return err
}

// pick is one when one holds, else many.
func pick(one bool, single, many string) string {
	if one {
		return single
	}
	return many
}

// inMemory shows a stream's records not yet persisted: "200000 rec / 2 seg",
// or "-" when there are none.
func inMemory(s client.StreamCheck) string {
	if s.UnpersistedRecords == 0 {
		return "-"
	}
	return fmt.Sprintf("%d rec / %d seg", s.UnpersistedRecords, s.UnpersistedSegments)
}

// findingOffsets shows a finding's place in its stream: "[10, 20)" for a
// gap or overlap, "base 42" for a segment.
func findingOffsets(f client.Finding) string {
	switch {
	case f.From != nil && f.To != nil:
		return fmt.Sprintf("[%d, %d)", *f.From, *f.To)
	case f.Base != nil:
		return fmt.Sprintf("base %d", *f.Base)
	}
	return "-"
}

// findingKinds counts findings by kind: "2 missing, 1 orphan_cold".
func findingKinds(fs []client.Finding) string {
	n := map[string]int{}
	for _, f := range fs {
		n[f.Kind]++
	}
	kinds := make([]string, 0, len(n))
	for k := range n {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for i, k := range kinds {
		kinds[i] = fmt.Sprintf("%d %s", n[k], k)
	}
	return strings.Join(kinds, ", ")
}

// oneLine collapses runs of white space (newlines and tabs included) into
// one space, so a message cannot break a table's rows or columns.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// shorten cuts s to at most n runes, marking the cut with "…", and puts it
// on one line.
func shorten(s string, n int) string {
	s = oneLine(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// dash shows an empty cell as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
