package main

import (
	"path/filepath"
	"strings"
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

// TestClusterConfigAtStart: tierd checks the cluster: section at start
// like any other — a cluster without a shared cold store is refused with
// the file, line and field — and never prints the DSN's password.
func TestClusterConfigAtStart(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	const dsn = "postgres://tierd:hunter2pw@127.0.0.1:1/tierd?sslmode=disable"
	config := writeConfig(t, dir, "wal: {sync: always}\ncluster:\n  catalog: "+dsn+"\n  node_id: n1\n")
	code, out := runUntilExit(t, nil, "--config", config, "--data-dir", data, "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, config+":3: cluster.catalog: cold.store is not set") {
		t.Fatalf("a cluster without a shared store: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "hunter2pw") {
		t.Fatalf("the output shows the DSN's password:\n%s", out)
	}
	// A valid cluster configuration whose PostgreSQL does not answer is
	// refused, the DSN redacted.
	shared := "file://" + filepath.Join(dir, "shared")
	config = writeConfig(t, dir, "cold: {store: '"+shared+"'}\ncluster: {catalog: '"+dsn+"', node_id: n1}\n")
	code, out = runUntilExit(t, nil, "--config", config, "--data-dir", data, "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, "cluster mode (cluster.catalog") || strings.Contains(out, "hunter2pw") ||
		!strings.Contains(out, "postgres://tierd:xxxxx@127.0.0.1:1/tierd") {
		t.Fatalf("a cluster configuration: exit %d\n%s", code, out)
	}
}
