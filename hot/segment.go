package hot

import (
	"iter"
	"time"

	"github.com/tierd/tierd/tiers"
)

// Chunk sizes of a segment's arena. A segment starts small so that very many
// streams with little traffic cost little memory, and grows by doubling.
const (
	minChunk = 4 << 10
	maxChunk = 1 << 20
)

// ref locates one encoded record in a segment's arena.
type ref struct {
	chunk uint32
	off   uint32
	n     uint32
}

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
	stream  string
	base    uint64
	chunks  [][]byte // each allocated at full length; headers never change
	pos     int      // write position in the last chunk
	idx     []ref
	bytes   int64 // encoded bytes
	alloc   int64 // bytes of chunk capacity allocated (what the budget counts)
	minTS   int64
	maxTS   int64
	created time.Time // ingest time of the first record
	sealed  time.Time // zero while active

	persisted bool // a warm copy is committed
}

func newSegment(stream string, base uint64, now time.Time) *Segment {
	return &Segment{stream: stream, base: base, created: now}
}

// add encodes r (whose offset is base+len(idx)) into the arena and returns
// the chunk bytes newly allocated for it.
func (s *Segment) add(r *tiers.Record) int64 {
	n := tiers.EncodedLen(r)
	var grew int64
	if len(s.chunks) == 0 || len(s.chunks[len(s.chunks)-1])-s.pos < n {
		size := minChunk
		if k := len(s.chunks); k > 0 {
			size = min(len(s.chunks[k-1])*2, maxChunk)
		}
		size = max(size, n)
		s.chunks = append(s.chunks, make([]byte, size))
		s.pos = 0
		grew = int64(size)
		s.alloc += grew
	}
	c := len(s.chunks) - 1
	// Appending to a zero-length slice with room encodes in place.
	tiers.AppendRecord(s.chunks[c][s.pos:s.pos:s.pos+n], r)
	s.idx = append(s.idx, ref{chunk: uint32(c), off: uint32(s.pos), n: uint32(n)})
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

// truncate keeps the segment's first k records (0 < k <= len(idx)) and
// returns the chunk bytes it frees. The dropped records were never visible
// (the WAL refused them), so no view holds them, and the arena space they
// used is written again by the next add: a view never reads past its own
// records, and the index and chunk list grow into fresh backing arrays
// where a view's capacity ends.
func (s *Segment) truncate(k int) (freed int64) {
	widest := false // a dropped record may have set the time range
	for _, r := range s.idx[k:] {
		s.bytes -= int64(r.n)
		rec, _, err := tiers.DecodeRecord(s.chunks[r.chunk][r.off : r.off+r.n])
		if err != nil || rec.TS <= s.minTS || rec.TS >= s.maxTS {
			widest = true
		}
	}
	last := s.idx[k-1]
	s.idx = s.idx[:k:k]
	s.pos = int(last.off + last.n)
	if keep := int(last.chunk) + 1; keep < len(s.chunks) {
		for _, c := range s.chunks[keep:] {
			freed += int64(len(c))
		}
		clear(s.chunks[keep:])
		s.chunks = s.chunks[:keep:keep]
		s.alloc -= freed
	}
	if widest {
		s.minTS, s.maxTS = s.tsRange()
	}
	return freed
}

// tsRange computes the time range of the segment's records.
func (s *Segment) tsRange() (lo, hi int64) {
	for i, r := range s.idx {
		rec, _, err := tiers.DecodeRecord(s.chunks[r.chunk][r.off : r.off+r.n])
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
	return v.chunks[r.chunk][r.off : r.off+r.n : r.off+r.n]
}

// get decodes the record at offset, which must be in the view. Its Value
// aliases the arena, which is immutable.
func (v *view) get(offset uint64) (tiers.Record, error) {
	rec, _, err := tiers.DecodeRecord(v.encoded(int(offset - v.base)))
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
