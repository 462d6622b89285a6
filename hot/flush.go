package hot

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tierd/tierd/tiers"
)

// run is the flusher: on every kick or tick it seals segments that reached
// their age, persists every sealed segment whose records are all durable,
// checkpoints the WAL and evicts what the residency and budget allow.
func (t *Tier) run() {
	defer t.done.Done()
	ticker := time.NewTicker(t.opts.Tick)
	defer ticker.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-t.stop; cancel() }()
	for {
		select {
		case <-t.stop:
			return
		case <-t.kick:
		case <-ticker.C:
		}
		t.pass(ctx, false)
	}
}

// Flush seals every active segment and persists every sealed one, returning
// the first persist error. Tests, benchmarks and graceful shutdown use it.
func (t *Tier) Flush(ctx context.Context) error {
	return t.pass(ctx, true)
}

// pass does one round of sealing, persisting, checkpointing and evicting.
// After a failed persist, the flusher's own passes wait (persistRetry)
// before trying again; Flush always tries.
func (t *Tier) pass(ctx context.Context, sealAll bool) error {
	t.flushing.Lock()
	defer t.flushing.Unlock()
	now := t.opts.Now()
	persist := sealAll || t.persistDue()
	t.mu.RLock()
	streams := make([]*stream, 0, len(t.mu.streams))
	for _, s := range t.mu.streams {
		streams = append(streams, s)
	}
	t.mu.RUnlock()

	pressure := t.pressure.Swap(false)
	var (
		ready   []*stream
		actives []*stream // under pressure: streams with an active segment
		sealed  int64     // under pressure: bytes of sealed, unpersisted segments
	)
	for _, s := range streams {
		s.mu.Lock()
		if a := s.mu.active; a != nil && (sealAll || now.Sub(a.created) >= s.pol.SegmentMaxAge) {
			t.sealLocked(s)
		}
		if pressure {
			for _, seg := range s.mu.segs {
				if !seg.persisted && !seg.sealed.IsZero() {
					sealed += seg.alloc
				}
			}
			if s.mu.active != nil {
				actives = append(actives, s)
			}
		}
		if persist && len(s.readyLocked()) > 0 {
			ready = append(ready, s)
		}
		s.mu.Unlock()
	}
	if pressure && persist {
		// (While persisting fails, sealing early would free nothing.)
		ready = t.sealForRoom(actives, sealed, ready)
	}

	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, t.opts.FlushWorkers)
		errMu    sync.Mutex
		firstErr error
	)
	for _, s := range ready {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := t.persistStream(ctx, s); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if persist && ctx.Err() == nil {
		t.notePersist(firstErr)
	}
	if len(ready) > 0 {
		if _, err := t.wal.Checkpoint(t.persistedOffset); err != nil {
			t.opts.Logger.Error("wal checkpoint", "err", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	t.evict(now)
	return firstErr
}

// sealForRoom runs when appends were refused for lack of budget. If the
// sealed segments waiting to be persisted hold less than a quarter of the
// budget, persisting them cannot make enough room: the budget is full of
// active segments (more streams than fit a segment.max_bytes each), which
// would otherwise wait for segment.max_age while every append is refused.
// It seals the largest active segments until a quarter of the budget can
// be persisted and freed, and returns ready with the streams now ready.
func (t *Tier) sealForRoom(actives []*stream, sealed int64, ready []*stream) []*stream {
	goal := t.opts.MaxBytes / 4
	if sealed >= goal {
		return ready
	}
	size := func(s *stream) int64 {
		s.mu.RLock()
		defer s.mu.RUnlock()
		if s.mu.active == nil {
			return 0
		}
		return s.mu.active.alloc
	}
	sizes := make(map[*stream]int64, len(actives))
	for _, s := range actives {
		sizes[s] = size(s)
	}
	sort.Slice(actives, func(i, j int) bool { return sizes[actives[i]] > sizes[actives[j]] })
	isReady := make(map[*stream]bool, len(ready))
	for _, s := range ready {
		isReady[s] = true
	}
	for _, s := range actives {
		if sealed >= goal {
			break
		}
		s.mu.Lock()
		if a := s.mu.active; a != nil {
			sealed += a.alloc
			t.sealLocked(s)
		}
		if !isReady[s] && len(s.readyLocked()) > 0 {
			ready = append(ready, s)
			isReady[s] = true
		}
		s.mu.Unlock()
	}
	return ready
}

// readyLocked returns the stream's sealed, unpersisted segments whose records
// are all durable, oldest first. Segments persist in order, so the persisted
// watermark stays contiguous.
func (s *stream) readyLocked() []*Segment {
	var out []*Segment
	vis := s.visible.Load()
	for _, seg := range s.mu.segs {
		if seg.persisted {
			continue
		}
		if seg.sealed.IsZero() || seg.base+uint64(len(seg.idx)) > vis {
			break
		}
		out = append(out, seg)
	}
	return out
}

// persistStream persists the stream's ready segments in order, stopping at
// the first failure (the next pass retries it).
func (t *Tier) persistStream(ctx context.Context, s *stream) error {
	s.mu.RLock()
	ready := s.readyLocked()
	views := make([]SealedSegment, len(ready))
	for i, seg := range ready {
		v := seg.viewLocked(seg.base + uint64(len(seg.idx)))
		views[i] = SealedSegment{Stream: s.name, Base: seg.base, Last: v.last(), SealedAt: seg.sealed, v: v}
	}
	s.mu.RUnlock()
	for i, seg := range ready {
		if err := t.opts.Persister.Persist(ctx, &views[i]); err != nil {
			return fmt.Errorf("persist segment %s/%d: %w", s.name, seg.base, err)
		}
		s.mu.Lock()
		seg.persisted = true
		s.mu.persisted = views[i].Last + 1
		s.mu.Unlock()
		t.unpersisted.Add(-seg.alloc)
	}
	return nil
}

// persistedOffset is the WAL checkpoint's view of a stream: the first offset
// not yet persisted warm. Unknown streams report 0, keeping their files.
func (t *Tier) persistedOffset(name string) uint64 {
	s := t.getStream(name)
	if s == nil {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.persisted
}

// evict drops persisted segments past their residency, then, while the tier
// is over its budget, the oldest persisted segments of any stream.
func (t *Tier) evict(now time.Time) {
	type cand struct {
		s   *stream
		seg *Segment
	}
	var cands []cand
	ttl := t.opts.WAL.ProducerTTL
	if ttl <= 0 {
		ttl = tiers.DefaultProducerTTL
	}
	t.mu.RLock()
	for _, s := range t.mu.streams {
		s.mu.Lock()
		s.pruneProducersLocked(now.Add(-ttl))
		for len(s.mu.segs) > 0 {
			seg := s.mu.segs[0]
			if !seg.persisted || now.Sub(seg.sealed) < s.pol.Residency {
				break
			}
			t.dropLocked(s)
		}
		for _, seg := range s.mu.segs {
			if !seg.persisted {
				break
			}
			cands = append(cands, cand{s, seg})
		}
		s.mu.Unlock()
	}
	t.mu.RUnlock()
	if t.bytes.Load() <= t.opts.MaxBytes {
		return
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].seg.sealed.Before(cands[j].seg.sealed) })
	for _, c := range cands {
		if t.bytes.Load() <= t.opts.MaxBytes {
			return
		}
		c.s.mu.Lock()
		// Per stream, candidates are in base order and each is the oldest
		// resident one when its turn comes.
		if len(c.s.mu.segs) > 0 && c.s.mu.segs[0] == c.seg {
			t.dropLocked(c.s)
		}
		c.s.mu.Unlock()
	}
}

// dropLocked evicts the stream's oldest resident segment.
func (t *Tier) dropLocked(s *stream) {
	seg := s.mu.segs[0]
	s.mu.segs[0] = nil
	s.mu.segs = s.mu.segs[1:]
	t.bytes.Add(-seg.alloc)
}

// Evict drops the stream's resident segments that are persisted and end
// below upTo, oldest first (what is resident stays a suffix of the stream),
// and returns how many it dropped. The mover calls it when it tombstones a
// segment. Residency by age (hot.max_age) and the memory budget
// (hot.max_bytes) are this tier's alone (evict): the planner plans
// neither, it only forecasts hot.max_age for explain (policy.Next).
func (t *Tier) Evict(stream string, upTo uint64) int {
	s := t.getStream(stream)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for len(s.mu.segs) > 0 {
		seg := s.mu.segs[0]
		if !seg.persisted || seg.base+uint64(len(seg.idx)) > upTo {
			break
		}
		t.dropLocked(s)
		n++
	}
	return n
}

// persistRetryMax bounds the wait between the flusher's attempts to persist
// after a failure: once storage takes writes again, persisting resumes
// within about that long.
const persistRetryMax = 2 * time.Second

// persistSettle is how long a persist failure episode outlasts its last
// failure: near a full disk, other writers free and take space all the
// time, and the state reported must not flap with them.
const persistSettle = 2 * time.Second

// persistState remembers a persist failure: when it began, the latest
// error, when the flusher tries again.
type persistState struct {
	sync.Mutex
	err      error
	since    time.Time
	lastFail time.Time
	retryAt  time.Time
	delay    time.Duration
	logged   time.Time
}

// persistDue reports whether the flusher should try persisting now.
func (t *Tier) persistDue() bool {
	t.persistFail.Lock()
	defer t.persistFail.Unlock()
	return t.persistFail.err == nil || !time.Now().Before(t.persistFail.retryAt)
}

// notePersist records the outcome of a pass that tried to persist: a
// failure starts or continues an episode (with a growing wait before the
// next attempt), success ends it once no failure came for persistSettle.
// An episode is logged when it starts, when its cause changes, every 30 s
// while it lasts, and when it ends.
func (t *Tier) notePersist(err error) {
	now := time.Now()
	pf := &t.persistFail
	pf.Lock()
	defer pf.Unlock()
	if err == nil {
		if pf.err != nil && now.Sub(pf.lastFail) >= persistSettle {
			t.opts.Logger.Info("hot: persisting segments works again", "failed_for", now.Sub(pf.since).Round(time.Millisecond))
			pf.err, pf.since, pf.delay = nil, time.Time{}, 0
		}
		return
	}
	if pf.err == nil {
		pf.since = now
	}
	pf.lastFail = now
	if pf.err == nil || tiers.StorageCause(pf.err) != tiers.StorageCause(err) || now.Sub(pf.logged) >= 30*time.Second {
		t.opts.Logger.Error("hot: persisting segments fails; retrying", "cause", tiers.StorageCause(err), "since", pf.since, "err", err)
		pf.logged = now
	}
	pf.err = err
	pf.delay = min(persistRetryMax, max(2*pf.delay, t.opts.Tick))
	pf.retryAt = now.Add(pf.delay)
}

// persistFailure returns when the ongoing persist failure began and its
// latest error (nil when persisting works).
func (t *Tier) persistFailure() (time.Time, error) {
	t.persistFail.Lock()
	defer t.persistFail.Unlock()
	return t.persistFail.since, t.persistFail.err
}
