package warm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/tierd/tierd/tiers"
)

// mappingRSS is the resident size of the mapping holding sg.data, from
// /proc/self/smaps: the pages this process's page tables map, which is what
// RssFile counts (the page cache holding a page does not).
func mappingRSS(t *testing.T, sg *segment) int64 {
	t.Helper()
	start := uintptr(unsafe.Pointer(unsafe.SliceData(sg.data)))
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps (%v): cannot see resident pages", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	found := false
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") { // a mapping's first line: "lo-hi perms …"
			lo, _, _ := strings.Cut(fields[0], "-")
			a, err := strconv.ParseUint(lo, 16, 64)
			found = err == nil && uintptr(a) == start
			continue
		}
		if found && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "Rss:"), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("mapping at %#x not in /proc/self/smaps", start)
	return 0
}

// bigSegment commits a segment of n records of size-byte values.
func bigSegment(t *testing.T, s *Store, stream string, base uint64, n, size int) []tiers.Record {
	t.Helper()
	recs := make([]tiers.Record, n)
	for i := range recs {
		recs[i] = tiers.Record{Offset: base + uint64(i), TS: int64(i), Key: fmt.Sprintf("k%d", i%7), Value: bytes.Repeat([]byte{byte(i)}, size)}
	}
	commitSegment(t, s, stream, recs)
	return recs
}

// TestReadsGiveBackTheirPages: a mapping read end to end (Scan, Get,
// Verify) keeps no page of its file resident between reads, where the
// reads touched 24 MiB of it; a Scan in progress holds a few megabytes at
// most (dropEvery plus the folios around it). Before, every page a read
// touched stayed resident until the mapping went away, so 1,024 cached
// readers held gigabytes.
func TestReadsGiveBackTheirPages(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	recs := bigSegment(t, s, "s", 0, 24<<10, 1000)
	r := acquire(t, s, "s", 0)
	defer r.Release()
	sg := r.sg
	const between = 64 << 10 // resident between reads: nothing, give or take a folio
	if got := mappingRSS(t, sg); got > between {
		t.Fatalf("just acquired: %d resident bytes, want at most %d", got, between)
	}
	if sg.charge > 64<<10 || sg.charge < int64(len(sg.foot)) {
		t.Fatalf("charge %d for a 24 MiB segment with a %d-byte footer", sg.charge, len(sg.foot))
	}

	n, peak := 0, int64(0)
	for rec, err := range r.Scan(allQuery()) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Offset != recs[n].Offset || !bytes.Equal(rec.Value, recs[n].Value) {
			t.Fatalf("record %d differs", n)
		}
		if n%256 == 0 {
			peak = max(peak, mappingRSS(t, sg))
		}
		n++
	}
	if n != len(recs) {
		t.Fatalf("scan yielded %d records, want %d", n, len(recs))
	}
	t.Logf("a full scan of %d bytes held at most %d resident", len(sg.data), peak)
	if peak > 6<<20 {
		t.Errorf("a scan in progress held %d resident bytes, want at most 6 MiB of the 24", peak)
	}
	if got := mappingRSS(t, sg); got > between {
		t.Errorf("after a full scan: %d resident bytes, want at most %d", got, between)
	}

	// A scan stopped early gives its pages back too.
	for range r.Scan(tiers.Query{From: 100, To: 8000}) {
		break
	}
	for i := 0; i < len(recs); i += 97 {
		got, err := r.Get(uint64(i))
		if err != nil || !bytes.Equal(got.Value, recs[i].Value) {
			t.Fatalf("Get(%d): %v", i, err)
		}
	}
	if !r.MayContainKey("k3") || r.MayContainKey("absent-key-1") && r.MayContainKey("absent-key-2") && r.MayContainKey("absent-key-3") {
		t.Error("the key filter copy does not answer as the file's")
	}
	if got := mappingRSS(t, sg); got > between {
		t.Errorf("after Gets and a stopped scan: %d resident bytes, want at most %d", got, between)
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	if got := mappingRSS(t, sg); got > between {
		t.Errorf("after Verify: %d resident bytes, want at most %d", got, between)
	}
}

// TestMapCacheBoundedByBytes: cached mappings leave the cache while their
// charges exceed MapCacheBytes, least recently acquired first; readers
// held meanwhile stay mapped and read correctly (dropped from the cache,
// unmapped only at Release).
func TestMapCacheBoundedByBytes(t *testing.T) {
	dir := t.TempDir()
	var segs [][]tiers.Record
	{
		w := openStore(t, dir, Options{})
		for i := range 6 {
			segs = append(segs, bigSegment(t, w, "s", uint64(i)*1000, 1000, 200))
		}
		w.Close()
	}
	probe := openStore(t, dir, Options{})
	one := acquire(t, probe, "s", 0).sg.charge
	probe.Close()
	// Room for two segments' charges, not three.
	s := openStore(t, dir, Options{MapCacheBytes: 2*one + one/2})

	held := []*Reader{acquire(t, s, "s", 0), acquire(t, s, "s", 1000), acquire(t, s, "s", 2000)}
	// Three held: the cache keeps the two most recent within its bytes;
	// the first stays mapped because it is held.
	if got := s.met.mapped.Load(); got != 3 {
		t.Fatalf("%d mappings with 3 held readers, want 3", got)
	}
	for i := 3; i < 6; i++ {
		r := acquire(t, s, "s", uint64(i)*1000)
		got, err := collect(r, allQuery())
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, "cached reader", got, segs[i])
		r.Release()
		s.mu.Lock()
		cb, n := s.mu.cacheBytes, s.mu.lru.Len()
		s.mu.Unlock()
		if cb > s.opts.MapCacheBytes || n > 2 {
			t.Fatalf("cache holds %d readers charged %d bytes, bound %d", n, cb, s.opts.MapCacheBytes)
		}
	}
	// Evicted while held, the first three still read their own records.
	for i, r := range held {
		got, err := collect(r, allQuery())
		if err != nil {
			t.Fatalf("held reader %d after eviction: %v", i, err)
		}
		sameRecords(t, "held reader", got, segs[i])
		if _, err := r.Get(uint64(i)*1000 + 999); err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	s.mu.Lock()
	n := s.mu.lru.Len()
	s.mu.Unlock()
	if got := s.met.mapped.Load(); got != int64(n) {
		t.Fatalf("%d mappings after every release, want the %d cached", got, n)
	}
}
