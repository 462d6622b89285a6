package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// clusterEngine is a real engine that also answers ClusterStatus: the
// smallest backend that is not *engine.Engine, to show the server serves
// any Backend and finds the optional ClusterBackend on it.
type clusterEngine struct {
	*engine.Engine
	st  api.ClusterStatus
	err error
}

func (c *clusterEngine) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	return c.st, c.err
}

func clusterGet(t *testing.T, srv *httptest.Server, path, authz string) response {
	t.Helper()
	return authDo(t, srv, "GET", path, "", authz)
}

// TestClusterLocalMode: a local node answers GET /v1/cluster 404
// not_in_cluster_mode, saying why.
func TestClusterLocalMode(t *testing.T) {
	e := newEnv(t, engine.Options{}, Options{})
	r := e.do("GET", "/v1/cluster", nil)
	d := wantError(t, r, http.StatusNotFound, api.CodeNotInClusterMode)
	if !strings.Contains(d.Message, "local mode") || !strings.Contains(d.Message, "cluster.catalog") {
		t.Fatalf("message %q does not say the node runs in local mode", d.Message)
	}
}

// TestClusterStatus: a ClusterBackend's answer is served as it is, nodes
// as a list even when empty; its errors are classified like any
// backend's; the route needs the read role; the other routes go to the
// same backend.
func TestClusterStatus(t *testing.T) {
	eng, err := engine.Open(context.Background(), engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	be := &clusterEngine{Engine: eng, st: api.ClusterStatus{Self: "n1", Nodes: []api.ClusterNode{
		{NodeID: "n1", Epoch: 4, Version: "v1", Addr: "127.0.0.1:7071", StartedAt: at, HeartbeatAt: at.Add(time.Minute), HeartbeatAgeMS: 1200, Live: true, StreamsWritten: 3, JobsHeld: 1, CacheBytes: 5 << 20},
		{NodeID: "n2", Epoch: 1, Version: "v1", StartedAt: at, HeartbeatAt: at, HeartbeatAgeMS: 90000, StoppedAt: at.Add(time.Second)},
	}}}
	srv := httptest.NewServer(New(be, Options{Tokens: []Token{{Name: "reader", Role: policy.RoleRead, Secret: readSecret}}}))
	defer srv.Close()

	if r := clusterGet(t, srv, "/v1/cluster", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("without a token: %d %s", r.status, r.body)
	}
	r := clusterGet(t, srv, "/v1/cluster", "Bearer "+readSecret)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/cluster: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var got api.ClusterStatus
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, be.st) {
		t.Fatalf("answer %+v\nwant %+v", got, be.st)
	}
	if !bytes.Contains(r.body, []byte(`"heartbeat_age_ms":1200`)) || bytes.Count(r.body, []byte(`"stopped_at"`)) != 1 {
		t.Fatalf("wire form: %s", r.body)
	}

	be.st = api.ClusterStatus{Self: "n1"}
	if r := clusterGet(t, srv, "/v1/cluster", "Bearer "+readSecret); r.status != 200 || !bytes.Contains(r.body, []byte(`"nodes":[]`)) {
		t.Fatalf("no nodes: %d %s, want \"nodes\":[]", r.status, r.body)
	}
	be.err = fmt.Errorf("cluster: listing nodes: %w", tiers.ErrStorageUnavailable)
	r = clusterGet(t, srv, "/v1/cluster", "Bearer "+readSecret)
	wantError(t, r, http.StatusServiceUnavailable, api.CodeStorageUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	be.err = errors.New("boom")
	wantError(t, clusterGet(t, srv, "/v1/cluster", "Bearer "+readSecret), http.StatusInternalServerError, api.CodeInternal)

	// The rest of the API is the same backend's.
	if r := clusterGet(t, srv, "/v1/streams", "Bearer "+readSecret); r.status != 200 || !bytes.Contains(r.body, []byte(`"streams":[]`)) {
		t.Fatalf("GET /v1/streams through the cluster backend: %d %s", r.status, r.body)
	}
}
