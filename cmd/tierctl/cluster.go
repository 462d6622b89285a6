package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/client"
)

func newClusterCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the nodes of a tierd cluster",
		Example: `  tierctl cluster status
  tierctl cluster status --json`,
		Args: noArgs,
	}
	cmd.AddCommand(newClusterStatusCmd(a))
	return cmd
}

func newClusterStatusCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the cluster's nodes: heartbeat, version, streams written, jobs held, cache use",
		Long: `status lists every node the cluster's PostgreSQL catalog knows, one row
each: its id, its epoch (bumped by every start; a restarted node fences the
process it replaces), its version, how long ago its last heartbeat was (by
the catalog's clock), its state — live (heartbeating), stale (stopped
heartbeating without leaving: killed, hung or cut off) or stopped (shut
down cleanly) — the streams it has written since it started, the
compaction jobs it holds and its disk cache's size. A footer counts the
states and names the node that answered.

Against a tierd in local mode it says so in one line and exits 1.
--json (or -o json) prints GET /v1/cluster's answer.`,
		Example: `  tierctl cluster status
  tierctl --addr http://node2:7070 cluster status --json | jq '.nodes[] | select(.live | not) | .node_id'`,
		Args: noArgs,
		RunE: a.verb(func(cmd *cobra.Command, _ []string) error {
			st, err := a.client().Cluster(cmd.Context())
			if client.NotInClusterMode(err) {
				var ae *client.APIError
				errors.As(err, &ae)
				e := *ae
				e.Message = fmt.Sprintf("tierd at %s runs in local mode (no cluster.catalog in its configuration): it is not part of a cluster", a.addr)
				return &e
			}
			if err != nil {
				return err
			}
			if asJSON || a.output == "json" {
				return writeJSON(a.stdout, st)
			}
			return printCluster(a.stdout, st)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the answer as JSON (same as -o json)")
	return cmd
}

// printCluster writes the nodes' table and a footer counting their states.
func printCluster(w io.Writer, st client.ClusterStatus) error {
	t := newTable(w, "NODE", "EPOCH", "VERSION", "HEARTBEAT", "STATE", "STREAMS", "JOBS", "CACHE")
	count := map[string]int{}
	for _, n := range st.Nodes {
		state := n.State()
		count[state]++
		t.row(n.NodeID, n.Epoch, dash(n.Version), heartbeatAge(n.HeartbeatAgeMS), state, n.StreamsWritten, n.JobsHeld, humanBytes(n.CacheBytes))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d nodes: %d live, %d stale, %d stopped; answered by %s\n",
		len(st.Nodes), count[api.NodeLive], count[api.NodeStale], count[api.NodeStopped], dash(st.Self))
	return err
}

// heartbeatAge renders how long ago a heartbeat was: tenths of a second
// while that matters ("1.2s ago": heartbeats come every few seconds),
// then as ages are shown elsewhere ("3m 5s ago").
func heartbeatAge(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fs ago", d.Seconds())
	}
	return humanAge(d) + " ago"
}
