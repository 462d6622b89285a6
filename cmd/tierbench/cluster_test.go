package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestClusterBench runs tierbench cluster briefly against a real MinIO and
// PostgreSQL (as make bench does with testenv's scripts) and checks that
// every measurement acknowledged records, that the journal PUTs counted
// are there for every node and bounded by one per flush interval, and that
// the report states the price it used.
func TestClusterBench(t *testing.T) {
	m := testenv.StartMinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", m.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", m.SecretKey)
	pg := testenv.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := clusterFlags{endpoint: m.Endpoint, catalog: pg.DSN, runs: 1, duration: 700 * time.Millisecond,
		writers: 4, streams: 2, batch: 20, valueBytes: 50, flushInterval: 50 * time.Millisecond, nodes: 2, output: "json"}
	var out bytes.Buffer
	if err := runCluster(ctx, &out, f); err != nil {
		t.Fatal(err)
	}
	var s clusterSummary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if len(s.Rows) != 3 {
		t.Fatalf("%d rows, want local, 1 node, 2 nodes: %s", len(s.Rows), out.String())
	}
	for _, r := range s.Rows {
		if r.Records.Median <= 0 || r.P99us.Median <= 0 {
			t.Fatalf("%s ×%d: nothing measured: %+v", r.Name, r.Nodes, r)
		}
		if r.Name == "local" {
			continue
		}
		// At least one PUT per node (it acknowledged records), at most
		// one per flush interval with slack for a flush by bytes.
		perS := r.PutsPerNodeS.Median
		if perS <= 0 || perS > 2/f.flushInterval.Seconds() {
			t.Fatalf("%s ×%d: %.1f journal PUTs/s per node with flush_interval %s", r.Name, r.Nodes, perS, f.flushInterval)
		}
	}
	if !strings.Contains(s.Price, "$0.005 per 1,000") || !strings.Contains(s.Price, "2026-") {
		t.Fatalf("the report does not state the price and its date: %q", s.Price)
	}
	f.output = "table"
	f.duration = 300 * time.Millisecond
	out.Reset()
	if err := runCluster(ctx, &out, f); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vs local", "PUTs/s per node", "$ per GiB", "not the capacity of 2 machines"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
}
