package engine

import (
	"context"
	"errors"
	"testing"
	"time"

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
