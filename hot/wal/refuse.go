package wal

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/tierd/tierd/tiers"
	"golang.org/x/sys/unix"
)

// A full disk or a process out of file descriptors must not stop the log
// for good: when a group cannot be written but nothing of it reached the
// log (the next file could not be created; a write failed for want of
// space and was truncated away), the group is refused with
// tiers.ErrStorageUnavailable and the log stays healthy. Every later group
// is an attempt of its own, and while none comes the committer retries by
// itself (probe), so that Stats, /healthz and status show the condition
// gone without waiting for traffic. What may have left bytes the log cannot
// take back (a failed fsync, any other write error) still stops it (fail).

// The operations a refusal can come from.
const (
	opCreate = "create" // creating the next file
	opWrite  = "write"  // writing a group into the current file
)

// refusal is a failure that left nothing in the log: the group can be
// refused and the log goes on.
type refusal struct {
	op  string
	err error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// undoable reports whether a failed write can be taken back by truncating:
// the file system refused it for want of space, the bytes already in the
// file are as they were.
func undoable(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// retryState is the committer's memory of a refusal episode. An episode
// ends once the condition is seen gone (a group written, a probe passed)
// and no refusal came for settle: near a full disk other writers free and
// take space all the time, and the state reported must not flap with
// them.
type retryState struct {
	active      bool
	op          string // what failed last: opCreate or opWrite
	pending     int64  // bytes of the refused group(s): what must fit
	delay       time.Duration
	t           *time.Timer
	logged      time.Time // last warning, to log an episode without flooding
	lastRefused time.Time
	gone        bool // the condition was seen gone after lastRefused
}

// timer returns the channel of the pending probe, nil when none is due.
func (r *retryState) timer() <-chan time.Time {
	if r.t == nil {
		return nil
	}
	return r.t.C
}

func (r *retryState) stop() {
	if r.t != nil {
		r.t.Stop()
		r.t = nil
	}
}

// after arms the next probe d from now.
func (r *retryState) after(d time.Duration) {
	r.stop()
	r.t = time.NewTimer(d)
}

// backoff arms the next probe, doubling the wait up to limit.
func (r *retryState) backoff(limit time.Duration) {
	r.delay = min(limit, max(r.delay*2, limit/50))
	r.after(r.delay)
}

// settle is how long an episode outlasts its last refusal.
func (w *WAL) settle() time.Duration { return 2 * w.opts.RetryInterval }

// logEvery is how often a refusal episode that goes on is logged again.
const logEvery = 30 * time.Second

// refuse completes g, and every group queued behind it, with the refusal:
// their batches were given offsets that follow the refused ones, so they
// cannot be written either. Enqueue refuses meanwhile, until
// Options.Unwritten has taken the offsets back.
func (w *WAL) refuse(g *Ticket, frames []frameInfo, size int64, r *refusal) {
	err := fmt.Errorf("wal: %w: %w", tiers.ErrStorageUnavailable, r.err)
	firsts := map[string]uint64{}
	addFirsts(firsts, frames)
	now := time.Now()
	w.mu.Lock()
	w.mu.refusing = err
	queued := w.mu.group
	if queued != nil {
		addFirsts(firsts, w.mu.frames)
		size += int64(len(w.mu.buf))
		w.mu.group, w.mu.buf, w.mu.frames = nil, w.mu.buf[:0], w.mu.frames[:0]
	}
	if w.mu.stalled == nil {
		w.mu.stalledSince = now
	}
	w.mu.stalled = err
	since := w.mu.stalledSince
	w.mu.Unlock()

	cause := tiers.StorageCause(err)
	w.metrics.refused.WithLabelValues(cause).Inc()
	w.metrics.refusing.Set(1)
	if !w.retry.active || now.Sub(w.retry.logged) >= logEvery {
		w.log.Warn("wal: group refused, nothing written; retrying until storage takes it", "cause", cause, "since", since, "err", err)
		w.retry.logged = now
	}
	if !w.retry.active {
		w.retry.delay = 0
	}
	w.retry.active, w.retry.op, w.retry.pending = true, r.op, size
	w.retry.lastRefused, w.retry.gone = now, false
	w.retry.backoff(w.opts.RetryInterval)

	if w.opts.Unwritten != nil {
		w.opts.Unwritten(firsts)
	}
	w.mu.Lock()
	w.mu.refusing = nil
	w.mu.Unlock()
	g.complete(err)
	if queued != nil {
		queued.complete(err)
	}
}

// addFirsts notes each stream's lowest first offset among frames.
func addFirsts(firsts map[string]uint64, frames []frameInfo) {
	for _, fr := range frames {
		first := fr.last + 1 - fr.count
		if cur, ok := firsts[fr.stream]; !ok || first < cur {
			firsts[fr.stream] = first
		}
	}
}

// resume notes that the condition looks gone: a group was written, or a
// probe passed. The episode ends once no refusal came for settle.
func (w *WAL) resume() {
	if !w.retry.active {
		return
	}
	w.retry.gone = true
	if wait := w.settle() - time.Since(w.retry.lastRefused); wait > 0 {
		w.retry.after(wait)
		return
	}
	w.retry.active = false
	w.retry.stop()
	w.mu.Lock()
	since := w.mu.stalledSince
	w.mu.stalled, w.mu.stalledSince = nil, time.Time{}
	w.mu.Unlock()
	w.metrics.refusing.Set(0)
	w.log.Info("wal: storage takes writes again", "refused_for", time.Since(since).Round(time.Millisecond))
}

// probe retries what the last refusal could not do, with no group at
// stake: it creates the next file if that is what failed (or a group of
// the refused size would need one), and checks that the file system has
// room for the refused bytes when a write ran out of space.
func (w *WAL) probe() {
	w.retry.t = nil
	if !w.retry.active || !w.healthy() {
		return
	}
	if w.retry.gone {
		w.resume() // settling: no refusal since the condition was seen gone
		return
	}
	var err error
	if w.retry.op == opCreate || w.rotationDue(w.retry.pending) {
		err = w.rotate()
	}
	if err == nil && w.retry.op == opWrite {
		err = w.checkRoom(w.retry.pending)
	}
	var r *refusal
	switch {
	case err == nil:
		w.resume()
	case errors.As(err, &r):
		w.mu.Lock()
		if w.mu.stalled != nil {
			w.mu.stalled = fmt.Errorf("wal: %w: %w", tiers.ErrStorageUnavailable, r.err)
		}
		w.mu.Unlock()
		w.retry.backoff(w.opts.RetryInterval)
	default:
		w.fail(err)
	}
}

// roomMargin is free space a probe wants beyond the refused bytes, for
// the file system's own blocks.
const roomMargin = 64 << 10

// checkRoom returns a *refusal wrapping ENOSPC while the file system of
// the log has fewer than n bytes (and a margin) available.
func (w *WAL) checkRoom(n int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(w.opts.Dir, &st); err != nil {
		return nil // no answer: let the next group find out
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	if avail >= n+roomMargin {
		return nil
	}
	return &refusal{op: opWrite, err: fmt.Errorf("%s has %d bytes available, a refused group needs %d: %w", w.opts.Dir, avail, n, syscall.ENOSPC)}
}
