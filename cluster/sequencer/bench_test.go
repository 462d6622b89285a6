package sequencer_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/cluster/sequencer"
	"github.com/tierd/tierd/tiers"
)

// BenchmarkIngest appends b.N batches (100 records of 100 bytes, 16
// streams, 64 concurrent appenders) through one node's sequencer at the
// default flush_interval and flush_bytes, against the shared MinIO and
// PostgreSQL of the test binary, then PUTs objects of exactly the sizes
// the sequencer wrote, one at a time as the sequencer does, to the same
// MinIO: the same-run baseline of what the store alone costs. It reports
// records/s of both, their ratio, and the append latency p50/p99 (the
// issue's goal: p99 ≤ flush_interval + 100 ms on loopback).
//
//	go test -run - -bench Ingest -benchtime 20000x ./cluster/sequencer/
func BenchmarkIngest(b *testing.B) {
	e := newEnv(b, envOpts{})
	var mu sync.Mutex
	var sizes []int
	reg := prometheus.NewRegistry()
	s := e.seq(e.join("bench"), sequencer.Options{Registerer: reg, OnCommit: func(c sequencer.Committed) {
		mu.Lock()
		sizes = append(sizes, len(c.Data))
		mu.Unlock()
	}})
	const (
		appenders  = 64
		perBatch   = 100
		valueBytes = 100
		streams    = 16
	)
	batch := make([]tiers.Record, perBatch)
	for i := range batch {
		batch[i] = tiers.Record{TS: int64(i), Key: fmt.Sprint("key-", i%10), Value: bytes.Repeat([]byte{'v'}, valueBytes)}
	}
	lat := make([][]time.Duration, appenders)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if _, err := s.Append(e.ctx, fmt.Sprint("bench-", i%streams), tiers.Producer{}, batch); err != nil {
					b.Error(err)
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if b.Failed() {
		return
	}
	records := float64(b.N) * perBatch
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }

	// The baseline: the same object sizes PUT back to back.
	mu.Lock()
	objs := slices.Clone(sizes)
	mu.Unlock()
	buf := make([]byte, slices.Max(objs))
	rand.Read(buf)
	putLat := make([]time.Duration, 0, len(objs))
	t0 := time.Now()
	for i, n := range objs {
		t1 := time.Now()
		if err := e.bucket.Put(e.ctx, fmt.Sprintf("baseline/%08d", i), bytes.NewReader(buf[:n]), int64(n)); err != nil {
			b.Fatal(err)
		}
		putLat = append(putLat, time.Since(t1))
	}
	putElapsed := time.Since(t0)
	slices.Sort(putLat)

	seqRate := records / elapsed.Seconds()
	putRate := records / putElapsed.Seconds()
	b.ReportMetric(seqRate, "records/s")
	b.ReportMetric(putRate, "baseline-put-records/s")
	b.ReportMetric(seqRate/putRate, "ratio")
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(putLat[len(putLat)*99/100].Microseconds())/1000, "baseline-put-p99-ms")
	b.ReportMetric(float64(len(objs))/elapsed.Seconds(), "puts/s")
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		h := mf.GetMetric()[0].GetHistogram()
		switch mf.GetName() {
		case "tierd_sequencer_put_duration_seconds":
			b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount())*1000, "put-avg-ms")
		case "tierd_sequencer_commit_duration_seconds":
			b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount())*1000, "commit-avg-ms")
		}
	}
}
