package cold

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/tierd/tierd/cold/objstore"
)

// TestCachedReaderAtReadsWhatIsStored: random reads through the block cache
// return the object's bytes, fetch each block at most once while the cache
// holds it, and keep the cache within its bound.
func TestCachedReaderAtReadsWhatIsStored(t *testing.T) {
	ctx := context.Background()
	b, err := objstore.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	obj := make([]byte, 5*blockSize+12345)
	for i := range obj {
		obj[i] = byte(rng.Uint32())
	}
	if err := b.Put(ctx, "k/obj", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	var fetched atomicCounter
	cache := newBlockCache(3*blockSize, nil)
	r := &cachedReaderAt{ctx: ctx, b: b, key: "k/obj", size: int64(len(obj)), cache: cache, fetched: &fetched.Int64}
	for i := 0; i < 500; i++ {
		off := rng.Int64N(int64(len(obj)) + 10)
		n := rng.IntN(2 * blockSize)
		p := make([]byte, n)
		got, err := r.ReadAt(p, off)
		want := 0
		if off < int64(len(obj)) {
			want = copy(make([]byte, n), obj[off:])
		}
		if got != want || !bytes.Equal(p[:got], obj[min(off, int64(len(obj))):min(off, int64(len(obj)))+int64(got)]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, want %d bytes equal to the object", n, off, got, want)
		}
		if got < n && err != io.EOF {
			t.Fatalf("short read without io.EOF: %v", err)
		}
		if got == n && err != nil {
			t.Fatalf("full read with error %v", err)
		}
		if cache.mu.bytes > cache.max {
			t.Fatalf("cache holds %d bytes, bound %d", cache.mu.bytes, cache.max)
		}
	}
	// A block read twice in a row is fetched once.
	before := fetched.Load()
	p := make([]byte, 100)
	r.ReadAt(p, 10)
	mid := fetched.Load()
	r.ReadAt(p, 20)
	if fetched.Load() != mid || mid-before > blockSize {
		t.Fatalf("fetched %d then %d more bytes for reads within one block", mid-before, fetched.Load()-mid)
	}
	cache.drop("k/obj")
	if cache.mu.bytes != 0 || cache.mu.lru.Len() != 0 {
		t.Fatalf("drop left %d bytes", cache.mu.bytes)
	}
}

type atomicCounter struct{ atomic.Int64 }
