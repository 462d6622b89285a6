package client_test

import (
	"context"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/server"
)

// clusterEngine is a real engine that also answers ClusterStatus.
type clusterEngine struct {
	*engine.Engine
	st api.ClusterStatus
}

func (c clusterEngine) ClusterStatus(context.Context) (api.ClusterStatus, error) { return c.st, nil }

func TestCluster(t *testing.T) {
	ctx := context.Background()
	_, err := client.New(newServer(t, engine.Options{}, nil)).Cluster(ctx)
	if !client.NotInClusterMode(err) {
		t.Fatalf("Cluster of a local server = %v, want not_in_cluster_mode", err)
	}
	if client.NotInClusterMode(nil) {
		t.Fatal("NotInClusterMode(nil)")
	}

	eng, err := engine.Open(ctx, engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	want := api.ClusterStatus{Self: "b", Nodes: []api.ClusterNode{
		{NodeID: "a", Epoch: 2, Version: "v", StartedAt: at, HeartbeatAt: at, HeartbeatAgeMS: 70000},
		{NodeID: "b", Epoch: 9, Version: "v", Addr: "127.0.0.1:1", StartedAt: at, HeartbeatAt: at, HeartbeatAgeMS: 15, Live: true, StreamsWritten: 2, JobsHeld: 1, CacheBytes: 1 << 30},
	}}
	srv := httptest.NewServer(server.New(clusterEngine{eng, want}, server.Options{}))
	defer srv.Close()
	got, err := client.New(srv.URL).Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Cluster = %+v\nwant %+v", got, want)
	}
}
