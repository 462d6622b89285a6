package main

import (
	"path/filepath"
	"testing"
)

// TestTierctlClusterStatusLocalDaemon: a real tierctl against a real tierd
// in local mode says in one line that the node is not in a cluster,
// naming it, and exits 1, for the table and for --json alike.
func TestTierctlClusterStatusLocalDaemon(t *testing.T) {
	dir := t.TempDir()
	d := startDaemonEnv(t, writeConfig(t, dir, "wal: {sync: always}\n"), filepath.Join(dir, "data"))
	base := "http://" + d.addr
	env := ctlEnv("TIERD_ADDR=" + base)
	want := "error: not_in_cluster_mode: tierd at " + base + " runs in local mode (no cluster.catalog in its configuration): it is not part of a cluster\n"
	for _, args := range [][]string{{"cluster", "status"}, {"cluster", "status", "--json"}, {"-o", "json", "cluster", "status"}} {
		if r := runCtl(t, env, "", args...); r.code != 1 || r.stdout != "" || r.stderr != want {
			t.Errorf("want exit 1 and %q: %v", want, r)
		}
	}
}
