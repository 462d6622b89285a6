package registry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tierd/tierd/cluster/registry"
	"github.com/tierd/tierd/internal/pgschema"
	"github.com/tierd/tierd/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T) (*pgxpool.Pool, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	pg := testenv.StartPostgres(t)
	pool, err := pgxpool.New(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pgschema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pool, ctx
}

func join(t *testing.T, ctx context.Context, pool *pgxpool.Pool, id string, o registry.Options) *registry.Registry {
	t.Helper()
	r, err := registry.Join(ctx, pool, id, "v-test", "127.0.0.1:7070", o)
	if err != nil {
		t.Fatalf("Join %s: %v", id, err)
	}
	t.Cleanup(func() { r.Leave(context.Background()) })
	return r
}

// TestJoinBumpsEpochAndFences: each Join of one id gets the next epoch, and
// the previous process learns it is fenced at its next heartbeat and can
// neither heartbeat nor leave over its successor's row.
func TestJoinBumpsEpochAndFences(t *testing.T) {
	pool, ctx := open(t)
	a := join(t, ctx, pool, "node-a", registry.Options{})
	if a.Epoch() != 1 {
		t.Fatalf("first Join: epoch %d, want 1", a.Epoch())
	}
	other := join(t, ctx, pool, "node-b", registry.Options{})
	if other.Epoch() != 1 {
		t.Fatalf("another node's first Join: epoch %d, want 1", other.Epoch())
	}
	a2 := join(t, ctx, pool, "node-a", registry.Options{})
	if a2.Epoch() != 2 {
		t.Fatalf("second Join: epoch %d, want 2", a2.Epoch())
	}
	if err := a.Heartbeat(ctx); !errors.Is(err, registry.ErrFenced) {
		t.Fatalf("old process's heartbeat: %v, want ErrFenced", err)
	}
	select {
	case <-a.Fenced():
	default:
		t.Fatal("Fenced not closed after a fenced heartbeat")
	}
	if err := a.Leave(ctx); !errors.Is(err, registry.ErrFenced) {
		t.Fatalf("old process's Leave: %v, want ErrFenced", err)
	}
	if err := a2.Heartbeat(ctx); err != nil {
		t.Fatalf("new process's heartbeat: %v", err)
	}
	nodes, err := a2.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].ID != "node-a" || nodes[0].Epoch != 2 || !nodes[0].Stopped.IsZero() || nodes[1].ID != "node-b" {
		t.Fatalf("Nodes after the fenced Leave: %+v", nodes)
	}
}

// TestHeartbeatCarriesStatsAndLeaveStops: the setters reach the row with
// the next heartbeat (the loop's, not a direct call), and Leave marks the
// node stopped.
func TestHeartbeatCarriesStatsAndLeaveStops(t *testing.T) {
	pool, ctx := open(t)
	r := join(t, ctx, pool, "n1", registry.Options{HeartbeatInterval: 20 * time.Millisecond})
	r.SetStreamsWritten(7)
	r.SetJobsHeld(2)
	r.SetCacheBytes(1 << 20)
	want := registry.Stats{StreamsWritten: 7, JobsHeld: 2, CacheBytes: 1 << 20}
	var nodes []registry.Node
	deadline := time.Now().Add(time.Minute)
	for {
		var err error
		nodes, err = r.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 1 && nodes[0].Stats == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never reached the row: %+v", nodes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := nodes[0]
	if n.Version != "v-test" || n.Addr != "127.0.0.1:7070" || n.Epoch != 1 || n.Started.IsZero() ||
		n.Heartbeat.Before(n.Started) || n.HeartbeatAge < 0 || n.HeartbeatAge > time.Minute || !n.Stopped.IsZero() {
		t.Fatalf("live node: %+v", n)
	}
	if err := r.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Leave(ctx); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	nodes, err := registry.List(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Stopped.IsZero() {
		t.Fatalf("after Leave: %+v", nodes)
	}
	// A node that left and starts again takes the next epoch and is live.
	r2 := join(t, ctx, pool, "n1", registry.Options{})
	nodes, _ = r2.Nodes(ctx)
	if r2.Epoch() != 2 || len(nodes) != 1 || !nodes[0].Stopped.IsZero() || nodes[0].Stats != (registry.Stats{}) {
		t.Fatalf("rejoin: epoch %d, %+v", r2.Epoch(), nodes)
	}
}

// TestLoopNoticesFencing: the heartbeat loop itself finds the newer epoch
// and closes Fenced without anyone calling Heartbeat.
func TestLoopNoticesFencing(t *testing.T) {
	pool, ctx := open(t)
	old := join(t, ctx, pool, "n", registry.Options{HeartbeatInterval: 20 * time.Millisecond})
	join(t, ctx, pool, "n", registry.Options{})
	select {
	case <-old.Fenced():
	case <-time.After(time.Minute):
		t.Fatal("the loop never noticed the newer epoch")
	}
}

// TestConcurrentJoinsGetDistinctEpochs: processes racing to join with one
// id each get their own epoch; exactly the last one is current.
func TestConcurrentJoinsGetDistinctEpochs(t *testing.T) {
	pool, ctx := open(t)
	const n = 8
	regs := make(chan *registry.Registry, n)
	for range n {
		go func() {
			r, err := registry.Join(ctx, pool, "race", "v", "", registry.Options{})
			if err != nil {
				t.Error(err)
			}
			regs <- r
		}()
	}
	seen := map[uint64]bool{}
	var all []*registry.Registry
	for range n {
		r := <-regs
		if r == nil {
			t.FailNow()
		}
		all = append(all, r)
		if seen[r.Epoch()] {
			t.Fatalf("epoch %d given twice", r.Epoch())
		}
		seen[r.Epoch()] = true
	}
	live := 0
	for _, r := range all {
		if r.Heartbeat(ctx) == nil {
			live++
			if r.Epoch() != n {
				t.Fatalf("live epoch %d, want %d", r.Epoch(), n)
			}
		}
		r.Leave(ctx)
	}
	if live != 1 {
		t.Fatalf("%d processes still current, want 1", live)
	}
}

func TestValidateNodeID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"node-1", true}, {"ip-10-0-0-1.ec2.internal", true}, {"A", true},
		{"", false}, {"-x", false}, {"a/b", false}, {"..", false}, {"a b", false},
		{string(make([]byte, registry.MaxNodeIDLen+1)), false},
	} {
		err := registry.ValidateNodeID(tc.id)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, registry.ErrInvalidNodeID)) {
			t.Errorf("ValidateNodeID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
	pool, ctx := open(t)
	if _, err := registry.Join(ctx, pool, "a/b", "v", "", registry.Options{}); !errors.Is(err, registry.ErrInvalidNodeID) {
		t.Fatalf("Join with a bad id: %v", err)
	}
}
