package engine

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

func TestWaitForWakesOnAppend(t *testing.T) {
	e, err := Open(context.Background(), Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	ctx := context.Background()

	// A stream that does not exist yet is waited for.
	woke := make(chan error, 1)
	go func() { woke <- e.WaitFor(ctx, "s", 0) }()
	select {
	case err := <-woke:
		t.Fatalf("WaitFor returned %v before any append", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := e.Append(ctx, "s", []tiers.Record{{Value: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatalf("WaitFor after the append: %v", err)
	}

	// An offset already held returns at once; one above waits for its ctx.
	if err := e.WaitFor(ctx, "s", 0); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := e.WaitFor(short, "s", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor offset 1 with nothing appended: %v", err)
	}
	// An append to another stream does not wake a waiter for good.
	go func() { woke <- e.WaitFor(ctx, "s", 1) }()
	time.Sleep(20 * time.Millisecond)
	e.Append(ctx, "other", []tiers.Record{{Value: []byte("x")}})
	select {
	case err := <-woke:
		t.Fatalf("WaitFor on s returned %v after an append to other", err)
	case <-time.After(50 * time.Millisecond):
	}
	e.Append(ctx, "s", []tiers.Record{{Value: []byte("b")}})
	if err := <-woke; err != nil {
		t.Fatal(err)
	}
	if err := e.WaitFor(ctx, "bad name!", 0); !errors.Is(err, tiers.ErrInvalidStreamName) {
		t.Fatalf("invalid name: %v", err)
	}
}

// gatedSync wraps WAL files so that, once armed, the next Sync reports on
// entered and blocks until release is closed.
type gatedSync struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

type gatedFile struct {
	*os.File
	g *gatedSync
}

func (f gatedFile) Sync() error {
	if f.g.armed.CompareAndSwap(true, false) {
		close(f.g.entered)
		<-f.g.release
	}
	return f.File.Sync()
}

func (g *gatedSync) open(path string, flag int, perm os.FileMode) (wal.SegmentFile, error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g}, nil
}

// An append whose client went away while its batch was in the WAL's group
// commit still wakes a long-polling reader when the batch becomes durable
// and visible, and the reader reads it: the wake comes from where records
// become visible, not from the append's success. The reader's deadline is
// long, so a wait that ends at it is a missed wake.
func TestWaitForWakesOnALatePublish(t *testing.T) {
	g := &gatedSync{entered: make(chan struct{}), release: make(chan struct{})}
	e, err := Open(context.Background(), Options{DataDir: t.TempDir(), WALOpenFile: g.open})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	ctx := context.Background()
	var release sync.Once
	defer release.Do(func() { close(g.release) })

	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	woke := make(chan error, 1)
	go func() { woke <- e.WaitFor(wctx, "s", 0) }()

	g.armed.Store(true)
	actx, cancel := context.WithCancel(ctx)
	appended := make(chan error, 1)
	go func() {
		_, err := e.Append(actx, "s", []tiers.Record{{Key: "k0", Value: []byte("a")}, {Key: "k1", Value: []byte("b")}})
		appended <- err
	}()
	select {
	case <-g.entered: // the batch is written; its fsync is under way
	case <-time.After(time.Minute):
		t.Fatal("the append's fsync never started")
	}
	cancel()
	if err := <-appended; !errors.Is(err, context.Canceled) {
		t.Fatalf("append cancelled during its fsync: %v, want context.Canceled", err)
	}
	select {
	case err := <-woke:
		t.Fatalf("WaitFor returned %v before the batch was durable", err)
	case <-time.After(50 * time.Millisecond):
	}
	release.Do(func() { close(g.release) })
	if err := <-woke; err != nil {
		t.Fatalf("WaitFor after the late publish: %v", err)
	}
	var keys []string
	for it, err := range e.Read(ctx, "s", tiers.AllRecords()) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, it.Key)
	}
	if strings.Join(keys, ",") != "k0,k1" {
		t.Fatalf("the woken reader reads %q, want k0,k1", keys)
	}
}
