package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// BenchmarkAppendWhileOthersWait appends one-record batches to one stream
// while readers long-poll other streams: with waiters per stream, the
// readers are not woken and the append costs what it costs with none.
func BenchmarkAppendWhileOthersWait(b *testing.B) {
	for _, readers := range []int{0, 64, 1024} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			e, err := Open(context.Background(), Options{DataDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close(context.Background())
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for i := range readers {
				name := fmt.Sprintf("r%d", i)
				if _, err := e.Append(ctx, name, []tiers.Record{{Value: []byte("x")}}); err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					e.WaitFor(ctx, name, 1) // until cancel: nothing more is appended to name
				}()
			}
			rec := []tiers.Record{{Value: []byte(`{"n":1}`)}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := e.Append(ctx, "w", rec); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
		})
	}
}
