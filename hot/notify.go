package hot

import (
	"context"
	"sync"
)

// Long polls are woken here, where records become visible (publish), and
// per stream: a batch published late, after its append gave up waiting
// for the WAL, wakes its readers as one published at once does, and an
// append to one stream wakes no reader of another.
//
// A stream nobody waits on carries a nil pointer and nothing else; a
// stream the tier does not know yet is waited on through an entry of
// waitHub.pending that lives only while someone waits, so no state is left
// behind per name ever waited on.

// waiters are one stream's long-polling readers. ch is closed, and
// dropped, when records of the stream become visible; the next reader to
// wait makes a new one. All fields are guarded by hub.mu.
type waiters struct {
	hub  *waitHub
	name string
	s    *stream       // nil while the tier does not know the stream
	ch   chan struct{} // nil until a reader waits after the last wake
	n    int           // readers registered (watch) and not yet gone (unwatch)
}

// waitHub guards every stream's waiters, and holds those of streams the
// tier does not know yet: the stream adopts them when it is created.
// Lock order: Tier.mu, then waitHub.mu.
type waitHub struct {
	mu      sync.Mutex
	pending map[string]*waiters
}

// WaitFor blocks until stream holds a record visible to readers (durable)
// at offset or above, or ctx is done (its error is returned). A stream the
// tier does not know yet is waited for too: it exists once its first batch
// is appended. Long-polling readers (GET …/records?wait=) and tierctl
// tail -f use it through the engine.
func (t *Tier) WaitFor(ctx context.Context, name string, offset uint64) error {
	for {
		// Registering before looking at the stream means a publish after
		// the look closes ch: no record is missed between the two.
		w, ch := t.watch(name)
		if s := t.getStream(name); s != nil && s.visible.Load() > offset {
			t.unwatch(w)
			return nil
		}
		select {
		case <-ch:
			t.unwatch(w)
		case <-ctx.Done():
			t.unwatch(w)
			return ctx.Err()
		}
	}
}

// watch registers a reader of the named stream and returns its waiters and
// the channel the stream's next publish closes. Call unwatch once done.
func (t *Tier) watch(name string) (*waiters, <-chan struct{}) {
	t.mu.RLock() // the stream is not created while an unknown one is watched
	defer t.mu.RUnlock()
	h := &t.waits
	h.mu.Lock()
	defer h.mu.Unlock()
	var w *waiters
	if s := t.mu.streams[name]; s != nil {
		if w = s.waiting.Load(); w == nil {
			w = &waiters{hub: h, name: name, s: s}
			s.waiting.Store(w)
		}
	} else if w = h.pending[name]; w == nil {
		w = &waiters{hub: h, name: name}
		if h.pending == nil {
			h.pending = make(map[string]*waiters)
		}
		h.pending[name] = w
	}
	w.n++
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w, w.ch
}

// unwatch ends a reader's registration; the last reader of a stream to go
// detaches its waiters, so nothing stays behind for the stream.
func (t *Tier) unwatch(w *waiters) {
	h := w.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.n--; w.n > 0 {
		return
	}
	w.ch = nil
	if w.s != nil {
		w.s.waiting.CompareAndSwap(w, nil)
	} else if h.pending[w.name] == w {
		delete(h.pending, w.name)
	}
}

// adoptWaitersLocked hands the readers that waited for a stream before the
// tier knew it to the new stream s. t.mu held for writing.
func (t *Tier) adoptWaitersLocked(s *stream) {
	h := &t.waits
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := h.pending[s.name]; w != nil {
		delete(h.pending, s.name)
		w.s = s
		s.waiting.Store(w)
	}
}

// wake wakes every reader waiting on the stream now.
func (w *waiters) wake() {
	w.hub.mu.Lock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
	w.hub.mu.Unlock()
}

// publish makes records below end visible to readers and wakes the
// stream's waiting readers. Callers publish once the records are durable:
// at the end of an append, later for an append that gave up waiting, or
// when a producer's retry is answered.
func (s *stream) publish(end uint64) {
	for {
		cur := s.visible.Load()
		if end <= cur {
			return // published already, and its readers woken
		}
		if s.visible.CompareAndSwap(cur, end) {
			break
		}
	}
	// After the store above: a reader that registered before looking at
	// visible is seen here (both are sequentially consistent atomics).
	if w := s.waiting.Load(); w != nil {
		w.wake()
	}
}
