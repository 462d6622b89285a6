package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"path/filepath"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/hot"
	"github.com/tierd/tierd/tiers"
)

// catalogPath names the catalog file in errors.
func (e *Engine) catalogPath() string { return filepath.Join(e.opts.DataDir, "catalog.db") }

// Item is a record as a read returns it, with the tier that served it.
type Item struct {
	tiers.Record
	Tier tiers.Placement
}

// Read returns the records of stream matching q in offset order, each with
// the tier that served it: memory for the resident suffix of the stream, and
// below it each segment's best durable placement (warm, then cold). An
// unknown stream yields tiers.ErrStreamNotFound as the first and only
// element. Retention is the engine's to apply (fitRetention): a read that
// names offsets, or with q.FromRetained a time range, lying below the first
// retained offset yields an error wrapping tiers.ErrExpired that names the
// expired range and the first retained offset, before any record.
func (e *Engine) Read(ctx context.Context, stream string, q tiers.Query) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		sn := e.hot.Snapshot(stream)
		if !sn.Known {
			yield(Item{}, tiers.ErrStreamNotFound)
			return
		}
		if q.From < sn.First() {
			// Only a read below memory can reach what retention deleted:
			// the first retained offset is at most the first in memory.
			if err := e.fitRetention(ctx, stream, &sn, &q); err != nil {
				yield(Item{}, err)
				return
			}
		}
		n := 0
		emit := func(r tiers.Record, tier tiers.Placement) bool {
			if !yield(Item{Record: r, Tier: tier}, nil) {
				return false
			}
			n++
			return q.Limit <= 0 || n < q.Limit
		}
		// Below the first resident offset the records are in the warm store
		// or the cold tier. Every offset there is accounted for: held by a
		// live segment (served), by a tombstoned one or below the stream's
		// retention watermark (deleted by retention: ErrExpired), or else
		// missing, which is damage (a corruption error), never silence.
		if hotFirst := sn.First(); q.From < hotFirst && hotFirst > 0 {
			wq := q
			wq.To = min(q.To, hotFirst-1)
			segs, retained, err := e.catalog.Locate(ctx, stream, wq.From, wq.To)
			if err != nil && !errors.Is(err, tiers.ErrStreamNotFound) {
				yield(Item{}, err)
				return
			}
			for _, sp := range catalog.Spans(segs, wq.From, wq.To, retained) {
				switch {
				case sp.Expired:
					yield(Item{}, expired(stream, sp.From, sp.To))
					return
				case sp.Seg == nil:
					yield(Item{}, e.missing(stream, sp.From, sp.To, retained))
					return
				case !wq.OverlapsTime(sp.Seg.MinTS, sp.Seg.MaxTS):
					continue
				}
				if err := ctx.Err(); err != nil {
					yield(Item{}, err)
					return
				}
				if !e.readSegment(ctx, *sp.Seg, wq, emit, yield) {
					return
				}
			}
		}
		for r, err := range sn.Scan(q) {
			if err != nil {
				yield(Item{}, err)
				return
			}
			if !emit(r, tiers.Hot) {
				return
			}
		}
	}
}

// expired is the error for offsets [from, to) of stream that retention
// deleted.
func expired(stream string, from, to uint64) error {
	return fmt.Errorf("%w: offsets [%d, %d) of stream %s are no longer retained", tiers.ErrExpired, from, to, stream)
}

// missing is the error for offsets [from, to) of stream, at or above its
// retention watermark, that no segment holds: retention does not explain
// them (a *tiers.CorruptionError wrapping catalog.ErrRetainedGap: the
// catalog lost the segment, or it was deleted behind tierd's back).
func (e *Engine) missing(stream string, from, to, retained uint64) error {
	return &tiers.CorruptionError{Path: e.catalogPath(), Offset: -1, Err: fmt.Errorf(
		"%w: offsets [%d, %d) of stream %s are at or above its retention watermark %d, but no segment holds them; run tierctl verify",
		catalog.ErrRetainedGap, from, to, stream, retained)}
}

