package tables

import (
	"context"
	"fmt"
	"testing"

	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/tiers"
)

// BenchmarkSync measures a Sync that publishes files into a new table
// (the first `tierctl table sync` of an existing archive), a Sync with
// nothing to do, and a Sync adding one file to a table of that many: the
// steady state, one per commit_interval. Run it with -benchtime=1x.
func BenchmarkSync(b *testing.B) {
	for _, n := range []int{100, 500} {
		for _, kind := range []string{"file", "minio"} {
			b.Run(fmt.Sprintf("%s/files=%d", kind, n), func(b *testing.B) {
				benchSync(b, kind, n)
			})
		}
	}
}

func benchSync(b *testing.B, kind string, n int) {
	s := fileStore(b)
	if kind == "minio" {
		s = minioStore(b)
	}
	ctx := context.Background()
	src := newSource()
	var segs []tiers.SegmentMeta
	for i := range n {
		segs = append(segs, putSegment(b, s, "bench", records(uint64(i*10), 10, 20000*day+int64(i)*1e9, 1000), pqfile.Options{}))
	}
	extra := putSegment(b, s, "bench", records(uint64(n*10), 10, 20001*day, 1000), pqfile.Options{})
	o := s.opts
	o.Segments = src
	p, err := Open(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	src.add(segs...)
	b.ResetTimer()
	for range b.N {
		res, err := p.Sync(ctx, "bench")
		if err != nil || res.Added != n {
			b.Fatalf("initial Sync: %+v %v", res, err)
		}
		b.ReportMetric(res.Duration.Seconds(), "initial-s")
		res, err = p.Sync(ctx, "bench")
		if err != nil || res.Committed {
			b.Fatalf("no-op Sync: %+v %v", res, err)
		}
		b.ReportMetric(res.Duration.Seconds(), "noop-s")
		src.add(extra)
		res, err = p.Sync(ctx, "bench")
		if err != nil || res.Added != 1 {
			b.Fatalf("incremental Sync: %+v %v", res, err)
		}
		b.ReportMetric(res.Duration.Seconds(), "add1-s")
		if err := p.Remove(ctx, "bench", []tiers.SegmentMeta{extra}); err != nil {
			b.Fatal(err)
		}
		src.drop("bench", extra.Base)
		b.StopTimer()
		if err := p.Remove(ctx, "bench", segs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
