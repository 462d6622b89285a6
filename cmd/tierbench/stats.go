package main

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// percentile returns the p-th percentile (0..100) of ds, which it sorts.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

// median returns the median of xs without changing it.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// result is one measured run.
type result struct {
	records float64 // per second
	mbps    float64 // payload MB/s (value bytes)
	p50     time.Duration
	p99     time.Duration
}

// summary is the median of several runs of one measurement.
type summary struct {
	Name    string  `json:"name"`
	Size    int     `json:"record_bytes"`
	Records float64 `json:"records_per_s"`
	MBps    float64 `json:"mb_per_s"`
	P50us   float64 `json:"ack_p50_us"`
	P99us   float64 `json:"ack_p99_us"`
	Ratio   float64 `json:"ratio_to_raw"`
	Runs    int     `json:"runs"`
}

func summarize(name string, size int, rs []result) summary {
	var rec, mb, p50, p99 []float64
	for _, r := range rs {
		rec = append(rec, r.records)
		mb = append(mb, r.mbps)
		p50 = append(p50, float64(r.p50.Microseconds()))
		p99 = append(p99, float64(r.p99.Microseconds()))
	}
	return summary{Name: name, Size: size, Records: median(rec), MBps: median(mb), P50us: median(p50), P99us: median(p99), Runs: len(rs)}
}

// ratio is the median over runs of each run's throughput divided by the
// baseline's in the same run: pairing runs cancels the machine's drift,
// which on a shared VM is larger than the effects measured.
func ratio(rs, base []result) float64 {
	var xs []float64
	for i := range rs {
		if i < len(base) && base[i].records > 0 {
			xs = append(xs, rs[i].records/base[i].records)
		}
	}
	return median(xs)
}

// timedCalls runs op from n goroutines (op(w, i): goroutine w's i-th
// call) until d has passed, op fails or ctx ends, and times every call
// op counts (a call it asks to repeat, returning false, is not a sample).
// It returns the samples and the seconds the run took.
func timedCalls(ctx context.Context, n int, d time.Duration, op func(w, i int) (bool, error)) ([]time.Duration, float64, error) {
	var (
		mu       sync.Mutex
		lat      []time.Duration
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Since(start) < d && ctx.Err() == nil; i++ {
				t0 := time.Now()
				counted, err := op(w, i)
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					return
				}
				if counted {
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := cmp.Or(firstErr, ctx.Err()); err != nil {
		return nil, 0, err
	}
	return lat, time.Since(start).Seconds(), nil
}

// batchResult turns the timed calls of a run, each of batch records of
// size value bytes, into its throughput and latency.
func batchResult(lat []time.Duration, secs float64, batch, size int) result {
	n := float64(len(lat) * batch)
	return result{records: n / secs, mbps: n * float64(size) / secs / 1e6, p50: percentile(lat, 50), p99: percentile(lat, 99)}
}