// Retention says which of a stream's offsets can be read.
type Retention struct {
	// First is the lowest retained offset: the stream's retention
	// watermark, or the first offset in memory if lower. Offsets below it
	// were deleted by retention.
	First uint64
	// FirstTS is the ts of the record at First (its segment's smallest ts),
	// when HasFirstTS.
	FirstTS    int64
	HasFirstTS bool
	// Next is the offset the next record will get.
	Next uint64
}

// Retention reports the retained range of stream: First is the lower of
// the first offset in memory and the catalog's retention watermark. An
// unknown stream is tiers.ErrStreamNotFound.
func (e *Engine) Retention(ctx context.Context, stream string) (Retention, error) {
	sn := e.hot.Snapshot(stream)
	if !sn.Known {
		return Retention{}, tiers.ErrStreamNotFound
	}
	return e.retention(ctx, stream, &sn)
}

// fitRetention fits a read to the stream's retained range, the one rule of
// what retention deleted that every reader (the API included) gets: a read
// that names offsets (From without q.FromRetained, or To) lying below the
// first retained offset, or with q.FromRetained a time range (Until, when
// bounded) ending at or before the first retained record, fails with
// tiers.ErrExpired naming the expired range and the first retained
// offset; with q.FromRetained a read starts at the first retained offset.
func (e *Engine) fitRetention(ctx context.Context, stream string, sn *hot.Snapshot, q *tiers.Query) error {
	ret, err := e.retention(ctx, stream, sn)
	if err != nil {
		return err
	}
	return ret.fit(stream, q)
}

// fit is fitRetention's rule against r, the retained range of stream.
func (r Retention) fit(stream string, q *tiers.Query) error {
	if r.First == 0 {
		return nil
	}
	gone := func(from, to uint64) error {
		return fmt.Errorf("%w: offsets [%d, %d) of stream %s were deleted by retention; the first retained offset is %d",
			tiers.ErrExpired, from, to, stream, r.First)
	}
	switch {
	case !q.FromRetained && q.From < r.First:
		return gone(q.From, min(q.To, r.First-1)+1)
	case q.To < r.First:
		return gone(q.From, q.To+1)
	case q.FromRetained && q.Until != math.MaxInt64 && r.HasFirstTS && q.Until <= r.FirstTS:
		return fmt.Errorf("%w: records of stream %s before %s were deleted by retention; the first retained record is offset %d at %s",
			tiers.ErrExpired, stream, formatTS(q.Until), r.First, formatTS(r.FirstTS))
	}
	q.From = max(q.From, r.First)
	return nil
}

