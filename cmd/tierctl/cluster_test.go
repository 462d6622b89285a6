package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/server"
)

// clusterEngine is a real engine that also answers ClusterStatus, as a
// cluster node's backend would.
type clusterEngine struct {
	*engine.Engine
	st api.ClusterStatus
}

func (c clusterEngine) ClusterStatus(context.Context) (api.ClusterStatus, error) { return c.st, nil }

// TestClusterStatusLocal: against a local-mode tierd, one line that says
// so and names the server, exit 1, nothing on stdout.
func TestClusterStatusLocal(t *testing.T) {
	s := newServer(t)
	for _, args := range [][]string{{"cluster", "status"}, {"cluster", "status", "--json"}} {
		r := tierctl(t, s.url, "", args...)
		if r.code != 1 || r.stdout != "" {
			t.Fatalf("tierctl %v: exit %d, stdout %q, stderr %q; want exit 1 and nothing on stdout", args, r.code, r.stdout, r.stderr)
		}
		want := "error: not_in_cluster_mode: tierd at " + s.url + " runs in local mode (no cluster.catalog in its configuration): it is not part of a cluster\n"
		if r.stderr != want {
			t.Fatalf("stderr %q\nwant %q", r.stderr, want)
		}
	}
}

func TestClusterStatusTable(t *testing.T) {
	eng, err := engine.Open(context.Background(), engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	st := api.ClusterStatus{Self: "node-2", Nodes: []api.ClusterNode{
		{NodeID: "node-1", Epoch: 7, Version: "v0.13.0", StartedAt: at, HeartbeatAt: at, HeartbeatAgeMS: 1234, Live: true, StreamsWritten: 12, JobsHeld: 2, CacheBytes: 3 << 29},
		{NodeID: "node-2", Epoch: 1, Version: "v0.13.0", StartedAt: at, HeartbeatAt: at, HeartbeatAgeMS: 80, Live: true, StreamsWritten: 3, CacheBytes: 512},
		{NodeID: "node-3", Epoch: 12, Version: "v0.12.9", StartedAt: at, HeartbeatAt: at, HeartbeatAgeMS: 185_000, StreamsWritten: 1},
		{NodeID: "old", Epoch: 2, StartedAt: at, HeartbeatAt: at, HeartbeatAgeMS: 3 * 86_400_000, StoppedAt: at},
	}}
	srv := httptest.NewServer(server.New(clusterEngine{eng, st}, server.Options{}))
	defer srv.Close()

	got := mustRun(t, srv.URL, "", "cluster", "status")
	want := strings.Join([]string{
		"NODE    EPOCH  VERSION  HEARTBEAT  STATE    STREAMS  JOBS  CACHE",
		"node-1  7      v0.13.0  1.2s ago   live     12       2     1.5 GiB",
		"node-2  1      v0.13.0  0.1s ago   live     3        0     512 B",
		"node-3  12     v0.12.9  3m 5s ago  stale    1        0     0 B",
		"old     2      -        3d ago     stopped  0        0     0 B",
		"4 nodes: 2 live, 1 stale, 1 stopped; answered by node-2",
		"",
	}, "\n")
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
	for _, args := range [][]string{{"cluster", "status", "--json"}, {"-o", "json", "cluster", "status"}} {
		var back api.ClusterStatus
		if err := json.Unmarshal([]byte(mustRun(t, srv.URL, "", args...)), &back); err != nil {
			t.Fatalf("tierctl %v: %v", args, err)
		}
		if !reflect.DeepEqual(back, st) {
			t.Fatalf("tierctl %v = %+v\nwant %+v", args, back, st)
		}
	}
	if r := tierctl(t, srv.URL, "", "cluster", "nodes"); r.code != 2 {
		t.Fatalf("an unknown cluster verb: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCatalogRebuildRefusesCluster: a cluster node's data_dir is a cache,
// so catalog rebuild refuses a cluster configuration, creating nothing
// and showing the DSN without its password.
func TestCatalogRebuildRefusesCluster(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "tierd.yaml")
	yaml := "data_dir: " + dataDir + "\ncold: {store: 'file://" + filepath.Join(dir, "shared") + "'}\ncluster: {catalog: 'postgres://tierd:hunter2pw@db/tierd', node_id: n1}\n"
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := tierctl(t, "", "", "catalog", "rebuild", "--config", config)
	if r.code != 1 || !strings.Contains(r.stderr, "is a cluster configuration (cluster.catalog postgres://tierd:xxxxx@db/tierd)") || strings.Contains(r.stderr+r.stdout, "hunter2pw") {
		t.Fatalf("catalog rebuild of a cluster: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
		t.Fatalf("the refusal wrote into data_dir: %v", entries)
	}
}
