package wal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/tierd/tierd/internal/vfs"
)

// TestCrashEveryCall runs the log on a crashable memory filesystem whose
// disk dies after its Nth mutating call, for every N of the workload, then
// crashes it (keeping, in most runs, random torn tails and unsynced
// directory changes) and checks what Open replays: every acknowledged
// batch, in order, then at most the batch in flight, whole; and a second
// crash right after that recovery replays the same (the repair itself is
// durable). It also lets the process die with the disk intact: what
// recovery replays then must survive a power loss right after it.
func TestCrashEveryCall(t *testing.T) {
	batches := genBatches(3, 80, 3, 60)
	opts := func(fsys vfs.FS) Options {
		return Options{Dir: "/data/wal", FS: fsys, SegmentBytes: 1 << 10}
	}
	// acked enqueues batches in turn until one fails; it returns how many
	// were acknowledged.
	acked := func(m *vfs.MemFS) int {
		w, err := Open(context.Background(), opts(m), nil)
		if err != nil {
			return 0
		}
		defer w.Close()
		for i, b := range batches {
			if err := w.Enqueue(b).Wait(context.Background()); err != nil {
				return i
			}
		}
		return len(batches)
	}
	replayed := func(t *testing.T, fsys vfs.FS) []Batch {
		t.Helper()
		var got []Batch
		w, err := Open(context.Background(), opts(fsys), func(b Batch) error {
			got = append(got, b)
			return nil
		})
		if err != nil {
			t.Fatalf("Open after the crash: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	m := vfs.NewCrashableMem()
	if n := acked(m); n != len(batches) {
		t.Fatalf("without a crash %d of %d batches were acknowledged", n, len(batches))
	}
	total := m.MutatingOps()
	if total < 200 {
		t.Fatalf("the workload makes %d mutating calls; want at least 200 crash points", total)
	}
	for n := range total + 1 {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := vfs.NewCrashableMem()
			m.FailAfter(n, syscall.EIO)
			ok := acked(m)
			crash := vfs.CrashOptions{}
			if n%4 != 0 {
				crash = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(n), 3)), TornProb: 0.7, DirProb: 0.3}
			}
			after := m.CrashClone(crash)
			got := replayed(t, after)
			if len(got) < ok || len(got) > ok+1 {
				t.Fatalf("%d batches acknowledged, %d replayed", ok, len(got))
			}
			if err := batchesEqual(got, batches[:len(got)]); err != nil {
				t.Fatal(err)
			}
			again := replayed(t, after.CrashClone(vfs.CrashOptions{}))
			if err := batchesEqual(again, got); err != nil {
				t.Fatalf("a second crash after recovery: %v", err)
			}

			// The process dies instead, the disk keeps all it was given:
			// what recovery replays (and the caller serves) must survive
			// a power loss right after it.
			m.FailAfter(-1, nil)
			live := replayed(t, m)
			if len(live) < ok {
				t.Fatalf("%d batches acknowledged, %d replayed after a process crash", ok, len(live))
			}
			if err := batchesEqual(replayed(t, m.CrashClone(vfs.CrashOptions{})), live); err != nil {
				t.Fatalf("a power loss after recovering from a process crash: %v", err)
			}
		})
	}
}