// formatTS renders Unix ns as the API does: RFC 3339 in UTC with as many
// fractional digits as needed.
func formatTS(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// retention is Retention against a snapshot taken already.
func (e *Engine) retention(ctx context.Context, stream string, sn *hot.Snapshot) (Retention, error) {
	r := Retention{First: sn.First(), Next: sn.Next}
	from, _, m, ok, err := e.catalog.Retained(ctx, stream)
	if err != nil && !errors.Is(err, tiers.ErrStreamNotFound) {
		return Retention{}, err
	}
	if err == nil && from < r.First {
		r.First = from
		if ok {
			r.FirstTS, r.HasFirstTS = m.MinTS, true
		}
	}
	if !r.HasFirstTS {
		for _, s := range sn.Segments() {
			if s.Base == r.First && s.Count > 0 {
				r.FirstTS, r.HasFirstTS = s.MinTS, true
			}
		}
	}
	return r, nil
}

// readSegment emits a durable segment's records matching q from its best
// placement, warm before cold; it returns false when the read must stop (the
// consumer is done, the limit is reached, or an error was yielded). A
// segment moved out of warm between the catalog lookup and the open is
// looked up again and read from where it went.
func (e *Engine) readSegment(ctx context.Context, seg tiers.SegmentMeta, q tiers.Query, emit func(tiers.Record, tiers.Placement) bool, yield func(Item, error) bool) bool {
	// A copy serves only the segment's own offsets, each once, in order:
	// whatever it holds beyond what the catalog says is damage.
	q.From, q.To = max(q.From, seg.Base), min(q.To, seg.Last)
	next, outer := q.From, emit
	emitOwn := func(r tiers.Record, tier tiers.Placement) bool {
		if r.Offset < next || r.Offset > q.To {
			path := e.warm.Path(seg.Stream, seg.Base)
			if tier == tiers.Cold {
				path = cold.ObjectKey(seg)
			}
			yield(Item{}, &tiers.CorruptionError{Path: path, Offset: -1, Err: fmt.Errorf(
				"%s copy of segment %s/%d [%d, %d] served offset %d after %d", tier, seg.Stream, seg.Base, seg.Base, seg.Last, r.Offset, next)})
			return false
		}
		next = r.Offset + 1
		return outer(r, tier)
	}
	emit = emitOwn
	if seg.Placements.Has(tiers.Warm) {
		r, err := e.warm.Acquire(seg.Stream, seg.Base)
		if err == nil {
			defer r.Release()
			if got := r.Meta(); got.Last != seg.Last || got.Digest != seg.Digest {
				yield(Item{}, &tiers.CorruptionError{Path: e.warm.Path(seg.Stream, seg.Base), Offset: -1, Err: fmt.Errorf(
					"warm file holds [%d, %d] %s, the catalog says [%d, %d] %s", got.Base, got.Last, got.Digest, seg.Base, seg.Last, seg.Digest)})
				return false
			}
			return e.emitAll(r.Scan(q), tiers.Warm, emit, yield)
		}
		if !errors.Is(err, tiers.ErrSegmentNotFound) {
			yield(Item{}, err)
			return false
		}
		if seg, err = e.catalog.Segment(ctx, seg.Stream, seg.Base); err != nil {
			yield(Item{}, err)
			return false
		}
		if seg.Placements.Has(tiers.Warm) {
			yield(Item{}, fmt.Errorf("engine: segment %s/%d is placed warm but its file is missing: %w", seg.Stream, seg.Base, tiers.ErrSegmentNotFound))
			return false
		}
	}
	if seg.Placements.Has(tiers.Cold) && e.cold != nil {
		return e.emitAll(e.cold.Scan(ctx, seg, q), tiers.Cold, emit, yield)
	}
	yield(Item{}, fmt.Errorf("engine: segment %s/%d has no readable placement (%s)", seg.Stream, seg.Base, seg.Placements))
	return false
}

func (e *Engine) emitAll(recs iter.Seq2[tiers.Record, error], tier tiers.Placement, emit func(tiers.Record, tiers.Placement) bool, yield func(Item, error) bool) bool {
	for rec, err := range recs {
		if err != nil {
			yield(Item{}, err)
			return false
		}
		if !emit(rec, tier) {
			return false
		}
	}
	return true
}

// TierUsage counts what one tier holds (of a stream, or of all of them).
type TierUsage struct {
	Segments int
	Bytes    int64 // for cold, the objects' size
	// OldestTS and NewestTS bound the records' ts (Unix ns), when
	// Segments > 0.
	OldestTS, NewestTS int64
	// OldestSealedAt is when the oldest sealed segment sealed, what the
	// policies' ages count from; zero when only the active segment is
	// here.
	OldestSealedAt time.Time
}

// add counts segment s, held in tier p.
func (u *TierUsage) add(s *SegmentInfo, p tiers.Placement) {
	bytes := s.Bytes
	if p == tiers.Cold && s.ColdBytes > 0 {
		bytes = s.ColdBytes // the object, not the warm file it came from
	}
	sealed := s.SealedAt
	if s.Active {
		sealed = time.Time{}
	}
	u.merge(TierUsage{Segments: 1, Bytes: bytes, OldestTS: s.MinTS, NewestTS: s.MaxTS, OldestSealedAt: sealed})
}

// merge adds o's counts to u.
func (u *TierUsage) merge(o TierUsage) {
	if o.Segments == 0 {
		return
	}
	if u.Segments == 0 || o.OldestTS < u.OldestTS {
		u.OldestTS = o.OldestTS
	}
	if u.Segments == 0 || o.NewestTS > u.NewestTS {
		u.NewestTS = o.NewestTS
	}
	if !o.OldestSealedAt.IsZero() && (u.OldestSealedAt.IsZero() || o.OldestSealedAt.Before(u.OldestSealedAt)) {
		u.OldestSealedAt = o.OldestSealedAt
	}
	u.Segments += o.Segments
	u.Bytes += o.Bytes
}

// StreamInfo summarises one stream.
type StreamInfo struct {
	Name       string
	NextOffset uint64 // the offset the next record will get
	Records    uint64 // records retained in any tier
	Tiers      map[tiers.Placement]TierUsage
}

// Streams lists every stream, ordered by name.
func (e *Engine) Streams(ctx context.Context) ([]StreamInfo, error) {
	var out []StreamInfo
	for _, name := range e.hot.StreamNames() {
		segs, err := e.Segments(ctx, name)
		if err != nil {
			return nil, err
		}
		info := StreamInfo{Name: name, Tiers: map[tiers.Placement]TierUsage{}}
		for i := range segs {
			s := &segs[i]
			info.Records += s.Count
			info.NextOffset = s.Last + 1
			for _, p := range s.Placements.List() {
				u := info.Tiers[p]
				u.add(s, p)
				info.Tiers[p] = u
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// SegmentInfo is a segment as the segments listing shows it. The active
// segment has Active set, a zero SealedAt and the hot placement only.
type SegmentInfo struct {
	tiers.SegmentMeta
	Active bool
}

// Segments lists a stream's segments in offset order, the active one last:
// the catalog's durable segments, marked hot when also resident, then the
// sealed segments not yet persisted and the active one.
func (e *Engine) Segments(ctx context.Context, stream string) ([]SegmentInfo, error) {
	sn := e.hot.Snapshot(stream)
	if !sn.Known {
		return nil, tiers.ErrStreamNotFound
	}
	metas, err := e.catalog.Segments(ctx, stream)
	if err != nil && !errors.Is(err, tiers.ErrStreamNotFound) {
		return nil, err
	}
	out := make([]SegmentInfo, 0, len(metas)+2)
	var next uint64
	for _, m := range metas {
		out = append(out, describe(&sn, m))
		next = m.Last + 1
	}
	for _, s := range sn.Segments() {
		if s.Base < next {
			continue
		}
		out = append(out, memoryOnly(stream, s))
	}
	return out, nil
}

// Describe is a durable segment (a catalog entry, as a move returns it) as
// the segments listing shows it now: with the hot placement when it is
// also resident in memory. Answers about one segment (offload) go through
// it so that they say what the listing right after says.
func (e *Engine) Describe(m tiers.SegmentMeta) SegmentInfo {
	sn := e.hot.Snapshot(m.Stream)
	return describe(&sn, m)
}

// describe is Describe against a snapshot taken already.
func describe(sn *hot.Snapshot, m tiers.SegmentMeta) SegmentInfo {
	if sn.Resident(m.Base) {
		m.Placements = m.Placements.With(tiers.Hot)
	}
	return SegmentInfo{SegmentMeta: m}
}

// memoryOnly is a segment held only in memory (sealed and not yet
// persisted, or the active one) as the listing shows it.
func memoryOnly(stream string, s hot.SegmentState) SegmentInfo {
	return SegmentInfo{
		SegmentMeta: tiers.SegmentMeta{
			Stream: stream, Base: s.Base, Last: s.Last, Count: s.Count, Bytes: s.Bytes,
			MinTS: s.MinTS, MaxTS: s.MaxTS, SealedAt: s.SealedAt, Placements: tiers.Of(tiers.Hot),
		},
		Active: s.Active,
	}
}
