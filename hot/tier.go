// Package hot is tierd's memory tier and write path: it assigns offsets,
// group-commits batches to the WAL (hot/wal), keeps each stream's active
// segment and recently sealed segments in memory within a global byte
// budget, and runs the flusher that persists sealed segments through a
// Persister (the warm tier, wired by the engine).
package hot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

// Persister makes a sealed segment durable outside the WAL. Persist must be
// idempotent: after a crash the same segment may be persisted again.
type Persister interface {
	Persist(ctx context.Context, seg *SealedSegment) error
}

// TickFor is the flusher's default tick for the smallest segment or
// residency age it must honour: a tenth of it, within [20 ms, 1 s], so that
// short ages are honoured promptly and long ones cost no busy loop.
func TickFor(minAge time.Duration) time.Duration {
	return min(max(minAge/10, 20*time.Millisecond), time.Second)
}

// Options configures a Tier. Zero fields take defaults.
type Options struct {
	MaxBytes        int64         // memory budget across all streams (default 1 GiB)
	SegmentMaxBytes int64         // seal the active segment at this many bytes (default 64 MiB)
	SegmentMaxAge   time.Duration // or at this age (default 10m)
	Residency       time.Duration // keep persisted segments in memory this long (default 10m)
	FlushWorkers    int           // streams persisted in parallel (default 2)
	// PolicyFor gives a stream's own segment and residency settings (its
	// policy). Nil means the three fields above for every stream. It is
	// asked once per stream, when the tier first sees it.
	PolicyFor func(stream string) StreamPolicy
	// Tick is how often the flusher looks for segments to seal by age and
	// to evict; default TickFor the smallest age above. Set it to TickFor
	// the smallest policy age.
	Tick time.Duration
	WAL  wal.Options
	// Streams gives, for every stream the catalog knows, the first offset not
	// yet persisted; WAL replay skips records below it.
	Streams   map[string]uint64
	Persister Persister
	Logger    *slog.Logger
	Now       func() time.Time
}

func (o *Options) setDefaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = tiers.DefaultHotMaxBytes
	}
	if o.SegmentMaxBytes <= 0 {
		o.SegmentMaxBytes = tiers.DefaultSegmentMaxBytes
	}
	if o.SegmentMaxAge <= 0 {
		o.SegmentMaxAge = tiers.DefaultSegmentMaxAge
	}
	if o.Residency <= 0 {
		o.Residency = tiers.DefaultHotMaxAge
	}
	if o.FlushWorkers <= 0 {
		o.FlushWorkers = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	def := StreamPolicy{SegmentMaxBytes: o.SegmentMaxBytes, SegmentMaxAge: o.SegmentMaxAge, Residency: o.Residency}
	if o.PolicyFor == nil {
		o.PolicyFor = func(string) StreamPolicy { return def }
	}
	if o.Tick <= 0 {
		o.Tick = TickFor(min(o.SegmentMaxAge, o.Residency))
	}
}

// StreamPolicy is what the hot tier needs of a stream's policy. Zero fields
// take the Options' values.
type StreamPolicy struct {
	SegmentMaxBytes int64
	SegmentMaxAge   time.Duration
	Residency       time.Duration
}

// ErrOffsetGap reports WAL contents that skip offsets of a stream: records
// that should be in the log are not, so start-up stops rather than serve a
// stream with a hole.
var ErrOffsetGap = errors.New("hot: offset gap in WAL replay")

// Tier is the hot tier and write path of one node.
type Tier struct {
	opts Options
	wal  *wal.WAL

	mu struct {
		sync.RWMutex
		streams map[string]*stream
	}

	bytes       atomic.Int64 // heap bytes of resident segments (Segment.alloc), all streams
	unpersisted atomic.Int64 // the same, of segments not yet persisted, plus reservations
	// pressure is set when an append is refused for lack of budget: the
	// flusher then seals active segments if nothing sealed can free room.
	pressure atomic.Bool

	persistFail persistState // a failing persist, for status and backpressure

	// daySeals count the segments sealed because the next record was on a
	// later ([0]) or an earlier ([1]) UTC day: what out-of-order producers
	// cost in segments (Stats.DaySeals).
	daySeals [2]atomic.Uint64

	flushing sync.Mutex    // one flush pass at a time
	kick     chan struct{} // wakes the flusher
	stop     chan struct{}
	done     sync.WaitGroup
	closed   atomic.Bool

	waits waitHub // long-polling readers (notify.go)
}

