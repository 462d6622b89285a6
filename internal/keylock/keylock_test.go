package keylock

import (
	"sync"
	"testing"
	"time"
)

// key is the mover's: one segment.
type key struct {
	stream string
	base   uint64
}

// TestBounded: the lock table holds only the moves in
// progress: after a thousand segments moved one after another and many
// at once, it is empty.
func TestBounded(t *testing.T) {
	var l Map[key]
	for i := range 1000 {
		l.Lock(key{"s", uint64(i)})()
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("%d lock entries after 1000 finished moves, want 0", n)
	}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				l.Lock(key{"s", uint64((i*100 + j) % 37)})()
			}
		}()
	}
	wg.Wait()
	if n := l.Len(); n != 0 {
		t.Fatalf("%d lock entries after concurrent moves ended, want 0", n)
	}
}

// TestSerialisesOneKey: two moves of one segment never overlap, a
// move of another segment is not held up, and busy tells a held lock.
func TestSerialisesOneKey(t *testing.T) {
	var l Map[key]
	unlock := l.Lock(key{"s", 1})
	if !l.Busy(key{"s", 1}) || l.Busy(key{"s", 2}) {
		t.Fatal("busy does not tell the held lock from a free one")
	}
	l.Lock(key{"s", 2})() // another segment: not blocked
	got := make(chan struct{})
	go func() {
		l.Lock(key{"s", 1})()
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second move of the segment ran beside the first")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(time.Minute):
		t.Fatal("the second move never got the lock")
	}
	if l.Busy(key{"s", 1}) || l.Len() != 0 {
		t.Fatalf("after both moves: busy %v, %d entries", l.Busy(key{"s", 1}), l.Len())
	}
}
