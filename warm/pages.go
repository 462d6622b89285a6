package warm

import "github.com/tierd/tierd/internal/vfs"

// Resident pages of mapped segments.
//
// A page of a mapped file counts in the process's resident memory (RssFile)
// from the moment a read touches it until it is unmapped, however long the
// mapping lives; and on a filesystem with large folios (ext4 on Linux 6.x)
// one touched byte maps the whole folio around it, up to a megabyte. A
// store that kept every page its cached readers ever touched grew by the
// size of every segment read (802 MiB in two minutes under a 16 MiB hot
// budget). So:
//   - Acquire copies a segment's footer (block table and key filter, what
//     every read consults) to the heap once it has checked it, and gives
//     back every page parsing touched;
//   - reads give back the pages of the frames they touched when they are
//     done with them, and long ones every dropEvery bytes (madvise
//     MADV_DONTNEED: the page cache keeps the bytes, the process's page
//     tables drop them, and a later read faults them back in from the
//     cache, without I/O).
// Between reads a cached mapping then holds no resident page: what it
// costs is its footer copy on the heap, which the cache charges against
// Options.MapCacheBytes.

// dropEvery is how many bytes of frames a long read (Scan, Verify) touches
// before it gives them back: with the folios around them, about the
// resident cost of a read in progress.
const dropEvery = 256 << 10

// readerOverhead is what a cached reader costs the heap besides its footer
// copy: the segment struct, its path and metadata.
const readerOverhead = 512

// folioSpan bounds the page cache's large folios (a PMD, 2 MiB on x86-64
// and arm64 with 4 KiB pages). A fault maps the whole folio around the
// page touched, before and after it, and folios are aligned to their size:
// so a read that touched [lo, hi) may have mapped pages anywhere in
// [lo, hi) widened to folioSpan boundaries, and that is what is given back.
const folioSpan = 2 << 20

func alignDown(n, a int) int { return n &^ (a - 1) }
func alignUp(n, a int) int   { return (n + a - 1) &^ (a - 1) }

// residentCharge is what a cached reader keeps in memory between reads.
// A heap copy of a file (one of a filesystem that cannot be mapped) is
// resident whole, and charged so.
func (sg *segment) residentCharge() int64 {
	c := int64(len(sg.foot)+len(sg.path)) + readerOverhead
	if !sg.mapped {
		c += int64(len(sg.data))
	}
	return c
}

// dropPages gives back the mapped pages a read of [lo, hi) may have
// mapped: those of the folios overlapping it. It holds the store's lock so
// that the mapping cannot be unmapped (and its addresses reused)
// meanwhile, and does nothing once it has been. Errors are ignored: the
// advice only saves memory.
func (s *Store) dropPages(sg *segment, lo, hi int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sg.data == nil {
		return
	}
	start, end := alignDown(max(lo, 0), folioSpan), min(alignUp(hi, folioSpan), len(sg.data))
	if end <= start {
		return
	}
	vfs.Mapping{Data: sg.data, Mapped: sg.mapped}.DontNeed(start, end)
}

// touched is the byte range a read has touched and not given back yet.
type touched struct {
	s      *Store
	sg     *segment
	lo, hi int
}

// add records that [lo, hi) was read, and gives the pages back once the
// range passes dropEvery bytes.
func (t *touched) add(lo, hi int) {
	if t.hi == 0 {
		t.lo = lo
	}
	t.lo, t.hi = min(t.lo, lo), max(t.hi, hi)
	if t.hi-t.lo >= dropEvery {
		t.flush()
	}
}

// flush gives back what was touched.
func (t *touched) flush() {
	if t.hi > t.lo {
		t.s.dropPages(t.sg, t.lo, t.hi)
	}
	t.lo, t.hi = 0, 0
}