// stream is one stream's in-memory state.
type stream struct {
	name string
	pol  StreamPolicy
	mu   struct {
		sync.RWMutex
		next      uint64     // offset the next record gets
		persisted uint64     // first offset not persisted warm
		segs      []*Segment // resident segments by base; the last may be active
		active    *Segment   // nil when no records since the last seal
		// producers holds each idempotent producer's last batch.
		producers map[tiers.ProducerID]*producerEntry
	}
	visible atomic.Uint64 // records below this offset are durable and readable
	// waiting are the stream's long-polling readers (notify.go); nil if none.
	waiting atomic.Pointer[waiters]
}

// Open opens the WAL, replays it into memory and starts the flusher.
func Open(ctx context.Context, opts Options) (*Tier, error) {
	opts.setDefaults()
	t := &Tier{opts: opts, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	t.mu.streams = make(map[string]*stream)
	for name, next := range opts.Streams {
		s := t.streamLocked(name)
		s.mu.next, s.mu.persisted = next, next
		s.visible.Store(next)
	}
	if opts.WAL.Now == nil {
		opts.WAL.Now = opts.Now // producers expire by the tier's clock
	}
	opts.WAL.Unwritten = t.takeBack
	w, err := wal.Open(ctx, opts.WAL, t.replay)
	if err != nil {
		return nil, err
	}
	t.wal = w
	t.seedProducers(w.Producers())
	for _, s := range t.mu.streams {
		s.visible.Store(s.mu.next)
		if s.mu.active != nil && s.mu.active.bytes >= s.pol.SegmentMaxBytes {
			t.sealLocked(s)
		}
	}
	t.done.Add(1)
	go t.run()
	t.kickFlusher()
	return t, nil
}

// replay puts one WAL batch back in memory; it runs inside wal.Open, before
// any append, so it takes no locks.
func (t *Tier) replay(b wal.Batch) error {
	s := t.streamLocked(b.Stream)
	now := t.opts.Now()
	for i := range b.Records {
		r := &b.Records[i]
		if r.Offset < s.mu.next {
			continue // persisted warm already, or a duplicate frame
		}
		if r.Offset > s.mu.next {
			return fmt.Errorf("%w: stream %s expects offset %d, WAL has %d", ErrOffsetGap, b.Stream, s.mu.next, r.Offset)
		}
		grew := t.addLocked(s, r, now, 0)
		t.unpersisted.Add(grew)
		s.mu.next++
		if s.mu.active.bytes >= s.pol.SegmentMaxBytes {
			t.sealLocked(s)
		}
	}
	return nil
}

// streamLocked returns the named stream, creating it. t.mu must be held for
// writing (or the Tier not yet shared).
func (t *Tier) streamLocked(name string) *stream {
	s := t.mu.streams[name]
	if s == nil {
		s = &stream{name: name, pol: t.opts.PolicyFor(name)}
		if s.pol.SegmentMaxBytes <= 0 {
			s.pol.SegmentMaxBytes = t.opts.SegmentMaxBytes
		}
		if s.pol.SegmentMaxAge <= 0 {
			s.pol.SegmentMaxAge = t.opts.SegmentMaxAge
		}
		if s.pol.Residency <= 0 {
			s.pol.Residency = t.opts.Residency
		}
		t.mu.streams[name] = s
		t.adoptWaitersLocked(s)
	}
	return s
}

func (t *Tier) getStream(name string) *stream {
	t.mu.RLock()
	s := t.mu.streams[name]
	t.mu.RUnlock()
	return s
}

// Append assigns offsets to recs (overwriting their Offset fields) and appends
// them to stream as one batch, returning once the batch is durable per the
// WAL sync mode. The caller has validated the records. A batch is atomic: it
// is one WAL frame, so after a crash it is present whole or not at all.
func (t *Tier) Append(ctx context.Context, name string, recs []tiers.Record) (first uint64, err error) {
	first, _, err = t.AppendAs(ctx, name, tiers.Producer{}, recs)
	return first, err
}

// AppendAs is Append for an idempotent producer's batch (p.ID not zero):
// a retry of the producer's last batch in the stream (the same p.Seq and
// as many records) is not appended again; it returns the offset its
// records got and dup set, once they are durable. An older p.Seq, or the
// last one with another record count, is tiers.ErrProducerSequence. A zero
// p appends as Append does.
func (t *Tier) AppendAs(ctx context.Context, name string, p tiers.Producer, recs []tiers.Record) (first uint64, dup bool, err error) {
	if len(recs) == 0 {
		return 0, false, fmt.Errorf("%w: empty batch", tiers.ErrInvalidRecord)
	}
	if !p.ID.IsZero() && p.Seq == 0 {
		return 0, false, fmt.Errorf("%w: sequence numbers start at 1", tiers.ErrProducerSequence)
	}
	if t.closed.Load() {
		return 0, false, tiers.ErrClosed
	}
	var size int64
	for i := range recs {
		size += int64(tiers.EncodedLen(&recs[i]))
	}
	if size > t.opts.MaxBytes {
		// Retrying cannot help a batch larger than the whole budget.
		return 0, false, fmt.Errorf("%w: batch of %d bytes exceeds the memory budget of %d", tiers.ErrBatchOverBudget, size, t.opts.MaxBytes)
	}
	s := t.getStream(name)
	if s != nil && !p.ID.IsZero() {
		// A retry is answered before backpressure: it adds nothing.
		s.mu.Lock()
		e, ok, err := s.lastOfLocked(p, len(recs))
		s.mu.Unlock()
		if err != nil || ok {
			return s.answerRetry(ctx, e, err)
		}
	}
	if u := t.unpersisted.Load(); u > 0 && u+size > t.opts.MaxBytes {
		// The cheap look first: no stream is created under pressure.
		return 0, false, t.refuseForBudget()
	}
	if s == nil {
		t.mu.Lock()
		s = t.streamLocked(name)
		t.mu.Unlock()
	}
	now := t.opts.Now()
	s.mu.Lock()
	if !p.ID.IsZero() {
		// Again under the lock that orders the stream's appends: the same
		// batch may have been appended since the look above.
		if e, ok, err := s.lastOfLocked(p, len(recs)); err != nil || ok {
			s.mu.Unlock()
			return s.answerRetry(ctx, e, err)
		}
	}
	// Reserve what the batch will allocate before allocating it, so that
	// concurrent appends to different streams cannot overrun the budget
	// together. The sizes are those with the offsets the records get.
	first = s.mu.next
	sizes := make([]int, len(recs))
	total := 0
	for i := range recs {
		recs[i].Offset = first + uint64(i)
		sizes[i] = tiers.EncodedLen(&recs[i])
		total += sizes[i]
	}
	if total > wal.MaxFrameBytes {
		// The WAL would refuse it; refused before it is in memory, every
		// record there is far shorter than the 2 GiB ref.n can count.
		s.mu.Unlock()
		return 0, false, fmt.Errorf("hot: append to %s: %w: %d encoded bytes, a WAL frame holds at most %d", name, tiers.ErrBatchTooLarge, total, wal.MaxFrameBytes)
	}
	// A segment holds one UTC day (addLocked): the batch goes into one
	// segment per run of same-day records, each sized for its run.
	runs := dayRuns(s.mu.active, recs, sizes)
	var need int64
	for i, r := range runs {
		seg := s.mu.active
		if i > 0 || r.cut {
			seg = nil
		}
		need += growthBound(seg, sizes[r.from:r.to], r.bytes, int(s.pol.SegmentMaxBytes))
	}
	if !t.reserve(need) {
		s.mu.Unlock()
		return 0, false, t.refuseForBudget()
	}
	var grew int64
	for _, r := range runs {
		left := r.bytes // the run's bytes from recs[i] on
		for i := r.from; i < r.to; i++ {
			grew += t.addLocked(s, &recs[i], now, left)
			left -= sizes[i]
		}
	}
	t.unpersisted.Add(grew - need) // settle the reservation
	s.mu.next += uint64(len(recs))
	sealed := len(runs) > 1 || runs[0].cut
	if s.mu.active.bytes >= s.pol.SegmentMaxBytes {
		t.sealLocked(s)
		sealed = true
	}
	ticket := t.wal.Enqueue(wal.Batch{Stream: name, Records: recs, Producer: p.ID, Seq: p.Seq})
	if ticket.Done() {
		if err := ticket.Wait(context.Background()); err != nil {
			// Refused before it was queued (the log is failed, closed, or
			// taking back a refused group): the batch is the stream's last,
			// so its offsets go back at once.
			t.truncateLocked(s, first)
			s.mu.Unlock()
			return 0, false, err
		}
	}
	if !p.ID.IsZero() {
		s.noteLocked(p, first, len(recs), ticket, now)
	}
	s.mu.Unlock()
	if sealed {
		t.kickFlusher()
	}
	end := first + uint64(len(recs))
	if err := ticket.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			// The frame may still become durable; publish it when it does
			// so later batches of the stream are not held back.
			go func() {
				if ticket.Wait(context.Background()) == nil {
					s.publish(end)
				}
			}()
		}
		return 0, false, err
	}
	s.publish(end)
	if t.bytes.Load() > t.opts.MaxBytes {
		t.kickFlusher()
	}
	return first, false, nil
}

