package reader

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/promreg"
)

// memCache holds whole journal objects this node wrote (Remember), bounded
// by bytes, least recently used evicted first: a record read back soon
// after its append costs no GET.
type memCache struct {
	max int64
	m   *metrics

	hits, misses atomic.Int64

	mu struct {
		sync.Mutex
		bytes int64
		lru   *list.List // of *memEntry, most recent first
		objs  map[string]*list.Element
	}
}

type memEntry struct {
	key string
	b   []byte
}

func newMemCache(max int64, m *metrics) *memCache {
	c := &memCache{max: max, m: m}
	c.mu.lru = list.New()
	c.mu.objs = map[string]*list.Element{}
	return c
}

// put keeps b (the caller's copy) as object key's bytes.
func (c *memCache) put(key string, b []byte) {
	if int64(len(b)) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.mu.objs[key]; ok {
		c.mu.bytes -= int64(len(e.Value.(*memEntry).b))
		c.mu.lru.Remove(e)
	}
	c.mu.objs[key] = c.mu.lru.PushFront(&memEntry{key: key, b: b})
	c.mu.bytes += int64(len(b))
	for c.mu.bytes > c.max {
		e := c.mu.lru.Back()
		old := e.Value.(*memEntry)
		c.mu.lru.Remove(e)
		delete(c.mu.objs, old.key)
		c.mu.bytes -= int64(len(old.b))
	}
	c.m.bytes.WithLabelValues("memory").Set(float64(c.mu.bytes))
}

// get returns the bytes [off, off+n) of object key when it is held. The
// slice aliases the cached object, which is never written again.
func (c *memCache) get(key string, off, n int64) ([]byte, bool) {
	c.mu.Lock()
	e, ok := c.mu.objs[key]
	var b []byte
	if ok {
		c.mu.lru.MoveToFront(e)
		b = e.Value.(*memEntry).b
	}
	c.mu.Unlock()
	if !ok || off < 0 || n < 0 || off > int64(len(b)) || n > int64(len(b))-off {
		c.misses.Add(1)
		c.m.lookups.WithLabelValues("memory", "miss").Inc()
		return nil, false
	}
	c.hits.Add(1)
	c.m.lookups.WithLabelValues("memory", "hit").Inc()
	return b[off : off+n : off+n], true
}

// drop forgets object key (its bytes failed a check: never served again).
func (c *memCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.mu.objs[key]; ok {
		c.mu.bytes -= int64(len(e.Value.(*memEntry).b))
		c.mu.lru.Remove(e)
		delete(c.mu.objs, key)
		c.m.bytes.WithLabelValues("memory").Set(float64(c.mu.bytes))
	}
}

func (c *memCache) usage() (int64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.bytes, len(c.mu.objs)
}

// metrics are the reader's Prometheus collectors.
type metrics struct {
	bytes        *prometheus.GaugeVec   // cache: memory, disk
	lookups      *prometheus.CounterVec // cache, result: hit, miss
	damaged      prometheus.Counter
	fetches      prometheus.Counter
	fetchedBytes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		bytes: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tierd_reader_cache_bytes", Help: "Bytes held by the cluster read caches (memory: objects this node wrote; disk: fetched blocks)."},
			[]string{"cache"})),
		lookups: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierd_reader_cache_lookups_total", Help: "Journal block lookups in the cluster read caches, by cache and result."},
			[]string{"cache", "result"})),
		damaged: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_reader_cache_damaged_total", Help: "Disk cache files that failed their check, were dropped and fetched again."})),
		fetches: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_reader_journal_fetches_total", Help: "Ranged GETs of journal objects."})),
		fetchedBytes: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierd_reader_journal_fetched_bytes_total", Help: "Bytes fetched from journal objects by ranged GETs."})),
	}
}
