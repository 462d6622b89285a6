package reader

import (
	"context"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// BenchmarkRead reads a stream of 20 objects of 2 × 100 records from each
// source: remembered objects (memory), the disk cache, and ranged GETs of
// the objects in MinIO (no cache). It reports records per second; every
// read goes through PostgreSQL for its plan.
func BenchmarkRead(b *testing.B) {
	e := newEnv(b)
	var keys []string
	var objs [][]byte
	n := 0
	for i := range 20 {
		c := e.commit(batch{"s", records(100, t0, i)}, batch{"s", records(100, t0, i+1)})
		keys, objs = append(keys, c.key), append(objs, c.bytes)
		n += len(c.recs["s"])
	}
	run := func(b *testing.B, r *Reader, want Source) {
		b.ReportAllocs()
		for b.Loop() {
			got := 0
			for it, err := range r.Read(context.Background(), "s", tiers.AllRecords()) {
				if err != nil {
					b.Fatal(err)
				}
				if it.Source != want {
					b.Fatalf("record from %s, want %s", it.Source, want)
				}
				got++
			}
			if got != n {
				b.Fatalf("%d records, want %d", got, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("memory", func(b *testing.B) {
		r := e.reader(Options{})
		for i := range keys {
			r.Remember(keys[i], objs[i])
		}
		run(b, r, Memory)
	})
	b.Run("disk", func(b *testing.B) {
		r := e.reader(Options{CacheDir: b.TempDir()})
		for range r.Read(context.Background(), "s", tiers.AllRecords()) {
		}
		run(b, r, DiskCache)
	})
	b.Run("journal", func(b *testing.B) {
		run(b, e.reader(Options{}), Journal)
	})
}
