package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/policy"
)

// TestReadProcMem: the counters of this process are read, and hold
// together (VmRSS is anonymous + file + shmem, the peak at least VmRSS).
func TestReadProcMem(t *testing.T) {
	s, err := readProcMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.rss <= 0 || s.anon <= 0 || s.file <= 0 || s.hwm < s.rss {
		t.Fatalf("implausible counters %+v", s)
	}
	if d := s.rss - (s.anon + s.file + s.shmem); d < -1<<20 || d > 1<<20 {
		t.Errorf("VmRSS %d is not RssAnon+RssFile+RssShmem %d", s.rss, s.anon+s.file+s.shmem)
	}
	if _, err := readProcMem(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// TestEdgeBenchConfig: the edge workload's configuration is the edge
// profile's budgets with the time-compressed policy, and tierd accepts it.
func TestEdgeBenchConfig(t *testing.T) {
	text, err := edgeBenchConfig("../../examples/edge.yaml", 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := policy.Parse("bench.yaml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	want, err := policy.Load("../../examples/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got.Hot != want.Hot || got.Warm != want.Warm || got.Cold != want.Cold || got.Segment != want.Segment || got.WAL != want.WAL {
		t.Errorf("budgets changed:\n got %+v\nwant %+v", got, want)
	}
	if len(got.Policies) != 1 || got.Policies[0].WarmMaxAge != 15*time.Second || got.Migrator.Schedule != "@every 3s" {
		t.Errorf("policies %+v, schedule %q: want the time-compressed policy", got.Policies, got.Migrator.Schedule)
	}
	if got.Migrator.Concurrency != want.Migrator.Concurrency {
		t.Errorf("migrator concurrency %d, want the profile's %d", got.Migrator.Concurrency, want.Migrator.Concurrency)
	}
}

// TestMemoryStreams runs the streams workload small against a real tierd
// and checks the report names what it measured.
func TestMemoryStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a tierd: skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	f := memoryFlags{runs: 1, workloads: []string{"streams"}, streams: 500, perStream: 2, volume: 1, edgeRate: 1,
		sample: 50 * time.Millisecond, output: "table"}
	if err := runMemory(ctx, &out, f); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"streams", "peak RSS", "steady RSS", "1000 records", "500 streams: steady RSS above idle"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
