package hot

import (
	"context"
	"fmt"
	"time"

	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/tiers"
)

// Polling bounds of Seal while the records of an append still in flight
// become durable: a WAL group commit takes a millisecond or a few, so the
// first looks are quick, and a slow disk costs at most one look per
// sealPollMax.
const (
	sealPollMin = time.Millisecond
	sealPollMax = 20 * time.Millisecond
)

// Seal seals the stream's active segment now, if it holds records, and
// returns once every segment of the stream sealed by then is persisted
// warm: through the Persister, in offset order, exactly as the flusher
// persists a segment sealed by size or age, and with the WAL checkpointed
// after it. It returns the sealed segment's base and sealed true; sealed
// false when there was nothing to seal (no record appended since the last
// seal), after the segments sealed earlier are persisted all the same.
//
// Records of appends still in flight when it seals are part of the
// segment; Seal waits until they are durable (or taken back, when the WAL
// refused them). ctx bounds the wait: when it ends first the segment stays
// sealed and the flusher persists it. A crash at any point loses and
// doubles nothing: until the warm file is committed the WAL holds the
// records, and replay puts them back in an active segment.
//
// Errors: tiers.ErrStreamNotFound, tiers.ErrClosed, the persist's own
// (storage) error, a sticky WAL failure (tiers.ErrStorageFailed), ctx's.
func (t *Tier) Seal(ctx context.Context, name string) (base uint64, sealed bool, err error) {
	if t.closed.Load() {
		return 0, false, tiers.ErrClosed
	}
	s := t.getStream(name)
	if s == nil {
		return 0, false, fmt.Errorf("%w: %s", tiers.ErrStreamNotFound, name)
	}
	s.mu.Lock()
	if a := s.mu.active; a != nil && len(a.idx) > 0 {
		base, sealed = a.base, true
		t.sealLocked(s)
	}
	end := s.mu.next // every record below end is in a sealed segment now
	s.mu.Unlock()
	if sealed {
		if err := failpoint.Inject(failpoint.SealAfterSeal); err != nil {
			return 0, false, err
		}
	}
	poll := sealPollMin
	for {
		done, ready, persisted := s.sealState(end)
		if done {
			// A sealed segment whose every record the WAL refused was
			// taken back: nothing of it exists.
			return base, sealed && persisted > base, nil
		}
		if t.closed.Load() {
			return 0, false, tiers.ErrClosed
		}
		if ready {
			if err := t.persistNow(ctx, s); err != nil {
				return 0, false, err
			}
			continue
		}
		if st := t.wal.Stats(); st.Failed != nil {
			return 0, false, st.Failed // the records in flight never become durable
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(2*poll, sealPollMax)
	}
}

// sealState reports whether the stream's records below end that are in
// sealed segments are all persisted (done), and if not, whether some
// sealed segment can be persisted now (ready: its records are durable),
// with the stream's persisted watermark. Records taken back since the
// seal (the WAL refused them) lower end; records appended since are in a
// new active segment and do not count.
func (s *stream) sealState(end uint64) (done, ready bool, persisted uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	target := min(end, s.mu.next)
	if a := s.mu.active; a != nil {
		target = min(target, a.base)
	}
	if s.mu.persisted >= target {
		return true, false, s.mu.persisted
	}
	return false, len(s.readyLocked()) > 0, s.mu.persisted
}

// persistNow persists the stream's ready segments at once, as a flusher
// pass would (one pass at a time: the flusher's and this one never
// persist a segment twice), and checkpoints the WAL after them.
func (t *Tier) persistNow(ctx context.Context, s *stream) error {
	t.flushing.Lock()
	defer t.flushing.Unlock()
	if t.closed.Load() {
		return tiers.ErrClosed // Close waits for this lock; the WAL may be closed
	}
	err := t.persistStream(ctx, s)
	if ctx.Err() == nil {
		t.notePersist(err)
	}
	if err != nil {
		return err
	}
	if _, err := t.wal.Checkpoint(t.persistedOffset); err != nil {
		t.opts.Logger.Error("wal checkpoint", "err", err)
	}
	return nil
}
