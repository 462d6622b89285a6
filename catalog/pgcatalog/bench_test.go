package pgcatalog_test

import (
	"context"
	"testing"

	"github.com/tierd/tierd/testenv"
)

// BenchmarkPutSegment: registering one segment, a transaction with the
// stream's row lock, the neighbours' check and the totals' update.
func BenchmarkPutSegment(b *testing.B) {
	ctx := context.Background()
	c, _ := openCatalogB(b, testenv.StartPostgres(b).DSN)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		base := uint64(i) * 10
		if err := c.PutSegment(ctx, seg("s", base, base+9)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocate: routing a read of one offset in a stream of 10,000
// segments, the read path's one catalog call.
func BenchmarkLocate(b *testing.B) {
	ctx := context.Background()
	c, _ := openCatalogB(b, testenv.StartPostgres(b).DSN)
	const n = 10000
	for i := range uint64(n) {
		if err := c.PutSegment(ctx, seg("s", i*10, i*10+9)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		off := uint64(i*7919%n)*10 + 5
		segs, _, err := c.Locate(ctx, "s", off, off)
		if err != nil || len(segs) != 1 {
			b.Fatalf("Locate(%d) = %d segments, %v", off, len(segs), err)
		}
	}
}
