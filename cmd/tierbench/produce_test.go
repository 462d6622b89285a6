package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/client"
)

// TestProduce starts a real tierd the way the command does (the test
// binary has no tierd beside it, so this also builds one) and checks that
// the producer figures count what the server holds, under both policies,
// and that the report carries the figures a reader looks for.
func TestProduce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := findTierd(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := startTierd(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	c := client.New(d.addr, client.WithHTTPClient(produceHTTPClient(4)))

	for _, tc := range []struct {
		name   string
		policy client.QueuePolicy
		queue  int
	}{
		{"block", client.Block, 1000},
		// A queue of 10 records against 4 unpaced goroutines must overflow.
		{"drop", client.Drop, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := produceFlags{duration: 300 * time.Millisecond, goroutines: 4, streams: 3, valueBytes: 40,
				queue: tc.queue, batch: 20, linger: 5 * time.Millisecond, workers: 2, sampleEvery: 4}
			recs := make([][]client.Record, f.goroutines)
			for w := range recs {
				for _, r := range makeBatch(f.batch, f.valueBytes, rand.New(rand.NewPCG(uint64(w), 1))) {
					recs[w] = append(recs[w], client.Record{Key: r.Key, ValueB64: r.Value})
				}
			}
			streams := []string{"t-" + tc.name + "-0", "t-" + tc.name + "-1", "t-" + tc.name + "-2"}
			var r produceRun
			if err := producerLoop(ctx, c, f, tc.policy, streams, recs, &r); err != nil {
				t.Fatal(err)
			}
			st := r.stats
			if st.Persisted+st.Dropped != st.Received || st.Failed != 0 || r.failErr != nil {
				t.Fatalf("stats %+v (first failure %v): every Send must be persisted or dropped", st, r.failErr)
			}
			if held := serverRecords(ctx, t, c, streams); held != r.persisted || held != st.Persisted {
				t.Fatalf("the server holds %d records of %v; OnBatch reported %d persisted, Stats %d", held, streams, r.persisted, st.Persisted)
			}
			switch {
			case tc.policy == client.Block && (st.Dropped != 0 || st.LossRate != 0):
				t.Fatalf("block policy lost records: %+v", st)
			case tc.policy == client.Drop && (st.Dropped == 0 || st.LossRate <= 0):
				t.Fatalf("a queue of %d under drop never overflowed: %+v", tc.queue, st)
			}
			if r.send.samples == 0 || r.send.p50 <= 0 || r.send.p50 > r.send.p99 || r.send.p99 > r.send.max {
				t.Fatalf("Send latency not measured: %+v", r.send)
			}
			if r.producer.records <= 0 {
				t.Fatalf("persisted records/s %v", r.producer.records)
			}
		})
	}

	t.Run("report", func(t *testing.T) {
		var out bytes.Buffer
		f := produceFlags{addr: d.addr, runs: 2, duration: 200 * time.Millisecond, goroutines: 2, streams: 2, valueBytes: 40,
			queue: 1000, policy: "block", batch: 20, linger: 5 * time.Millisecond, workers: 2, sampleEvery: 4, output: "json"}
		if err := runProduce(ctx, &out, f); err != nil {
			t.Fatal(err)
		}
		var s produceSummary
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("%v in %s", err, out.String())
		}
		if s.Runs != 2 || s.Records.Median <= 0 || s.AppendRecords.Median <= 0 || s.VsAppend.Median <= 0 ||
			s.Send.P50ns.Median <= 0 || s.ChanSend.P50ns.Median <= 0 || s.SendP50VsChan.Median <= 0 || s.Dropped.Max != 0 {
			t.Fatalf("report lacks figures: %s", out.String())
		}
		f.output, f.runs, f.duration = "table", 1, 100*time.Millisecond
		out.Reset()
		if err := runProduce(ctx, &out, f); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"chan send (baseline)", "Producer.Send", "AppendBatch (baseline, sync)", "vs AppendBatch", "loss rate"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("table lacks %q:\n%s", want, out.String())
			}
		}
	})
}

// serverRecords sums the records the server lists for streams.
func serverRecords(ctx context.Context, t *testing.T, c *client.Client, streams []string) uint64 {
	t.Helper()
	all, err := c.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, s := range all {
		for _, name := range streams {
			if s.Name == name {
				n += s.Records
			}
		}
	}
	if n == 0 {
		t.Fatalf("no records on the server in %v", streams)
	}
	return n
}
