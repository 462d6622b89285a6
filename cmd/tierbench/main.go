// Command tierbench measures tierd beside baselines taken in the same run on
// the same machine, and reports each figure as a ratio to its baseline.
//
//	tierbench ingest [--dir DIR] [--runs 5] [--duration 2s] [--batch 100]
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "tierbench",
		Short:         "Benchmarks for tierd with same-run baselines",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newIngestCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tierbench:", err)
		os.Exit(1)
	}
}
