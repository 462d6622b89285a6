package reader

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// diskCache keeps journal blocks fetched from the bucket as files under
// one directory, bounded by bytes and evicted least recently used first.
// It holds nothing that is not in the bucket: every file is written
// atomically (a temporary file renamed), checked whole on every read
// (decodeCacheFile) and dropped when damaged, and a directory deleted
// under a running node only costs fetches (it is made again on the next
// write).
type diskCache struct {
	dir string
	max int64
	log *slog.Logger
	m   *metrics

	hits, misses, dropped atomic.Int64

	mu struct {
		sync.Mutex
		bytes int64
		lru   *list.List // of *diskEntry, most recent first
		files map[string]*list.Element
	}
}

type diskEntry struct {
	name string // the file's base name: cacheName of its block
	size int64  // the file's size
}

// cacheSuffix ends every cache file's name; temporary files end in
// cacheSuffix + ".tmp" until renamed.
const cacheSuffix = ".blk"

// openDiskCache indexes what dir already holds (a restarted node keeps its
// cache), oldest first by modification time, removes temporary files a
// crash left, and evicts down to max.
func openDiskCache(dir string, max int64, log *slog.Logger, m *metrics) (*diskCache, error) {
	c := &diskCache{dir: dir, max: max, log: log, m: m}
	c.mu.lru = list.New()
	c.mu.files = map[string]*list.Element{}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	type found struct {
		name  string
		size  int64
		mtime time.Time
	}
	var all []found
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // an unreadable subdirectory is only a colder cache
		}
		name := d.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(path)
			return nil
		}
		if !validCacheName(name) || filepath.Dir(path) != c.subdir(name) {
			return nil // not ours: left alone
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		all = append(all, found{name, info.Size(), info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range all {
		c.mu.files[f.name] = c.mu.lru.PushFront(&diskEntry{name: f.name, size: f.size})
		c.mu.bytes += f.size
	}
	c.evictLocked()
	return c, nil
}

// cacheName names the file of the block [off, off+n) of object key: a
// hash, so any key makes a short, safe file name.
func cacheName(key string, off, n int64) string {
	h := sha256.New()
	h.Write([]byte(key))
	var b [17]byte
	binary.LittleEndian.PutUint64(b[1:], uint64(off))
	h.Write(b[:9])
	binary.LittleEndian.PutUint64(b[1:], uint64(n))
	h.Write(b[1:])
	return hex.EncodeToString(h.Sum(nil)[:20]) + cacheSuffix
}

func validCacheName(name string) bool {
	hexPart, ok := strings.CutSuffix(name, cacheSuffix)
	if !ok || len(hexPart) != 40 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil
}

// subdir spreads files over 256 directories so that none grows huge.
func (c *diskCache) subdir(name string) string { return filepath.Join(c.dir, name[:2]) }

func (c *diskCache) path(name string) string { return filepath.Join(c.subdir(name), name) }

// get returns the block [off, off+n) of object key when a file holds it,
// checked. A file that fails the check is removed and counted as dropped:
// the caller fetches the block again.
func (c *diskCache) get(key string, off, n int64) ([]byte, bool) {
	name := cacheName(key, off, n)
	c.mu.Lock()
	e, ok := c.mu.files[name]
	if ok {
		c.mu.lru.MoveToFront(e)
	}
	c.mu.Unlock()
	if !ok {
		c.miss()
		return nil, false
	}
	b, err := os.ReadFile(c.path(name))
	if err != nil {
		// Gone (the directory was deleted) or unreadable: forget it.
		c.forget(name, errors.Is(err, fs.ErrNotExist))
		c.miss()
		return nil, false
	}
	k, o, data, err := decodeCacheFile(b)
	if err == nil && (k != key || o != off || int64(len(data)) != n) {
		err = errCacheFile
	}
	if err != nil {
		c.log.Warn("dropping a damaged disk cache file; the block is fetched again", "file", c.path(name), "object", key, "off", off, "err", err)
		c.dropped.Add(1)
		c.m.damaged.Inc()
		c.forget(name, false)
		c.miss()
		return nil, false
	}
	c.hits.Add(1)
	c.m.lookups.WithLabelValues("disk", "hit").Inc()
	return data, true
}

func (c *diskCache) miss() {
	c.misses.Add(1)
	c.m.lookups.WithLabelValues("disk", "miss").Inc()
}

// forget drops a file from the index and from the disk (unless gone).
func (c *diskCache) forget(name string, gone bool) {
	c.mu.Lock()
	if e, ok := c.mu.files[name]; ok {
		c.mu.lru.Remove(e)
		delete(c.mu.files, name)
		c.mu.bytes -= e.Value.(*diskEntry).size
		c.m.bytes.WithLabelValues("disk").Set(float64(c.mu.bytes))
	}
	c.mu.Unlock()
	if !gone {
		os.Remove(c.path(name))
	}
}

// put stores the block [off, off+len(data)) of object key, which the
// caller decoded and checked. Failing to write is only a colder cache:
// logged, never returned.
func (c *diskCache) put(key string, off int64, data []byte) {
	name := cacheName(key, off, int64(len(data)))
	b := appendCacheFile(make([]byte, 0, cacheFileHeaderLen+len(key)+len(data)+cacheFileTrailer), key, off, data)
	size := int64(len(b))
	if size > c.max {
		return
	}
	c.mu.Lock()
	_, have := c.mu.files[name]
	c.mu.Unlock()
	if have {
		return
	}
	if err := c.write(name, b); err != nil {
		c.log.Warn("disk cache write failed; reads fetch from the bucket", "dir", c.dir, "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.mu.files[name]; ok { // a concurrent put of the same block
		c.mu.bytes -= e.Value.(*diskEntry).size
		c.mu.lru.Remove(e)
	}
	c.mu.files[name] = c.mu.lru.PushFront(&diskEntry{name: name, size: size})
	c.mu.bytes += size
	c.evictLocked()
}

// write writes b as the file name: a temporary file renamed into place, so
// a reader sees no file or the whole of it. It needs no fsync: a file torn
// by a crash fails its checksum and is dropped.
func (c *diskCache) write(name string, b []byte) error {
	sub := c.subdir(name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(sub, name+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(sub, name))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// evictLocked removes the least recently used files until the cache fits.
func (c *diskCache) evictLocked() {
	for c.mu.bytes > c.max {
		e := c.mu.lru.Back()
		if e == nil {
			break
		}
		d := e.Value.(*diskEntry)
		c.mu.lru.Remove(e)
		delete(c.mu.files, d.name)
		c.mu.bytes -= d.size
		os.Remove(c.path(d.name))
	}
	c.m.bytes.WithLabelValues("disk").Set(float64(c.mu.bytes))
}

// usage returns the bytes and files the cache holds.
func (c *diskCache) usage() (int64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.bytes, len(c.mu.files)
}
