package reader

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// cacheFiles lists the disk cache's files and their total size.
func cacheFiles(t *testing.T, dir string) ([]string, int64) {
	t.Helper()
	var files []string
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, p)
		total += info.Size()
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return files, total
}

// TestDiskCacheDamagedFile: a flipped byte in a disk cache file is never
// served: the file is dropped, the block fetched again and the read is
// correct.
func TestDiskCacheDamagedFile(t *testing.T) {
	e := newEnv(t)
	all := fill(e, 1)
	dir := t.TempDir()
	r := e.reader(Options{CacheDir: dir})
	if _, err := readAll(t, r, "s", tiers.AllRecords()); err != nil {
		t.Fatal(err)
	}
	files, _ := cacheFiles(t, dir)
	if len(files) != 2 { // the two blocks of "s"
		t.Fatalf("%d cache files, want 2", len(files))
	}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2+i] ^= 0x01
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readAll(t, r, "s", tiers.AllRecords())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "after damage", got, all)
	for _, it := range got {
		if it.Source != Journal {
			t.Fatalf("offset %d served from %s, want journal (refetched)", it.Offset, it.Source)
		}
	}
	if st := r.CacheStats(); st.DiskDropped != 2 {
		t.Fatalf("stats %+v, want 2 dropped", st)
	}
	// Refetched blocks are cached again, intact.
	got, err = readAll(t, r, "s", tiers.AllRecords())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "cached again", got, all)
	if got[0].Source != DiskCache {
		t.Fatalf("third read from %s, want disk-cache", got[0].Source)
	}
}

// TestDiskCacheBound: the disk cache stays under its byte bound, evicting
// the least recently used blocks; a reopened cache keeps what fits of what
// the directory holds; a deleted directory costs only fetches.
func TestDiskCacheBound(t *testing.T) {
	e := newEnv(t)
	all := fill(e, 12)
	dir := t.TempDir()
	const bound = 2500
	r := e.reader(Options{CacheDir: dir, CacheBytes: bound})
	for range 2 {
		got, err := readAll(t, r, "s", tiers.AllRecords())
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, "bounded", got, all)
		files, total := cacheFiles(t, dir)
		st := r.CacheStats()
		if total > bound || st.DiskBytes != total || st.DiskFiles != len(files) || len(files) < 2 {
			t.Fatalf("cache holds %d bytes in %d files (stats %+v), bound %d", total, len(files), st, bound)
		}
	}
	if r.CacheStats().DiskHits != 0 {
		// Reading 24 blocks through a cache of a few evicts each before
		// it is read again: LRU, not a lucky hit.
		t.Fatalf("stats %+v: hits in a cache smaller than the scan", r.CacheStats())
	}
	// The newest blocks are cached: a read of the last one hits.
	q := tiers.AllRecords()
	q.From = all[len(all)-1].Offset
	if got, err := readAll(t, r, "s", q); err != nil || len(got) != 1 || got[0].Source != DiskCache {
		t.Fatalf("last record: %v, %v; want it from the disk cache", got, err)
	}
	r.Close()

	// Reopened with half the bound: what the directory holds is indexed
	// and cut down to it.
	r2 := e.reader(Options{CacheDir: dir, CacheBytes: bound / 2})
	files, total := cacheFiles(t, dir)
	if st := r2.CacheStats(); total > bound/2 || st.DiskBytes != total || st.DiskFiles != len(files) || len(files) == 0 {
		t.Fatalf("reopened: %d bytes in %d files, stats %+v", total, len(files), st)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, r2, "s", tiers.AllRecords())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "directory deleted", got, all)
	if files, _ := cacheFiles(t, dir); len(files) == 0 {
		t.Fatal("the deleted cache directory was not made again")
	}
}

// TestMemCacheBound: remembered objects stay under MemBytes, the least
// recently used evicted first.
func TestMemCacheBound(t *testing.T) {
	c := newMemCache(100, newMetrics(nil))
	c.put("a", make([]byte, 40))
	c.put("b", make([]byte, 40))
	if _, ok := c.get("a", 0, 10); !ok {
		t.Fatal("a missing")
	}
	c.put("c", make([]byte, 40)) // evicts b, the least recently used
	if _, ok := c.get("b", 0, 1); ok {
		t.Fatal("b kept over the bound")
	}
	if n, objs := c.usage(); n != 80 || objs != 2 {
		t.Fatalf("usage %d bytes, %d objects", n, objs)
	}
	if _, ok := c.get("a", 30, 11); ok {
		t.Fatal("a range past the object's end was served")
	}
	c.put("big", make([]byte, 101))
	if _, ok := c.get("big", 0, 1); ok {
		t.Fatal("an object above the bound was kept")
	}
}

// TestCacheFileFormat: a cache file decodes to what was encoded, and any
// one flipped byte or a cut is refused.
func TestCacheFileFormat(t *testing.T) {
	data := []byte("the bytes of a journal block")
	b := appendCacheFile(nil, "_journal/n/1/7", 1234, data)
	key, off, got, err := decodeCacheFile(b)
	if err != nil || key != "_journal/n/1/7" || off != 1234 || !bytes.Equal(got, data) {
		t.Fatalf("decode = %q, %d, %q, %v", key, off, got, err)
	}
	for i := range b {
		bad := append([]byte(nil), b...)
		bad[i] ^= 0x40
		if _, _, _, err := decodeCacheFile(bad); !errors.Is(err, errCacheFile) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for n := range len(b) {
		if _, _, _, err := decodeCacheFile(b[:n]); !errors.Is(err, errCacheFile) {
			t.Fatalf("cut to %d bytes: %v", n, err)
		}
	}
}

// FuzzDecodeCacheFile: the disk cache's decoder never panics, and what it
// accepts is exactly what appendCacheFile writes.
func FuzzDecodeCacheFile(f *testing.F) {
	f.Add(appendCacheFile(nil, "_journal/n/1/7", 1234, []byte("data")))
	f.Add(appendCacheFile(nil, "", 0, nil))
	f.Add([]byte("TDJC"))
	f.Fuzz(func(t *testing.T, b []byte) {
		key, off, data, err := decodeCacheFile(b)
		if err != nil {
			if !errors.Is(err, errCacheFile) {
				t.Fatalf("error %v does not wrap errCacheFile", err)
			}
			return
		}
		if again := appendCacheFile(nil, key, off, data); !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes re-encode differently")
		}
	})
}

// TestMemCacheDamaged: a remembered object whose block fails its check is
// dropped and the block fetched from the bucket: a wrong byte in memory is
// never served either.
func TestMemCacheDamaged(t *testing.T) {
	e := newEnv(t)
	c := e.commit(batch{"s", records(4, t0, 0)})
	r := e.reader(Options{})
	bad := append([]byte(nil), c.bytes...)
	bad[c.refs[0].Pos+c.refs[0].Len-8] ^= 0x04
	r.Remember(c.key, bad)
	got, err := readAll(t, r, "s", tiers.AllRecords())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "damaged memory", got, c.recs["s"])
	if got[0].Source != Journal {
		t.Fatalf("served from %s, want journal", got[0].Source)
	}
	if st := r.CacheStats(); st.MemObjects != 0 {
		t.Fatalf("the damaged object is still remembered: %+v", st)
	}
}
