package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/testenv"
)

// TestClusterTwoProcesses: two real tierd processes in cluster mode over a
// real PostgreSQL and MinIO. Records appended over HTTP through one are
// read through the other right after the acknowledgement, a long poll on
// one is woken by an append on the other, both list the same segments,
// verify is clean, a seal through one compacts what the other lists as
// cold, explain and migrate work, one killed with kill -9 and its data_dir
// deleted restarts with everything, and GET /v1/cluster lists both nodes.
func TestClusterTwoProcesses(t *testing.T) {
	pg := testenv.StartPostgres(t)
	m := testenv.StartMinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey) // the daemons read the standard variables
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	dir := t.TempDir()
	start := func(id string) (*testenv.Tierd, *client.Client) {
		if err := os.MkdirAll(filepath.Join(dir, id), 0o755); err != nil {
			t.Fatal(err)
		}
		config := writeConfig(t, filepath.Join(dir, id), fmt.Sprintf("cold: {store: %q}\ncluster: {catalog: %q, node_id: %s, flush_interval: 10ms}\n", m.URL("minio"), pg.DSN, id))
		d := testenv.StartTierd(t, testenv.TierdOptions{Config: config, DataDir: filepath.Join(dir, id, "data")})
		if !strings.Contains(d.RunLogs(), "mode=cluster node_id="+id) {
			t.Fatalf("tierd %s's listening line does not name cluster mode and its node id:\n%s", id, d.RunLogs())
		}
		return d, client.New(d.URL())
	}
	da, a := start("n1")
	_, b := start("n2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang, not a timing goal
	defer cancel()

	woke := make(chan error, 1)
	go func() {
		q := client.Query{Wait: 30 * time.Second}
		n := 0
		for _, err := range b.Read(ctx, "s", q) {
			if err != nil {
				woke <- err
				return
			}
			n++
		}
		if n == 0 {
			woke <- fmt.Errorf("the long poll on n2 answered no record")
			return
		}
		woke <- nil
	}()
	time.Sleep(300 * time.Millisecond)
	var want []string
	for i := range 5 {
		var recs []client.Record
		for j := range 10 {
			v := fmt.Sprintf(`{"i":%d,"j":%d}`, i, j)
			want = append(want, v)
			recs = append(recs, client.Record{Key: fmt.Sprintf("k%d", j%2), Value: json.RawMessage(v)})
		}
		res, err := a.Append(ctx, "s", recs)
		if err != nil {
			t.Fatal(err)
		}
		if res.FirstOffset != uint64(i*10) {
			t.Fatalf("batch %d got offsets from %d", i, res.FirstOffset)
		}
		// Through the other process, right after the acknowledgement.
		n := 0
		for r, err := range b.Read(ctx, "s", client.Query{}) {
			if err != nil {
				t.Fatal(err)
			}
			if r.Offset != uint64(n) || string(r.Value) != want[n] {
				t.Fatalf("n2 read offset %d %s at %d, want %s", r.Offset, r.Value, n, want[n])
			}
			n++
		}
		if n != len(want) {
			t.Fatalf("n2 read %d records after batch %d, want %d", n, i, len(want))
		}
	}
	if err := <-woke; err != nil {
		t.Fatalf("long poll on n2: %v", err)
	}
	key := "k1"
	n := 0
	for r, err := range b.Read(ctx, "s", client.Query{Key: &key}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Key != "k1" || r.Offset%2 != 1 {
			t.Fatalf("key filter through n2 answered %+v", r)
		}
		n++
	}
	if n != 25 {
		t.Fatalf("key filter through n2: %d records, want 25", n)
	}
	for _, c := range []*client.Client{a, b} {
		segs, err := c.Segments(ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) != 1 || !segs[0].Active || segs[0].Count != 50 || len(segs[0].Tiers) != 1 || segs[0].Tiers[0] != "warm" {
			t.Fatalf("segments: %+v", segs)
		}
		rep, err := c.Verify(ctx, client.VerifyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || len(rep.Findings) != 0 {
			t.Fatalf("verify: %+v", rep)
		}
	}
	// The seal of cluster mode compacts the journal into a cold segment;
	// the other process lists it, and the migrator (retention) explains
	// and plans over it.
	sr, err := b.Seal(ctx, "s")
	if err != nil || !sr.Sealed || sr.Segment == nil || sr.Segment.Last != 49 {
		t.Fatalf("seal through n2: %+v, %v", sr, err)
	}
	segs, err := a.Segments(ctx, "s")
	if err != nil || len(segs) != 1 || segs[0].Active || len(segs[0].Tiers) != 1 || segs[0].Tiers[0] != "cold" {
		t.Fatalf("segments through n1 after the seal: %+v, %v", segs, err)
	}
	ex, err := a.Explain(ctx, "s")
	if err != nil || len(ex.Segments) != 1 {
		t.Fatalf("explain through n1: %+v, %v", ex, err)
	}
	if _, err := a.Migrate(ctx, client.MigrateRequest{DryRun: true}); err != nil {
		t.Fatalf("migrate --dry-run through n1: %v", err)
	}
	// kill -9 of n1 and its data_dir deleted: nothing acknowledged was on
	// its disk. The restarted process (a new epoch) reads everything and
	// continues the offsets.
	da.Kill()
	if err := os.RemoveAll(da.DataDir()); err != nil {
		t.Fatal(err)
	}
	da.Restart()
	res, err := a.Append(ctx, "s", []client.Record{{Value: json.RawMessage(`{"after":"restart"}`)}})
	if err != nil || res.FirstOffset != 50 {
		t.Fatalf("append after the restart: %+v, %v", res, err)
	}
	want = append(want, `{"after":"restart"}`)
	n = 0
	for r, err := range a.Read(ctx, "s", client.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Offset != uint64(n) || string(r.Value) != want[n] {
			t.Fatalf("n1 after its restart read offset %d %s at %d, want %s", r.Offset, r.Value, n, want[n])
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("n1 after its restart read %d records, want %d", n, len(want))
	}
	st, err := a.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Self != "n1" || len(st.Nodes) != 2 || st.Nodes[0].NodeID != "n1" || st.Nodes[0].Epoch != 2 || st.Nodes[1].NodeID != "n2" || !st.Nodes[1].Live {
		t.Fatalf("cluster status: %+v", st)
	}
}
