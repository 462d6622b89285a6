package hot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/hot/wal"
)

// closed reports whether ch is closed now.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// A reader waiting on one stream is woken by that stream's appends only:
// its channel stays open through appends to another stream, whether the
// stream it waits on is known yet or not.
func TestWaitIsWokenOnlyByItsStream(t *testing.T) {
	tr := openTier(t, t.TempDir(), &memPersister{}, nil)
	defer tr.Close()
	ctx := context.Background()
	if _, err := tr.Append(ctx, "a", recs("a", 1, 0)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "unknown-yet"} {
		w, ch := tr.watch(name)
		for i := range 20 {
			if _, err := tr.Append(ctx, "b", recs("b", 2, 2*i)); err != nil {
				t.Fatal(err)
			}
		}
		if closed(ch) {
			t.Fatalf("a reader of %s was woken by appends to b", name)
		}
		if _, err := tr.Append(ctx, name, recs(name, 1, 0)); err != nil {
			t.Fatal(err)
		}
		if !closed(ch) {
			t.Fatalf("a reader of %s was not woken by an append to %s", name, name)
		}
		tr.unwatch(w)
	}

	// Through WaitFor: appends to b while a reader waits on a past its
	// end; the wait ends at its deadline, then at a's append.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- tr.WaitFor(short, "a", 2) }()
	for i := range 10 {
		if _, err := tr.Append(ctx, "b", recs("b", 1, 40+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor on a with appends to b only: %v, want the deadline", err)
	}
	go func() { errc <- tr.WaitFor(ctx, "a", 2) }()
	if _, err := tr.Append(ctx, "a", recs("a", 1, 2)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("WaitFor on a did not return after a's append")
	}
	if err := tr.WaitFor(ctx, "a", 2); err != nil {
		t.Fatalf("an offset held already: %v", err)
	}
}

// gatedSyncs wraps WAL files so that, while armed, Sync reports on entered
// and blocks until release is closed.
type gatedSyncs struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

type gatedFile struct {
	*os.File
	g *gatedSyncs
}

func (f gatedFile) Sync() error {
	f.g.mu.Lock()
	armed := f.g.armed
	f.g.armed = false
	f.g.mu.Unlock()
	if armed {
		close(f.g.entered)
		<-f.g.release
	}
	return f.File.Sync()
}

func (g *gatedSyncs) open(path string, flag int, perm os.FileMode) (wal.SegmentFile, error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g}, nil
}

// An append whose caller went away while its batch was in the WAL's group
// commit is published when the fsync completes, and that late publish
// wakes a waiting reader, who then reads the records.
func TestLatePublishWakesReaders(t *testing.T) {
	g := &gatedSyncs{entered: make(chan struct{}), release: make(chan struct{})}
	tr := openTier(t, t.TempDir(), &memPersister{}, func(o *Options) { o.WAL.OpenFile = g.open })
	defer tr.Close()
	ctx := context.Background()
	released := false
	defer func() {
		if !released {
			close(g.release)
		}
	}()

	waited := make(chan error, 1)
	go func() { waited <- tr.WaitFor(ctx, "s", 0) }()

	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
	actx, cancel := context.WithCancel(ctx)
	appended := make(chan error, 1)
	go func() {
		_, err := tr.Append(actx, "s", recs("s", 3, 0))
		appended <- err
	}()
	select {
	case <-g.entered: // the batch is written; its fsync is under way
	case <-time.After(time.Minute):
		t.Fatal("the append's fsync never started")
	}
	cancel()
	if err := <-appended; !errors.Is(err, context.Canceled) {
		t.Fatalf("append with its context cancelled in the fsync: %v", err)
	}
	select {
	case err := <-waited:
		t.Fatalf("the reader returned (%v) before the records were durable", err)
	case <-time.After(50 * time.Millisecond):
	}

	close(g.release)
	released = true
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the late publish did not wake the reader")
	}
	got := readAll(t, tr, "s")
	if len(got) != 3 {
		t.Fatalf("the reader reads %d records after the wake, want 3", len(got))
	}
	for i, r := range got {
		if want := fmt.Sprintf("s-%d", i); r.Offset != uint64(i) || r.Key != want {
			t.Fatalf("record %d: offset %d key %q, want %d %q", i, r.Offset, r.Key, i, want)
		}
	}
}

// Readers that leave, by their deadline or once woken, leave nothing
// behind: no pending entry for a name never appended to, no waiters on a
// stream.
func TestWaitersLeaveNothingBehind(t *testing.T) {
	tr := openTier(t, t.TempDir(), &memPersister{}, nil)
	defer tr.Close()
	ctx := context.Background()
	if _, err := tr.Append(ctx, "known", recs("known", 1, 0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			names := []string{"known", fmt.Sprintf("never-%d", i%5), "late"}
			tr.WaitFor(short, names[i%3], 1)
		}()
	}
	for i := range 5 {
		if _, err := tr.Append(ctx, "late", recs("late", 1, i)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	tr.waits.mu.Lock()
	defer tr.waits.mu.Unlock()
	if n := len(tr.waits.pending); n != 0 {
		t.Fatalf("%d pending waiter entries left after every reader left", n)
	}
	for _, name := range tr.StreamNames() {
		if w := tr.getStream(name).waiting.Load(); w != nil {
			t.Fatalf("stream %s keeps waiters (%d registered) after every reader left", name, w.n)
		}
	}
}
