// Command tierbench measures tierd beside baselines taken in the same run on
// the same machine, and reports each figure as a ratio to its baseline.
//
//	tierbench ingest [--dir DIR] [--runs 5] [--duration 2s] [--batch 100]
//	tierbench produce [--addr HOST:PORT] [--runs 5] [--duration 5s] [--goroutines 8] [--policy block|drop]
//	tierbench memory [--runs 3] [--workloads default,edge,streams] [--edge-config examples/edge.yaml]
//	tierbench cluster --endpoint URL --catalog DSN [--runs 3] [--duration 5s] [--writers 32] [--nodes 3]
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "tierbench",
		Short:         "Benchmarks for tierd with same-run baselines",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cpuProfile string
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) { pprof.StopCPUProfile() }
	root.AddCommand(newIngestCmd(), newColdCmd(), newMigrateCmd(), newProduceCmd(), newMemoryCmd(), newClusterCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tierbench:", err)
		os.Exit(1)
	}
}
