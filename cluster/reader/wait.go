package reader

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tierd/tierd/tiers"
)

// Channel is the PostgreSQL notification channel every commit notifies,
// with the payload "<stream>:<next_offset>" (the sequencer sends it in
// the commit's transaction, so it arrives only once the commit is
// visible).
const Channel = "tierd_commits"

// The listener's timing: how long a quiet connection waits before it is
// pinged (a half-open connection is found within about listenPing), and
// the reconnect backoff's bounds.
const (
	listenPing     = 30 * time.Second
	listenPingWait = 10 * time.Second
	reconnectMin   = 100 * time.Millisecond
	reconnectMax   = 5 * time.Second
	connectTimeout = 10 * time.Second
)

// waitHub holds the streams' waiting readers. A stream nobody waits on has
// no entry: an entry lives only while someone waits.
type waitHub struct {
	mu sync.Mutex
	// streams' waiters, by name.
	streams map[string]*waiters
	// resets counts the listener's (re)connections: a waiter that saw
	// another count than the current one re-reads next_offset, since
	// notifications sent while no connection listened were lost.
	resets uint64
}

// waiters are one stream's long-polling readers. ch is closed, and
// replaced, by every wake; next is the highest next offset notified while
// they wait.
type waiters struct {
	name string
	ch   chan struct{}
	n    int
	next uint64
}

func newWaitHub() *waitHub { return &waitHub{streams: map[string]*waiters{}} }

// watch registers a reader of stream and returns its waiters, the channel
// the next wake closes, and the reset count.
func (h *waitHub) watch(stream string) (*waiters, <-chan struct{}, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.streams[stream]
	if w == nil {
		w = &waiters{name: stream, ch: make(chan struct{})}
		h.streams[stream] = w
	}
	w.n++
	return w, w.ch, h.resets
}

func (h *waitHub) unwatch(w *waiters) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.n--; w.n == 0 && h.streams[w.name] == w {
		delete(h.streams, w.name)
	}
}

// state returns what a woken reader needs: the notified next offset, a
// fresh channel and the reset count.
func (h *waitHub) state(w *waiters) (uint64, <-chan struct{}, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return w.next, w.ch, h.resets
}

// notify wakes stream's readers with its new next offset.
func (h *waitHub) notify(stream string, next uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := h.streams[stream]; w != nil {
		w.next = max(w.next, next)
		close(w.ch)
		w.ch = make(chan struct{})
	}
}

// reset wakes every reader to read next_offset again.
func (h *waitHub) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resets++
	for _, w := range h.streams {
		close(w.ch)
		w.ch = make(chan struct{})
	}
}

// WaitFor blocks until stream's next offset is above offset (a record at
// offset or beyond is committed and readable through any node), or ctx is
// done (its error is returned). A stream that does not exist yet is
// waited for too. Commits of any node wake it through LISTEN tierd_commits;
// after the listener loses its connection and listens again, every waiter
// reads next_offset again, so a commit made meanwhile is not missed. An
// error reading next_offset when the wait starts is returned (wrapping
// ErrCatalogUnavailable); later ones wait for the next wake. After Close
// it returns an error wrapping tiers.ErrClosed.
func (r *Reader) WaitFor(ctx context.Context, stream string, offset uint64) error {
	// Registering before reading next_offset means a notification after
	// the read wakes this reader: none is missed between the two.
	w, ch, seen := r.waits.watch(stream)
	defer r.waits.unwatch(w)
	next, err := r.nextOffset(ctx, stream)
	if err != nil {
		return err
	}
	for next <= offset {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			return fmt.Errorf("reader: wait for %s: %w", stream, tiers.ErrClosed)
		}
		var notified, resets uint64
		notified, ch, resets = r.waits.state(w)
		next = max(next, notified)
		if resets != seen && next <= offset {
			n, err := r.nextOffset(ctx, stream)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.opts.Logger.Warn("long poll could not read next_offset; waiting for the next wake", "stream", stream, "err", err)
				continue // seen unchanged: the next wake tries again
			}
			seen, next = resets, max(next, n)
		}
	}
	return nil
}

// nextOffset reads stream's next offset; 0 for a stream not created yet.
func (r *Reader) nextOffset(ctx context.Context, stream string) (uint64, error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var next int64
	err := r.opts.Pool.QueryRow(qctx, `SELECT next_offset FROM cluster_streams WHERE stream = $1`, stream).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, pgErr(ctx, "next offset of "+stream, err)
	}
	return uint64(next), nil
}

// listen keeps one dedicated connection LISTENing on Channel until ctx
// ends, reconnecting with backoff when it is lost; each (re)connection
// wakes every waiter once it listens.
func (r *Reader) listen(ctx context.Context) {
	defer close(r.done)
	backoff := reconnectMin
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, func() { backoff = reconnectMin })
		if ctx.Err() != nil {
			return
		}
		r.opts.Logger.Warn("commit listener lost its PostgreSQL connection; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, reconnectMax)
		if r.opts.beforeReconnect != nil {
			r.opts.beforeReconnect()
		}
	}
}

// listenOnce connects, LISTENs, wakes every waiter, and then delivers
// notifications until the connection fails.
func (r *Reader) listenOnce(ctx context.Context, connected func()) error {
	cfg := r.opts.Pool.Config().ConnConfig.Copy()
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+Channel)
	}
	cancel()
	if err != nil {
		if conn != nil {
			conn.Close(context.Background())
		}
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	connected()
	r.waits.reset()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && wctx.Err() != nil && !conn.IsClosed():
			// Quiet for listenPing: make sure the connection is alive.
			pctx, cancel := context.WithTimeout(ctx, listenPingWait)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		stream, next, ok := parsePayload(n.Payload)
		if !ok {
			r.opts.Logger.Warn("ignoring a malformed commit notification", "payload", n.Payload)
			continue
		}
		r.waits.notify(stream, next)
	}
}

// parsePayload splits "<stream>:<next_offset>"; the offset follows the
// last colon, so a stream name may hold colons.
func parsePayload(p string) (string, uint64, bool) {
	i := strings.LastIndexByte(p, ':')
	if i <= 0 {
		return "", 0, false
	}
	next, err := strconv.ParseUint(p[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return p[:i], next, true
}