// takeBack is the WAL's Options.Unwritten: batches given offsets from
// firsts[stream] on were refused with nothing written, and no later batch
// of those streams is in the log, so the offsets go back to the streams
// and are given again to the next appends. The refused appends answer
// tiers.ErrStorageUnavailable: nothing of them was stored.
func (t *Tier) takeBack(firsts map[string]uint64) {
	for name, first := range firsts {
		s := t.getStream(name)
		if s == nil {
			continue
		}
		s.mu.Lock()
		t.truncateLocked(s, first)
		s.mu.Unlock()
	}
}

// truncateLocked drops the stream's records from offset from on, which the
// WAL refused: the next append gets from again. Doing it twice is harmless.
// s.mu held.
func (t *Tier) truncateLocked(s *stream, from uint64) {
	if from >= s.mu.next {
		return
	}
	if vis := s.visible.Load(); from < vis {
		// Visible records are durable; the log cannot have refused them.
		t.opts.Logger.Error("hot: refusing to take back durable records", "stream", s.name, "from", from, "visible", vis)
		return
	}
	for len(s.mu.segs) > 0 {
		seg := s.mu.segs[len(s.mu.segs)-1]
		if seg.base >= from {
			s.mu.segs[len(s.mu.segs)-1] = nil
			s.mu.segs = s.mu.segs[:len(s.mu.segs)-1]
			if s.mu.active == seg {
				s.mu.active = nil
			}
			t.bytes.Add(-seg.alloc)
			t.unpersisted.Add(-seg.alloc)
			continue
		}
		if k := int(from - seg.base); k < len(seg.idx) {
			freed := seg.truncate(k)
			t.bytes.Add(-freed)
			t.unpersisted.Add(-freed)
		}
		break
	}
	s.mu.next = from
	s.revertProducersLocked(from)
}

