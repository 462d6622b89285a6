// Package keylock serialises work on one key while work on other keys runs
// in parallel: the mover's per-segment move locks and the tables loop's
// per-stream locks. An entry lives only while its lock is held or waited
// for, so a Map is bounded by the work in progress, not by every key ever
// locked.
package keylock

import "sync"

// Map is a set of mutexes, one per key in use. The zero value is ready.
type Map[K comparable] struct {
	mu sync.Mutex
	m  map[K]*entry
}

type entry struct {
	mu   sync.Mutex
	refs int // holders and waiters; guarded by Map.mu
}

// Lock waits for k's lock and returns its unlock.
func (l *Map[K]) Lock(k K) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[K]*entry{}
	}
	e := l.m[k]
	if e == nil {
		e = &entry{}
		l.m[k] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, k)
		}
		l.mu.Unlock()
	}
}

// Busy reports whether k's lock is held or waited for.
func (l *Map[K]) Busy(k K) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.m[k]
	return ok
}

// Len is how many keys have an entry: the work in progress.
func (l *Map[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
