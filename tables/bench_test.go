package tables

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/testenv"
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
	p := open(b, s, src)
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

// BenchmarkSyncAllUnchanged measures what tierd's start-up sync costs per
// stream when every table is already up to date (a restart): SyncAll over
// that many streams of one file each, after a first SyncAll created the
// tables; with the file catalog on a file store and the PostgreSQL catalog
// on MinIO. It reports the no-op SyncAll's time per stream beside a
// baseline taken in the same run: plain GETs of the files such a Sync
// reads (metadata file, manifest list, manifests), and four streams at a
// time, as tablesync's loop syncs them. Run it with -benchtime=1x.
func BenchmarkSyncAllUnchanged(b *testing.B) {
	const streams = 200
	for _, kind := range []string{"file", "minio+pg"} {
		b.Run(fmt.Sprintf("%s/streams=%d", kind, streams), func(b *testing.B) {
			s := fileStore(b)
			if kind == "minio+pg" {
				s = minioStore(b)
				s.opts.CatalogDSN = testenv.StartPostgres(b).DSN
			}
			ctx := context.Background()
			src := newSource()
			for i := range streams {
				src.add(putSegment(b, s, fmt.Sprintf("s%03d", i), records(0, 10, 20000*day, 1000), pqfile.Options{}))
			}
			p := open(b, s, src)
			if _, err := p.SyncAll(ctx); err != nil {
				b.Fatal(err)
			}
			// The baseline: reading, with plain GETs, the files a no-op
			// Sync of each table cannot do without (its metadata file,
			// manifest list and manifests).
			var keys []string
			root := p.root + "/"
			for i := range streams {
				tbl, err := p.load(ctx, fmt.Sprintf("s%03d", i))
				if err != nil {
					b.Fatal(err)
				}
				fio, err := tbl.FS(ctx)
				if err != nil {
					b.Fatal(err)
				}
				keys = append(keys, strings.TrimPrefix(tbl.MetadataLocation(), root), strings.TrimPrefix(tbl.CurrentSnapshot().ManifestList, root))
				mans, err := tbl.CurrentSnapshot().Manifests(fio)
				if err != nil {
					b.Fatal(err)
				}
				for _, m := range mans {
					keys = append(keys, strings.TrimPrefix(m.FilePath(), root))
				}
			}
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				for _, k := range keys {
					rc, err := s.bucket.Get(ctx, k)
					if err != nil {
						b.Fatal(err)
					}
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
				base := time.Since(t0)
				b.ReportMetric(float64(base.Microseconds())/1000/streams, "baseline-ms/stream")
				t0 = time.Now()
				res, err := p.SyncAll(ctx)
				if err != nil || len(res) != streams {
					b.Fatalf("SyncAll: %d results, %v", len(res), err)
				}
				for _, r := range res {
					if r.Committed {
						b.Fatalf("%s: a Sync of an unchanged table committed", r.Stream)
					}
				}
				d := time.Since(t0)
				b.ReportMetric(float64(d.Microseconds())/1000/streams, "ms/stream")
				b.ReportMetric(d.Seconds()/base.Seconds(), "x-baseline")
				// Four at a time, as tablesync's round syncs them.
				t0 = time.Now()
				work := make(chan string)
				var wg sync.WaitGroup
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for name := range work {
							if r, err := p.Sync(ctx, name); err != nil || r.Committed {
								b.Errorf("%s: %+v, %v", name, r, err)
							}
						}
					}()
				}
				for i := range streams {
					work <- fmt.Sprintf("s%03d", i)
				}
				close(work)
				wg.Wait()
				b.ReportMetric(float64(time.Since(t0).Microseconds())/1000/streams, "ms/stream-4-at-once")
			}
		})
	}
}
