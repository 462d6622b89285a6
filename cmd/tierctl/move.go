package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

// Moving segments by hand, without waiting for the policy: seal persists
// what a stream holds in memory now, offload moves sealed, persisted
// segments to the cold tier now.

func newSealCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "seal STREAM",
		Short: "Seal a stream's active segment now and persist it warm",
		Long: `seal ends STREAM's active segment now, instead of at the policy's
segment.max_bytes or segment.max_age, and waits until it is persisted to
the warm tier (a segment file and its catalog entry), so that it can be
offloaded to cold at once. It prints the sealed segment as 'tierctl
segments' shows it.

With nothing appended since the last seal it seals nothing, says so and
shows the last sealed segment; that is not an error (exit 0). -o json
prints the server's answer: {"stream", "sealed": true|false, "segment":
{…} or null, "note"}.`,
		Example: `  tierctl seal trades
  tierctl seal trades && tierctl offload trades
  tierctl seal trades -o json | jq .segment.last`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			res, err := a.client().Seal(cmd.Context(), args[0])
			if err != nil {
				return a.about(subject{stream: args[0]}, err)
			}
			if a.output == "json" {
				return writeJSON(a.stdout, res)
			}
			return printSeal(a.stdout, args[0], res)
		}),
	}
}

func printSeal(w io.Writer, stream string, res client.SealResult) error {
	if !res.Sealed {
		fmt.Fprintf(w, "nothing to seal: no record was appended to %s since its last seal\n", stream)
		if res.Segment == nil {
			_, err := fmt.Fprintf(w, "%s has no sealed segment yet\n", stream)
			return err
		}
		fmt.Fprintln(w, "its last sealed segment:")
	}
	if res.Segment == nil {
		return nil
	}
	return printSegments(w, []client.Segment{*res.Segment})
}

func newOffloadCmd(a *app) *cobra.Command {
	var (
		base     offsetValue
		keepWarm bool
	)
	cmd := &cobra.Command{
		Use:   "offload STREAM [--base N] [--keep-warm]",
		Short: "Move a stream's sealed, persisted segments to the cold tier now",
		Long: `offload converts segments of STREAM to Parquet in the cold tier now,
instead of when the policy's warm.max_age says: with --base N the segment
that starts at offset N, without it every sealed, persisted segment not yet
in cold, in offset order. Each object is uploaded and verified before the
catalog commits it; then the warm copy is dropped (--keep-warm keeps it).
It prints the segments as 'tierctl segments' shows them after the move, or
says that nothing needed to move.

Only sealed segments persisted warm can move: the active segment and
segments still only in memory cannot ('tierctl seal STREAM' seals and
persists them now). Offloading a segment already in cold changes nothing
(without --keep-warm it drops a warm copy left). -o json prints an array
of the segments offloaded, empty when none needed to move.`,
		Example: `  tierctl seal trades && tierctl offload trades
  tierctl offload trades --base 0 --keep-warm
  tierctl offload trades -o json | jq '.[].cold_bytes'`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			stream := args[0]
			c := a.client()
			if cmd.Flags().Changed("base") {
				seg, err := c.Offload(cmd.Context(), stream, uint64(base), keepWarm)
				if err != nil {
					return a.about(subject{stream: stream}, err)
				}
				if a.output == "json" {
					return writeJSON(a.stdout, []client.Segment{seg})
				}
				if err := printSegments(a.stdout, []client.Segment{seg}); err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "segment %d of %s is in the cold tier\n", seg.Base, stream)
				return err
			}
			segs, err := c.Segments(cmd.Context(), stream)
			if err != nil {
				return a.about(subject{stream: stream}, err)
			}
			todo, unpersisted := offloadable(segs)
			moved := []client.Segment{}
			prog := a.newProgress("offload", "segments")
			for i, s := range todo {
				prog.update(int64(i), int64(len(todo)))
				seg, err := c.Offload(cmd.Context(), stream, s.Base, keepWarm)
				if err != nil {
					prog.done()
					if len(moved) > 0 && a.output != "json" {
						printSegments(a.stdout, moved)
					}
					fmt.Fprintf(a.stderr, "offload: stopped at segment %d of %s, %d of %d moved\n", s.Base, stream, len(moved), len(todo))
					return a.about(subject{stream: stream}, err)
				}
				moved = append(moved, seg)
			}
			prog.update(int64(len(todo)), int64(len(todo)))
			prog.done()
			if a.output == "json" {
				return writeJSON(a.stdout, moved)
			}
			return printOffloaded(a.stdout, stream, moved, unpersisted)
		}),
	}
	cmd.Flags().Var(&base, "base", "only the segment starting at this offset (see 'tierctl segments STREAM')")
	cmd.Flags().BoolVar(&keepWarm, "keep-warm", false, "copy to cold and keep the warm copy too")
	return cmd
}

// offloadable picks, in offset order, the segments an offload of a whole
// stream moves: sealed, persisted (placed warm), live and not yet in cold.
// unpersisted counts the records that cannot move yet: in the active
// segment or in sealed segments only in memory.
func offloadable(segs []client.Segment) (todo []client.Segment, unpersisted uint64) {
	for _, s := range segs {
		switch {
		case s.Active || !slices.Contains(s.Tiers, "warm") && !slices.Contains(s.Tiers, "cold"):
			unpersisted += s.Count
		case s.Tombstoned.IsZero() && slices.Contains(s.Tiers, "warm") && !slices.Contains(s.Tiers, "cold"):
			todo = append(todo, s)
		}
	}
	slices.SortFunc(todo, func(x, y client.Segment) int { return cmp.Compare(x.Base, y.Base) })
	return todo, unpersisted
}

func printOffloaded(w io.Writer, stream string, moved []client.Segment, unpersisted uint64) error {
	if len(moved) == 0 {
		fmt.Fprintf(w, "nothing to offload: no sealed, persisted segment of %s is outside the cold tier\n", stream)
	} else {
		if err := printSegments(w, moved); err != nil {
			return err
		}
		var cold int64
		for _, s := range moved {
			cold += s.ColdBytes
		}
		fmt.Fprintf(w, "moved %d %s of %s to the cold tier (%s of Parquet)\n", len(moved), plural(len(moved), "segment", "segments"), stream, humanBytes(cold))
	}
	if unpersisted > 0 {
		one := unpersisted == 1
		fmt.Fprintf(w, "%d %s of %s not yet persisted cannot move: 'tierctl seal %s' persists %s now\n",
			unpersisted, pick(one, "record", "records"), stream, stream, pick(one, "it", "them"))
	}
	return nil
}
