package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

func newStreamsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "streams",
		Short: "List streams with their offsets and what each tier holds",
		Example: `  tierctl streams
  tierctl streams -o json`,
		Args: noArgs,
		RunE: a.verb(func(cmd *cobra.Command, _ []string) error {
			streams, err := a.client().Streams(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				if streams == nil {
					streams = []client.Stream{}
				}
				return writeJSON(a.stdout, map[string]any{"streams": streams})
			}
			t := newTable(a.stdout, "NAME", "NEXT_OFFSET", "RECORDS", "HOT", "WARM", "COLD")
			for _, s := range streams {
				t.row(s.Name, s.NextOffset, s.Records, usage(s.Tiers, "hot"), usage(s.Tiers, "warm"), usage(s.Tiers, "cold"))
			}
			return t.flush()
		}),
	}
}

// usage renders one tier's share of a stream: "2 seg / 1.5 MiB", or "-".
func usage(tiers map[string]client.TierUsage, tier string) string {
	u, ok := tiers[tier]
	if !ok || u.Segments == 0 {
		return "-"
	}
	return fmt.Sprintf("%d seg / %s", u.Segments, humanBytes(u.Bytes))
}

func newSegmentsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "segments STREAM",
		Short: "List a stream's segments, their time ranges and tiers",
		Long: `segments lists STREAM's segments in offset order, the active (unsealed)
segment last. The table shortens digests; -o json shows them whole.`,
		Example: `  tierctl segments trades
  tierctl segments trades -o json | jq '.[] | select(.tiers | index("cold"))'`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			segs, err := a.client().Segments(cmd.Context(), args[0])
			if err != nil {
				return a.about(subject{stream: args[0]}, err)
			}
			if a.output == "json" {
				if segs == nil {
					segs = []client.Segment{}
				}
				return writeJSON(a.stdout, segs)
			}
			return printSegments(a.stdout, segs)
		}),
	}
}

// printSegments is the segments table, which seal and offload print too.
func printSegments(w io.Writer, segs []client.Segment) error {
	t := newTable(w, "BASE", "LAST", "COUNT", "SIZE", "MIN_TS", "MAX_TS", "SEALED_AT", "TIERS", "DIGEST")
	for _, s := range segs {
		sealed, digest := tableTime(s.SealedAt), shortDigest(s.Digest)
		if s.Active {
			sealed = "(active)"
		}
		t.row(s.Base, s.Last, s.Count, humanBytes(s.Bytes), tableTime(s.MinTS), tableTime(s.MaxTS), sealed, strings.Join(s.Tiers, ","), digest)
	}
	return t.flush()
}

// tableTime shows a time in UTC to the millisecond, "-" when unset.
func tableTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// shortDigest keeps "sha256:" and 12 hex digits, enough to tell segments
// apart in a table.
func shortDigest(d string) string {
	if d == "" {
		return "-"
	}
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12] + "…"
	}
	return d
}
