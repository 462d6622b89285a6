package hot

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/tiers"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// appendRetrying appends, waiting out backpressure until deadline.
func appendRetrying(t *testing.T, tr *Tier, stream string, batch []tiers.Record, deadline time.Time) {
	t.Helper()
	for {
		_, err := tr.Append(context.Background(), stream, batch)
		if !errors.Is(err, tiers.ErrBackpressure) {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("append to %s refused for lack of budget until the deadline: %v (%+v)", stream, err, tr.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPerStreamOverheadIsSmall: a stream holding a few small records costs
// the heap well under a kilobyte and a half, records included (it was
// about 4.6 KiB: every segment's arena started at 4 KiB), and the budget
// counts at least what its segment really took.
func TestPerStreamOverheadIsSmall(t *testing.T) {
	tr := openTier(t, t.TempDir(), &memPersister{}, nil)
	defer tr.Close()
	const n = 2000
	names := make([]string, n) // the server holds the name anyway
	for i := range names {
		names[i] = fmt.Sprintf("stream-%06d", i)
	}
	before := liveHeap()
	for i := range n {
		b := make([]tiers.Record, 3) // garbage once appended, as a request's
		for j := range b {
			b[j] = tiers.Record{TS: int64(j), Key: "k", Value: make([]byte, 100)}
		}
		if _, err := tr.Append(context.Background(), names[i], b); err != nil {
			t.Fatal(err)
		}
	}
	grew := liveHeap() - before
	st := tr.Stats()
	perStream, counted := grew/n, st.Bytes/n
	t.Logf("per stream: %d heap bytes, %d counted in the budget", perStream, counted)
	if perStream > 1536 {
		t.Errorf("a stream with 3 records of 100 B costs %d heap bytes, want at most 1536", perStream)
	}
	if enc := int64(3 * tiers.EncodedLen(&tiers.Record{TS: 1, Key: "k", Value: make([]byte, 100)})); counted < enc || counted > 1024 {
		t.Errorf("the budget counts %d bytes per stream, want between the records' %d and 1024", counted, enc)
	}
	runtime.KeepAlive(names)
}

// TestBudgetCountsTheHeap: what the budget counts for a resident segment
// (chunks, index, overhead) is what the heap holds for it, within a tenth.
// Counting only the encoded records (the index's 12 bytes per record and
// the chunks' slack missed) made RSS outgrow hot.max_bytes.
func TestBudgetCountsTheHeap(t *testing.T) {
	tr := openTier(t, t.TempDir(), &memPersister{fail: errors.New("keep everything unpersisted")}, func(o *Options) {
		o.MaxBytes = 64 << 20
		o.SegmentMaxBytes = 64 << 20
	})
	defer tr.Close()
	batch := make([]tiers.Record, 100)
	for i := range batch {
		batch[i] = tiers.Record{TS: int64(i), Value: make([]byte, 20)}
	}
	before := liveHeap()
	for range 400 {
		if _, err := tr.Append(context.Background(), "s", batch); err != nil {
			t.Fatal(err)
		}
	}
	grew := liveHeap() - before
	st := tr.Stats()
	t.Logf("heap grew %d bytes, budget counts %d (%d records)", grew, st.Bytes, 40000)
	if float64(grew) > 1.1*float64(st.Bytes)+64<<10 || float64(grew) < 0.9*float64(st.Bytes) {
		t.Errorf("heap grew %d bytes for the segment, the budget counts %d: not within a tenth", grew, st.Bytes)
	}
	if st.Unpersisted != st.Bytes {
		t.Errorf("unpersisted %d, resident %d: nothing was persisted, they must agree", st.Unpersisted, st.Bytes)
	}
}

// TestUnpersistedStaysWithinBudgetUnderConcurrency: appends to many
// streams at once, with nothing persisting, never take unpersisted memory
// over the budget: each reserves what it will allocate first.
func TestUnpersistedStaysWithinBudgetUnderConcurrency(t *testing.T) {
	const budget = 256 << 10
	tr := openTier(t, t.TempDir(), &memPersister{fail: errors.New("disk unavailable")}, func(o *Options) {
		o.MaxBytes = budget
		o.SegmentMaxBytes = 64 << 10
	})
	defer tr.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				_, err := tr.Append(context.Background(), fmt.Sprintf("s%d", (g*7+i)%16), recs("s", 1+i%20, i))
				if errors.Is(err, tiers.ErrBackpressure) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := tr.Stats(); st.Unpersisted > budget || st.Bytes > budget {
		t.Fatalf("unpersisted %d, resident %d: over the budget of %d", st.Unpersisted, st.Bytes, budget)
	}
}

// TestBudgetFullOfActiveSegmentsSeals: more streams than fit a segment each
// fill the budget with active segments, none reaching segment.max_bytes.
// Appends must resume once the flusher seals and persists some of them,
// not wait for segment.max_age (an hour here) while every append is
// refused.
func TestBudgetFullOfActiveSegmentsSeals(t *testing.T) {
	p := &memPersister{}
	tr := openTier(t, t.TempDir(), p, func(o *Options) {
		o.MaxBytes = 64 << 10
		o.SegmentMaxBytes = 48 << 10
		o.Tick = 10 * time.Millisecond
	})
	defer tr.Close()
	deadline := time.Now().Add(time.Minute)
	appended := map[string]int{}
	for i := 0; i < 800; i++ { // about 4 budgets' worth
		s := fmt.Sprintf("s%d", i%8)
		appendRetrying(t, tr, s, recs(s, 10, appended[s]), deadline)
		appended[s] += 10
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for s, n := range appended {
		if got := p.next(s); got != uint64(n) {
			t.Errorf("%s: %d records persisted, %d appended", s, got, n)
		}
	}
}
