package cold

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/internal/promreg"
)

// blockSize is the unit the read cache fetches and keeps. Small blocks keep
// a pruned read from fetching much beyond the pages it needs (tierbench
// cold: a 1 % offset range of a 300 000-record segment fetched 35 % of the
// object with 256 KiB blocks, 12 % with 32 KiB, 8 % with 16 KiB); a run of
// missing blocks is still one ranged GET.
const blockSize = 16 << 10

type blockKey struct {
	key   string
	block int64
}

// blockCache is a bounded LRU of object blocks shared by every cold read:
// footers and recently read ranges stay in memory, so repeated queries over
// the same segments do not refetch them.
type blockCache struct {
	max    int64
	hits   prometheus.Counter
	misses prometheus.Counter
	mu     struct {
		sync.Mutex
		bytes  int64
		lru    *list.List // of *cacheEntry, most recent first
		blocks map[blockKey]*list.Element
	}
}

type cacheEntry struct {
	k    blockKey
	data []byte
}

func newBlockCache(max int64, reg prometheus.Registerer) *blockCache {
	c := &blockCache{
		max:    max,
		hits:   prometheus.NewCounter(prometheus.CounterOpts{Name: "tierd_cold_cache_hits_total", Help: "Cold read cache block hits."}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "tierd_cold_cache_misses_total", Help: "Cold read cache block misses (each a ranged GET or part of one)."}),
	}
	c.mu.lru = list.New()
	c.mu.blocks = map[blockKey]*list.Element{}
	c.hits = promreg.Register(reg, c.hits)
	c.misses = promreg.Register(reg, c.misses)
	return c
}

func (c *blockCache) get(k blockKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.mu.blocks[k]; ok {
		c.mu.lru.MoveToFront(e)
		c.hits.Inc()
		return e.Value.(*cacheEntry).data, true
	}
	c.misses.Inc()
	return nil, false
}

func (c *blockCache) put(k blockKey, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.mu.blocks[k]; ok || int64(len(data)) > c.max {
		return
	}
	c.mu.blocks[k] = c.mu.lru.PushFront(&cacheEntry{k: k, data: data})
	c.mu.bytes += int64(len(data))
	for c.mu.bytes > c.max {
		e := c.mu.lru.Back()
		ce := e.Value.(*cacheEntry)
		c.mu.lru.Remove(e)
		delete(c.mu.blocks, ce.k)
		c.mu.bytes -= int64(len(ce.data))
	}
}

// drop forgets every block of key (after the object is deleted or replaced).
func (c *blockCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.mu.blocks {
		if k.key == key {
			c.mu.lru.Remove(e)
			delete(c.mu.blocks, k)
			c.mu.bytes -= int64(len(e.Value.(*cacheEntry).data))
		}
	}
}

// cachedReaderAt reads an object through the block cache, fetching each run
// of missing blocks with one ranged GET. fetched counts the bytes it asked
// the store for.
type cachedReaderAt struct {
	ctx     context.Context
	b       objstore.Bucket
	key     string
	size    int64
	cache   *blockCache
	fetched *atomic.Int64 // the Tier's count of bytes fetched from the store
}

func (r *cachedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("cold: negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.size)
	first, last := off/blockSize, (end-1)/blockSize
	blocks := make([][]byte, last-first+1)
	for i := first; i <= last; {
		if data, ok := r.cache.get(blockKey{r.key, i}); ok {
			blocks[i-first] = data
			i++
			continue
		}
		j := i // fetch the run of missing blocks [i, j]
		for j < last {
			if _, ok := r.cache.peek(blockKey{r.key, j + 1}); ok {
				break
			}
			j++
		}
		start := i * blockSize
		stop := min((j+1)*blockSize, r.size)
		data, err := r.fetch(start, stop-start)
		if err != nil {
			return 0, err
		}
		for k := i; k <= j; k++ {
			lo := (k - i) * blockSize
			hi := min(lo+blockSize, int64(len(data)))
			blk := data[lo:hi:hi]
			blocks[k-first] = blk
			r.cache.put(blockKey{r.key, k}, blk)
		}
		i = j + 1
	}
	n := 0
	for i, blk := range blocks {
		bstart := (first + int64(i)) * blockSize
		lo := max(off-bstart, 0)
		hi := min(end-bstart, int64(len(blk)))
		n += copy(p[n:], blk[lo:hi])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *cachedReaderAt) fetch(off, length int64) ([]byte, error) {
	what := fmt.Sprintf("read [%d, %d) of", off, off+length)
	rc, err := r.b.GetRange(r.ctx, r.key, off, length)
	if err != nil {
		return nil, storeErr(what, r.key, err)
	}
	defer rc.Close()
	data := make([]byte, length)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, storeErr(what, r.key, err)
	}
	r.fetched.Add(length)
	return data, nil
}

// peek is get without touching the counters or the LRU order.
func (c *blockCache) peek(k blockKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.mu.blocks[k]; ok {
		return e.Value.(*cacheEntry).data, true
	}
	return nil, false
}
