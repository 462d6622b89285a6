package hot

import (
	"iter"
	"slices"
	"time"
	"unsafe"

	"github.com/tierd/tierd/tiers"
)

// Chunk sizes of a segment's arena. A segment's first chunk holds the
// batch that starts it (at least minChunk), and each later one is at least
// twice the one before, up to maxChunk: very many streams with a few small
// records each cost a few hundred bytes apiece, not a fixed 4 KiB, while a
// busy segment's chunks reach 1 MiB after a dozen allocations.
const (
	minChunk = 64
	maxChunk = 1 << 20
)

// refSize is the bytes one index entry takes.
const refSize = int64(unsafe.Sizeof(ref{}))

// segmentOverhead is what a segment costs besides its chunks and index: the
// struct, its chunk list's first backing array, and the stream's entry for
// it. It is counted in the budget so that very many small segments cannot
// hide behind their small arenas.
const segmentOverhead = int64(unsafe.Sizeof(Segment{})) + 2*int64(unsafe.Sizeof([]byte(nil))) + 8

// ref locates one encoded record in a segment's arena.
type ref struct {
	chunk uint32
	off   uint32
	// n is the encoded length, with the record's JSON hint in its top bit
	// (refJSON): a record is at most a WAL frame (256 MiB), far below
	// 2 GiB, and a separate field would add four bytes to every entry of
	// the index.
	n uint32
}

// refJSON is the bit of ref.n that keeps tiers.Record.JSON.
const refJSON = 1 << 31

// len is the record's encoded length.
func (r ref) len() uint32 { return r.n &^ refJSON }

// json reports the record's JSON hint.
func (r ref) json() bool { return r.n&refJSON != 0 }

// Segment is a contiguous run of one stream's records held in memory. Records
// are stored encoded (tiers.AppendRecord) in fixed-capacity chunks that are
// never reallocated, and indexed by offset-base, so a lookup is an index, not
// a search, and the garbage collector sees a few large objects rather than
// millions of small ones.
//
// Writes happen under the owning stream's lock. Readers work on a view (see
// view), which captures the slice headers under that lock; because bytes
// already written are never modified, a view stays valid without locking.
type Segment struct {
	base    uint64
	chunks  [][]byte // each allocated at full length; headers never change
	pos     int      // write position in the last chunk
	idx     []ref
	bytes   int64 // encoded bytes
	alloc   int64 // heap bytes the segment holds: chunks, index, overhead (what the budget counts)
	minTS   int64
	maxTS   int64
	created time.Time // ingest time of the first record
	sealed  time.Time // zero while active

	persisted bool // a warm copy is committed
}

// newSegment starts an empty segment; its alloc is the fixed overhead,
// which the caller adds to the budget.
func newSegment(base uint64, now time.Time) *Segment {
	return &Segment{base: base, created: now, alloc: segmentOverhead}
}

// add encodes r (whose offset is base+len(idx)) into the arena and returns
// the heap bytes newly allocated for it (chunk and index growth). hint is
// the encoded size of r and the records appended with it in the same
// batch, so that a new chunk can take the whole batch at once; room is
// how many more bytes the segment takes before it seals, so that its last
// chunk is not much larger than what it will hold.
func (s *Segment) add(r *tiers.Record, hint, room int) int64 {
	n := tiers.EncodedLen(r)
	var grew int64
	if len(s.chunks) == 0 || len(s.chunks[len(s.chunks)-1])-s.pos < n {
		prev := 0
		if k := len(s.chunks); k > 0 {
			prev = len(s.chunks[k-1])
		}
		// slices.Grow rounds up to the allocator's size class: the budget
		// counts what the heap really gives, and the slack is usable.
		c := slices.Grow([]byte(nil), nextChunk(prev, n, hint, room))
		s.chunks = append(s.chunks, c[:cap(c)])
		s.pos = 0
		grew = int64(cap(c))
	}
	c := len(s.chunks) - 1
	// Appending to a zero-length slice with room encodes in place.
	tiers.AppendRecord(s.chunks[c][s.pos:s.pos:s.pos+n], r)
	oldCap := cap(s.idx)
	e := ref{chunk: uint32(c), off: uint32(s.pos), n: uint32(n)}
	if r.JSON {
		e.n |= refJSON
	}
	s.idx = append(s.idx, e)
	// The old index array is garbage once replaced (views that captured it
	// keep it alive only while they are read).
	grew += int64(cap(s.idx)-oldCap) * refSize
	s.alloc += grew
	s.pos += n
	s.bytes += int64(n)
	if len(s.idx) == 1 || r.TS < s.minTS {
		s.minTS = r.TS
	}
	if len(s.idx) == 1 || r.TS > s.maxTS {
		s.maxTS = r.TS
	}
	return grew
}

// nextChunk is the size of a new chunk after one of prev bytes (0 for the
// first), for a record of n bytes starting a batch remainder of hint bytes
// in a segment that seals after room more bytes.
func nextChunk(prev, n, hint, room int) int {
	size := max(min(hint, maxChunk), minChunk)
	if prev > 0 {
		size = max(size, min(prev*2, maxChunk))
	}
	size = min(size, max(room, min(hint, maxChunk), minChunk))
	return max(size, n)
}

