package hot

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/tiers"
)

// TestSealPersistsTheActiveSegmentNow: a seal persists the active segment
// before it returns, hours before its age would; a second seal with
// nothing appended seals nothing; an unknown stream is not found.
func TestSealPersistsTheActiveSegmentNow(t *testing.T) {
	ctx := context.Background()
	p := &memPersister{}
	tr := openTier(t, t.TempDir(), p, nil) // segment.max_age 1h: only a seal persists
	defer tr.Close()
	if _, err := tr.Append(ctx, "s", recs("s", 10, 0)); err != nil {
		t.Fatal(err)
	}
	base, sealed, err := tr.Seal(ctx, "s")
	if err != nil || !sealed || base != 0 {
		t.Fatalf("Seal = %d, %v, %v; want 0, true, nil", base, sealed, err)
	}
	if n := p.next("s"); n != 10 {
		t.Fatalf("after the seal answered, %d records are persisted, want 10", n)
	}
	sn := tr.Snapshot("s")
	segs := sn.Segments()
	if len(segs) != 1 || segs[0].Active || !segs[0].Persisted || segs[0].SealedAt.IsZero() || segs[0].Last != 9 {
		t.Fatalf("after the seal: %+v", segs)
	}

	if _, err := tr.Append(ctx, "s", recs("s", 5, 10)); err != nil {
		t.Fatal(err)
	}
	if base, sealed, err = tr.Seal(ctx, "s"); err != nil || !sealed || base != 10 || p.next("s") != 15 {
		t.Fatalf("second Seal = %d, %v, %v with %d persisted; want 10, true, nil, 15", base, sealed, err, p.next("s"))
	}
	if _, sealed, err = tr.Seal(ctx, "s"); err != nil || sealed {
		t.Fatalf("Seal with nothing appended = %v, %v; want false, nil", sealed, err)
	}
	if got := readAll(t, tr, "s"); len(got) != 15 {
		t.Fatalf("read %d records, want 15", len(got))
	}
	if _, _, err := tr.Seal(ctx, "nope"); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("Seal of an unknown stream: %v", err)
	}
}

// TestSealPersistsEarlierSegmentsAndReportsFailure: a seal also persists
// the segments sealed before it (by size) and not yet persisted; while
// persisting fails it answers the failure rather than waiting, and the
// WAL keeps every record, so a restart loses nothing.
func TestSealPersistsEarlierSegmentsAndReportsFailure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	refused := errors.New("disk says no")
	p := &memPersister{fail: refused}
	tr := openTier(t, dir, p, nil)
	// 100 records of ~60 bytes each exceed the 4 KiB segment: sealed by
	// size at the end of the batch, then 3 more in a new active segment.
	if _, err := tr.Append(ctx, "s", recs("s", 100, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Append(ctx, "s", recs("s", 3, 100)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Seal(ctx, "s"); !errors.Is(err, refused) {
		t.Fatalf("Seal while persisting fails: %v, want the persist's error", err)
	}
	// Closed with sealed segments unpersisted: they are in the WAL only.
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.fail = nil
	p.mu.Unlock()
	tr = openTier(t, dir, p, func(o *Options) { o.Streams = map[string]uint64{"s": 0} })
	defer tr.Close()
	if got := readAll(t, tr, "s"); len(got) != 103 {
		t.Fatalf("after a restart, %d records, want 103", len(got))
	}
	// Replay may seal by size; whatever is sealed or active now is
	// persisted by one seal.
	if _, _, err := tr.Seal(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if n := p.next("s"); n != 103 {
		t.Fatalf("after the seal, %d records persisted, want 103", n)
	}
	if _, sealed, err := tr.Seal(ctx, "s"); err != nil || sealed {
		t.Fatalf("Seal with nothing active = %v, %v", sealed, err)
	}
}

// TestSealDuringAppends: seals racing appends to the same stream split it
// into segments without losing, doubling or reordering a record, and each
// seal returns with what it sealed persisted.
func TestSealDuringAppends(t *testing.T) {
	ctx := context.Background()
	p := &memPersister{} // refuses segments out of order
	tr := openTier(t, t.TempDir(), p, nil)
	defer tr.Close()
	const writers, batches, per = 4, 50, 7
	if _, err := tr.Append(ctx, "s", recs("s", per, 0)); err != nil { // the stream exists for the sealer
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				if _, err := tr.Append(ctx, "s", recs("s", per, 0)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	sealed := 0
	var sealer sync.WaitGroup
	sealer.Add(1)
	go func() {
		defer sealer.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			base, ok, err := tr.Seal(ctx, "s")
			if err != nil {
				errs <- err
				return
			}
			if ok {
				sealed++
				if n := p.next("s"); n <= base {
					errs <- errors.New("a seal returned before its segment was persisted")
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	sealer.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, _, err := tr.Seal(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	const total = (writers*batches + 1) * per
	if n := p.next("s"); n != total {
		t.Fatalf("%d records persisted, want %d", n, total)
	}
	p.mu.Lock()
	for i, r := range p.segs["s"] {
		if r.Offset != uint64(i) {
			p.mu.Unlock()
			t.Fatalf("persisted record %d has offset %d", i, r.Offset)
		}
	}
	p.mu.Unlock()
	if sealed < 2 {
		t.Fatalf("only %d seals sealed something; the test exercised too little", sealed)
	}
	t.Logf("%d seals split %d records", sealed, total)
}

// TestSealRacingClose: seals in progress when the tier closes end with
// nil or tiers.ErrClosed, never with a persist or checkpoint on a closed
// WAL; Close waits for a persist under way.
func TestSealRacingClose(t *testing.T) {
	ctx := context.Background()
	p := &memPersister{}
	tr := openTier(t, t.TempDir(), p, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if _, err := tr.Append(ctx, "s", recs("s", 3, 0)); err != nil {
					if !errors.Is(err, tiers.ErrClosed) {
						errs <- err
					}
					return
				}
				if _, _, err := tr.Seal(ctx, "s"); err != nil {
					if !errors.Is(err, tiers.ErrClosed) {
						errs <- err
					}
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("during Close: %v", err)
	}
}