// addLocked appends one record to the stream's active segment, starting one
// if needed; hint is the encoded size of r and the rest of its run (see
// dayRuns). It counts the heap bytes allocated in t.bytes and returns them;
// the caller counts them as unpersisted.
//
// A segment never holds two UTC days: a record whose day (tiers.UTCDay of
// its ts) is not the active segment's seals that segment first, whichever
// way the clock went. The cut depends only on the records, so WAL replay,
// which adds them through here too, cuts where the appends did.
func (t *Tier) addLocked(s *stream, r *tiers.Record, now time.Time, hint int) int64 {
	var grew int64
	if a := s.mu.active; a != nil && len(a.idx) > 0 && tiers.UTCDay(a.minTS) != tiers.UTCDay(r.TS) {
		if tiers.UTCDay(r.TS) > tiers.UTCDay(a.minTS) {
			t.daySeals[0].Add(1)
		} else {
			t.daySeals[1].Add(1)
		}
		t.sealLocked(s)
	}
	if s.mu.active == nil {
		s.mu.active = newSegment(r.Offset, now) // s.mu.next moves after the whole batch
		s.mu.segs = append(s.mu.segs, s.mu.active)
		grew = s.mu.active.alloc
	}
	a := s.mu.active
	grew += a.add(r, hint, int(s.pol.SegmentMaxBytes-a.bytes))
	t.bytes.Add(grew)
	return grew
}

// dayRun is a run of a batch's records on one UTC day: recs[from:to],
// bytes their encoded size; cut is true when the run does not go into the
// active segment the batch found (another day's), so it starts a segment.
type dayRun struct {
	from, to int
	bytes    int
	cut      bool
}

// dayRuns splits a batch (sizes: the records' encoded lengths) into the
// runs addLocked puts in separate segments, given the stream's active
// segment (nil if none): a new run wherever the UTC day changes. It never
// returns an empty slice for a non-empty batch.
func dayRuns(active *Segment, recs []tiers.Record, sizes []int) []dayRun {
	var runs []dayRun
	for i := range recs {
		d := tiers.UTCDay(recs[i].TS)
		if len(runs) == 0 {
			cut := active != nil && len(active.idx) > 0 && tiers.UTCDay(active.minTS) != d
			runs = append(runs, dayRun{from: i, to: i, cut: cut})
		} else if tiers.UTCDay(recs[i-1].TS) != d {
			runs = append(runs, dayRun{from: i, to: i, cut: true})
		}
		r := &runs[len(runs)-1]
		r.to = i + 1
		r.bytes += sizes[i]
	}
	return runs
}