// growthBound is at least what adding recs (sizes: their encoded lengths,
// total: their sum) to s allocates, s being nil for a new segment: it
// plays add's chunk choices and bounds the allocator's rounding and the
// index's growth from above, so that a budget check against it cannot be
// overrun by the add.
func growthBound(s *Segment, sizes []int, total, room int) int64 {
	var grew int64
	prev, free, idxLen, idxCap := 0, 0, 0, 0
	if s == nil {
		grew = segmentOverhead
	} else {
		if k := len(s.chunks); k > 0 {
			prev = len(s.chunks[k-1])
			free = prev - s.pos
		}
		idxLen, idxCap = len(s.idx), cap(s.idx)
		room -= int(s.bytes)
	}
	left := total
	for _, n := range sizes {
		if free < n {
			// The chunk's real size is between size and its bound: the
			// next chunk doubles at most the bound, and at least size is
			// free in it.
			size := nextChunk(prev, n, left, room)
			grew += int64(classBound(size))
			prev, free = classBound(size), size
		}
		free -= n
		left -= n
		room -= n
	}
	if need := idxLen + len(sizes); need > idxCap {
		// Appends one at a time end with at most twice what they need.
		grew += int64(classBound(2*need*int(refSize)) - idxCap*int(refSize))
	}
	return grew
}

// classBound bounds from above the bytes the allocator hands out for a
// request of n: small size classes waste at most an eighth, large objects
// are rounded up to whole 8 KiB pages.
func classBound(n int) int {
	if n <= 32<<10 {
		return n + n/8 + 16
	}
	return n + 8<<10
}

// truncate keeps the segment's first k records (0 < k <= len(idx)) and
// returns the heap bytes it frees: the chunks it drops, and the index's
// capacity beyond a fresh copy of its first k entries. The dropped records
// were never visible (the WAL refused them), so no view holds them, and
// the arena space they used is written again by the next add: a view never
// reads past its own records, and the chunk list grows into a fresh
// backing array where a view's capacity ends.
func (s *Segment) truncate(k int) (freed int64) {
	widest := false // a dropped record may have set the time range
	for _, r := range s.idx[k:] {
		s.bytes -= int64(r.len())
		rec, _, err := tiers.DecodeRecord(s.chunks[r.chunk][r.off : r.off+r.len()])
		if err != nil || rec.TS <= s.minTS || rec.TS >= s.maxTS {
			widest = true
		}
	}
	last := s.idx[k-1]
	freed = int64(cap(s.idx)) * refSize
	s.idx = slices.Clone(s.idx[:k]) // the refused batch may have grown it
	freed -= int64(cap(s.idx)) * refSize
	s.pos = int(last.off + last.len())
	if keep := int(last.chunk) + 1; keep < len(s.chunks) {
		for _, c := range s.chunks[keep:] {
			freed += int64(len(c))
		}
		clear(s.chunks[keep:])
		s.chunks = s.chunks[:keep:keep]
	}
	s.alloc -= freed
	if widest {
		s.minTS, s.maxTS = s.tsRange()
	}
	return freed
}

// tsRange computes the time range of the segment's records.
func (s *Segment) tsRange() (lo, hi int64) {
	for i, r := range s.idx {
		rec, _, err := tiers.DecodeRecord(s.chunks[r.chunk][r.off : r.off+r.len()])
		if err != nil {
			continue
		}
		if i == 0 || rec.TS < lo {
			lo = rec.TS
		}
		if i == 0 || rec.TS > hi {
			hi = rec.TS
		}
	}
	return lo, hi
}

// view is an immutable snapshot of a segment's first n records.
type view struct {
	seg    *Segment
	base   uint64
	chunks [][]byte
	idx    []ref
	minTS  int64
	maxTS  int64
	state  SegmentState // what Snapshot.Segments reports; filled by Snapshot
}

// viewLocked snapshots the segment's records below offset end. The stream
// lock must be held.
func (s *Segment) viewLocked(end uint64) view {
	n := len(s.idx)
	if end < s.base+uint64(n) {
		n = int(end - s.base)
	}
	return view{seg: s, base: s.base, chunks: s.chunks, idx: s.idx[:n:n], minTS: s.minTS, maxTS: s.maxTS}
}

func (v *view) last() uint64 { return v.base + uint64(len(v.idx)) - 1 }

func (v *view) encoded(i int) []byte {
	r := v.idx[i]
	end := r.off + r.len()
	return v.chunks[r.chunk][r.off:end:end]
}

// get decodes the record at offset, which must be in the view, with its
// JSON hint. Its Value aliases the arena, which is immutable.
func (v *view) get(offset uint64) (tiers.Record, error) {
	i := int(offset - v.base)
	rec, _, err := tiers.DecodeRecord(v.encoded(i))
	rec.JSON = err == nil && v.idx[i].json()
	return rec, err
}

// scan yields the view's records matching q, in offset order.
func (v *view) scan(q *tiers.Query) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		if len(v.idx) == 0 || !q.OverlapsOffsets(v.base, v.last()) || !q.OverlapsTime(v.minTS, v.maxTS) {
			return
		}
		from := max(q.From, v.base)
		to := min(q.To, v.last())
		for off := from; off <= to; off++ {
			rec, err := v.get(off)
			if err != nil {
				yield(tiers.Record{}, err)
				return
			}
			if q.Match(&rec) && !yield(rec, nil) {
				return
			}
		}
	}
}

// SealedSegment is what the flusher hands to a Persister: a sealed segment's
// identity, its records and its ingest times.
type SealedSegment struct {
	Stream   string
	Base     uint64
	Last     uint64
	SealedAt time.Time
	v        view
}

// Records yields the segment's records in offset order, decoded.
func (s *SealedSegment) Records() iter.Seq2[tiers.Record, error] {
	q := tiers.AllRecords()
	return s.v.scan(&q)
}

// Len returns the number of records.
func (s *SealedSegment) Len() int { return len(s.v.idx) }
