package reader

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

// hang is the bound on a wake: a hang is minutes, a pass is seconds.
const hang = time.Minute

// listening waits until the reader's listener has connected n times.
func listening(t *testing.T, r *Reader, n uint64) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for {
		r.waits.mu.Lock()
		got := r.waits.resets
		r.waits.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener connected %d times in %s, want %d", got, hang, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAsync starts WaitFor and returns the channel of its result.
func waitAsync(r *Reader, stream string, offset uint64) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*hang)
		defer cancel()
		ch <- r.WaitFor(ctx, stream, offset)
	}()
	return ch
}

func blocked(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s: WaitFor returned %v before a commit of the stream", what, err)
	case <-time.After(300 * time.Millisecond):
	}
}

func woken(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(hang):
		t.Fatalf("%s: not woken within %s", what, hang)
	}
}

// TestWaitForWakes: a long poll returns once another connection commits
// and notifies, for its stream only, and at once when the offset is
// already committed.
func TestWaitForWakes(t *testing.T) {
	e := newEnv(t)
	r := e.reader(Options{})
	listening(t, r, 1)

	ch := waitAsync(r, "s", 0) // a stream that does not exist yet
	blocked(t, ch, "new stream")
	e.commit(batch{"s", records(3, t0, 0)})
	woken(t, ch, "first commit")

	ch = waitAsync(r, "s", 3)
	blocked(t, ch, "offset 3")
	e.commit(batch{"other", records(2, t0, 0)})
	blocked(t, ch, "after a commit of another stream")
	e.commit(batch{"s", records(1, t0, 1)})
	woken(t, ch, "second commit")

	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := r.WaitFor(ctx, "s", 3); err != nil {
		t.Fatalf("committed offset: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := r.WaitFor(short, "s", 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("uncommitted offset: %v, want the context's deadline", err)
	}
	r.waits.mu.Lock()
	left := len(r.waits.streams)
	r.waits.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d streams' waiters left behind after every wait ended", left)
	}
}

// TestWaitForSurvivesRestart: a waiter registered before PostgreSQL
// restarts wakes for a commit made after it, whether or not the listener
// has listened again when the commit notifies.
func TestWaitForSurvivesRestart(t *testing.T) {
	e := newEnvPG(t, testenv.StartDedicatedPostgres(t))
	gate := make(chan struct{})
	r := e.reader(Options{beforeReconnect: func() { <-gate }})
	e.commit(batch{"s", records(2, t0, 0)})
	listening(t, r, 1)
	ch := waitAsync(r, "s", 2)
	blocked(t, ch, "before the restart")

	e.pg.Restart()
	e.pool.Reset() // the pool's connections died with the server
	// Committed while the listener is held back from reconnecting: the
	// notification is lost, and the reconnect's wake must find the commit.
	e.commit(batch{"s", records(1, t0, 1)})
	blocked(t, ch, "nobody listening")
	close(gate)
	woken(t, ch, "commit after a restart")
	listening(t, r, 2)

	// And notifications flow on the new connection.
	ch = waitAsync(r, "s", 3)
	blocked(t, ch, "after the reconnect")
	e.commit(batch{"s", records(1, t0, 2)})
	woken(t, ch, "commit on the new connection")
}

func TestParsePayload(t *testing.T) {
	for _, c := range []struct {
		in     string
		stream string
		next   uint64
		ok     bool
	}{
		{"s:12", "s", 12, true},
		{"a:b:7", "a:b", 7, true},
		{"s:", "", 0, false},
		{":3", "", 0, false},
		{"s:-1", "", 0, false},
		{"nocolon", "", 0, false},
	} {
		s, n, ok := parsePayload(c.in)
		if s != c.stream || n != c.next || ok != c.ok {
			t.Errorf("parsePayload(%q) = %q, %d, %v", c.in, s, n, ok)
		}
	}
}

// TestCatalogDown: with PostgreSQL stopped, a read fails with
// tiers.ErrStorageUnavailable (a 503) and the start of a long poll with
// ErrCatalogUnavailable (which wraps it), not a hang; once it is back
// they work again.
func TestCatalogDown(t *testing.T) {
	e := newEnvPG(t, testenv.StartDedicatedPostgres(t))
	all := fill(e, 1)
	r := e.reader(Options{})
	e.pg.Stop()
	_, err := readAll(t, r, "s", tiers.AllRecords())
	if !errors.Is(err, tiers.ErrStorageUnavailable) { // from pgcatalog or the reader's own query
		t.Fatalf("read with PostgreSQL down: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := r.WaitFor(ctx, "s", 100); !errors.Is(err, ErrCatalogUnavailable) {
		t.Fatalf("WaitFor with PostgreSQL down: %v", err)
	}
	e.pg.Start()
	e.pool.Reset()
	got, err := readAll(t, r, "s", tiers.AllRecords())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "PostgreSQL back", got, all)
}

// TestWaitForClosed: Close ends a waiting long poll with tiers.ErrClosed.
func TestWaitForClosed(t *testing.T) {
	e := newEnv(t)
	r := e.reader(Options{})
	ch := waitAsync(r, "s", 0)
	blocked(t, ch, "open reader")
	r.Close()
	select {
	case err := <-ch:
		if !errors.Is(err, tiers.ErrClosed) {
			t.Fatalf("after Close: %v, want ErrClosed", err)
		}
	case <-time.After(hang):
		t.Fatal("Close did not end the wait")
	}
}