// refuseForBudget is the error of an append the budget has no room for,
// and wakes the flusher to make room (sealing early if it must).
func (t *Tier) refuseForBudget() error {
	t.pressure.Store(true)
	t.kickFlusher()
	if since, err := t.persistFailure(); err != nil {
		// Memory is full because storage refuses the segments that
		// would free it: say so, rather than "wait a second".
		return fmt.Errorf("%w: %w: persisting sealed segments has failed since %s: %w",
			tiers.ErrBackpressure, tiers.ErrStorageUnavailable, since.UTC().Format(time.RFC3339), err)
	}
	return tiers.ErrBackpressure
}

// reserve counts need bytes as unpersisted if the budget has room for
// them. An empty budget takes any batch (one larger than the whole budget
// was refused before), so that an append can always make progress.
func (t *Tier) reserve(need int64) bool {
	for {
		cur := t.unpersisted.Load()
		if cur > 0 && cur+need > t.opts.MaxBytes {
			return false
		}
		if t.unpersisted.CompareAndSwap(cur, cur+need) {
			return true
		}
	}
}

// sealLocked seals the active segment; the flusher will persist it.
func (t *Tier) sealLocked(s *stream) {
	if s.mu.active == nil {
		return
	}
	s.mu.active.sealed = t.opts.Now()
	s.mu.active = nil
}

func (t *Tier) kickFlusher() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Close stops the flusher, then syncs and closes the WAL. Sealed segments not
// yet persisted stay in the WAL and are replayed at the next Open.
func (t *Tier) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	close(t.stop)
	t.done.Wait()
	// A seal persisting on its caller's goroutine (persistNow) finishes
	// first: its checkpoint needs the WAL, its persist the stores the
	// engine closes next.
	t.flushing.Lock()
	defer t.flushing.Unlock()
	return t.wal.Close()
}

// Stats is the tier's state at a glance.
type Stats struct {
	Bytes       int64 // arena bytes allocated
	MaxBytes    int64
	Unpersisted int64
	Segments    int
	Streams     int
	WAL         wal.Stats
	// PersistFailed is the latest error of a failing persist of sealed
	// segments (nil once one succeeds), PersistFailedSince when the
	// failures began. The flusher keeps retrying.
	PersistFailed      error
	PersistFailedSince time.Time
	// DaySeals counts, since Open (WAL replay included), the segments
	// sealed because the next record was on another UTC day: [0] a later
	// day (a stream crossing midnight), [1] an earlier one (a late
	// record). A segment never holds two UTC days; a producer whose ts
	// goes back and forth across midnight makes one segment per run, and
	// shows here.
	DaySeals [2]uint64
}

// Stats reports the tier's state.
func (t *Tier) Stats() Stats {
	st := Stats{Bytes: t.bytes.Load(), MaxBytes: t.opts.MaxBytes, Unpersisted: t.unpersisted.Load(), WAL: t.wal.Stats(),
		DaySeals: [2]uint64{t.daySeals[0].Load(), t.daySeals[1].Load()}}
	st.PersistFailedSince, st.PersistFailed = t.persistFailure()
	t.mu.RLock()
	defer t.mu.RUnlock()
	st.Streams = len(t.mu.streams)
	for _, s := range t.mu.streams {
		s.mu.RLock()
		st.Segments += len(s.mu.segs)
		s.mu.RUnlock()
	}
	return st
}

// WriteState is what keeps writes from storage, if anything: the WAL's
// stats (Failed, Refused) and a failing persist (PersistFailed), without
// the per-stream walk of Stats, for health checks.
func (t *Tier) WriteState() Stats {
	st := Stats{WAL: t.wal.Stats()}
	st.PersistFailedSince, st.PersistFailed = t.persistFailure()
	return st
}

// StreamNames returns every stream the tier knows, sorted.
func (t *Tier) StreamNames() []string {
	t.mu.RLock()
	names := make([]string, 0, len(t.mu.streams))
	for n := range t.mu.streams {
		names = append(names, n)
	}
	t.mu.RUnlock()
	sort.Strings(names)
	return names
}
