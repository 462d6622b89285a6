package engine

import (
	"context"
	"sync"

	"github.com/tierd/tierd/tiers"
)

// appendSignal wakes readers waiting for new records: each successful
// append closes the current channel and starts a new one, so a waiter that
// took the channel before checking the offsets never misses an append.
// One signal serves every stream; a waiter re-checks its own stream.
type appendSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns the channel the next append closes.
func (s *appendSignal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// fire wakes every waiter, if there is any.
func (s *appendSignal) fire() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// WaitFor blocks until stream holds a readable record at offset or above,
// or ctx is done (its error is returned). An unknown stream is waited for
// too: it exists once its first batch is appended. Long-polling readers
// (GET …/records?wait=) and tierctl tail -f use it.
func (e *Engine) WaitFor(ctx context.Context, stream string, offset uint64) error {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return err
	}
	for {
		ch := e.appended.wait()
		if sn := e.hot.Snapshot(stream); sn.Known && sn.Next > offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
