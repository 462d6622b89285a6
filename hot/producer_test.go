package hot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

func TestAppendAsAppendsARetryOnce(t *testing.T) {
	dir := t.TempDir()
	p := &memPersister{}
	tr := openTier(t, dir, p, nil)
	ctx := context.Background()
	prod := tiers.ProducerID{7}

	first, dup, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 1}, recs("s", 3, 0))
	if err != nil || dup || first != 0 {
		t.Fatalf("batch 1: first %d dup %v err %v", first, dup, err)
	}
	tr.Append(ctx, "s", recs("s", 2, 100)) // another writer in between
	// The retry is answered with the offsets it got, not appended again.
	first, dup, err = tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 1}, recs("s", 3, 0))
	if err != nil || !dup || first != 0 {
		t.Fatalf("retry of batch 1: first %d dup %v err %v", first, dup, err)
	}
	if n := len(readAll(t, tr, "s")); n != 5 {
		t.Fatalf("%d records after the retry, want 5", n)
	}
	first, dup, err = tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 1, 3))
	if err != nil || dup || first != 5 {
		t.Fatalf("batch 2: first %d dup %v err %v", first, dup, err)
	}
	// Out of sequence: an older batch, or the last with other records.
	for _, c := range []struct {
		seq uint64
		n   int
	}{{1, 3}, {2, 2}} {
		if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: c.seq}, recs("s", c.n, 0)); !errors.Is(err, tiers.ErrProducerSequence) {
			t.Fatalf("batch %d of %d records: %v, want ErrProducerSequence", c.seq, c.n, err)
		}
	}
	if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 0}, recs("s", 1, 0)); !errors.Is(err, tiers.ErrProducerSequence) {
		t.Fatalf("sequence 0: %v", err)
	}
	// Producers are per stream: the same ID starts afresh elsewhere.
	if first, dup, err := tr.AppendAs(ctx, "other", tiers.Producer{ID: prod, Seq: 1}, recs("other", 1, 0)); err != nil || dup || first != 0 {
		t.Fatalf("same producer, other stream: first %d dup %v err %v", first, dup, err)
	}

	// After a restart (WAL replay) and after everything is persisted and
	// the WAL checkpointed (the snapshot), a retry is still recognised.
	for round, flush := range []bool{false, true} {
		if flush {
			if err := tr.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		tr = openTier(t, dir, p, func(o *Options) { o.Streams = map[string]uint64{"s": p.next("s"), "other": p.next("other")} })
		first, dup, err = tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 1, 3))
		if err != nil || !dup || first != 5 {
			t.Fatalf("round %d: retry of batch 2 after reopen: first %d dup %v err %v", round, first, dup, err)
		}
		if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 1}, recs("s", 3, 0)); !errors.Is(err, tiers.ErrProducerSequence) {
			t.Fatalf("round %d: batch 1 after reopen: %v", round, err)
		}
		if next := tr.Snapshot("s").Next; next != 6 {
			t.Fatalf("round %d: next offset %d, want 6", round, next)
		}
	}
	tr.Close()
}

func TestAppendAsConcurrentRetriesAppendOnce(t *testing.T) {
	tr := openTier(t, t.TempDir(), &memPersister{}, nil)
	defer tr.Close()
	ctx := context.Background()
	prod := tiers.ProducerID{9}
	var wg sync.WaitGroup
	firsts := make([]uint64, 16)
	dups := make([]bool, 16)
	for i := range firsts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			firsts[i], dups[i], err = tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 1}, recs("s", 4, 0))
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	appended := 0
	for i := range firsts {
		if firsts[i] != 0 {
			t.Fatalf("call %d got offset %d", i, firsts[i])
		}
		if !dups[i] {
			appended++
		}
	}
	if appended != 1 || len(readAll(t, tr, "s")) != 4 {
		t.Fatalf("%d calls appended, %d records stored; want 1 and 4", appended, len(readAll(t, tr, "s")))
	}
}

// A retry answered "duplicate" is readable at once, even while the first
// attempt (which publishes it) has not come back.
func TestRetryAnswerIsReadable(t *testing.T) {
	tr := openTier(t, t.TempDir(), &memPersister{}, nil)
	defer tr.Close()
	ctx := context.Background()
	for i := range 200 {
		stream := fmt.Sprintf("s%d", i)
		p := tiers.Producer{ID: tiers.ProducerID{1}, Seq: 1}
		// The first attempt gives up at once (its caller timed out): the
		// batch is enqueued, and published only when it becomes durable.
		// It may also become durable before the wait notices the caller
		// left (both are ready; select picks either): then it answers.
		gone, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := tr.AppendAs(gone, stream, p, recs(stream, 3, 0)); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("the abandoned attempt: %v", err)
		}
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				first, dup, err := tr.AppendAs(ctx, stream, p, recs(stream, 3, 0))
				if err == nil && dup {
					if sn := tr.Snapshot(stream); sn.Next < first+3 {
						err = fmt.Errorf("%s: duplicate answered at offset %d, but only offsets below %d are readable", stream, first, sn.Next)
					}
				}
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A retry of a batch already stored is answered even while memory is full
// of unpersisted data: it adds nothing, so backpressure does not apply.
func TestRetryIsAnsweredUnderBackpressure(t *testing.T) {
	p := &memPersister{fail: errors.New("disk unavailable")}
	tr := openTier(t, t.TempDir(), p, func(o *Options) { o.MaxBytes = 64 << 10; o.SegmentMaxBytes = 8 << 10 })
	defer tr.Close()
	ctx := context.Background()
	prod := tiers.ProducerID{3}
	var err error
	seq := uint64(0)
	for i := 0; i < 1000 && err == nil; i++ {
		seq++
		_, _, err = tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: seq}, recs("s", 10, i*10))
	}
	if !errors.Is(err, tiers.ErrBackpressure) {
		t.Fatalf("budget never pushed back: %v", err)
	}
	first, dup, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: seq - 1}, recs("s", 10, 0))
	if err != nil || !dup || first != (seq-2)*10 {
		t.Fatalf("retry of the last stored batch under backpressure: first %d dup %v err %v", first, dup, err)
	}
}

// A producer's batch torn by a crash (its frame cut short) was never
// acknowledged: after the restart the table does not hold it, and the
// retry is appended, at the offset the torn attempt would have taken.
func TestRetryOfATornBatchIsAppended(t *testing.T) {
	dir := t.TempDir()
	p := &memPersister{}
	tr := openTier(t, dir, p, nil)
	ctx := context.Background()
	prod := tiers.ProducerID{5}
	if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 1}, recs("s", 2, 0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 3, 2)); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	slices.Sort(files)
	newest := files[len(files)-1]
	st, err := os.Stat(newest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(newest, st.Size()-5); err != nil { // tear batch 2's frame
		t.Fatal(err)
	}
	tr = openTier(t, dir, p, nil)
	defer tr.Close()
	if next := tr.Snapshot("s").Next; next != 2 {
		t.Fatalf("after the torn tail, next offset %d, want 2", next)
	}
	first, dup, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 3, 2))
	if err != nil || dup || first != 2 {
		t.Fatalf("retry of the torn batch: first %d dup %v err %v, want appended at 2", first, dup, err)
	}
	first, dup, err = tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 1}, recs("s", 2, 0))
	if !errors.Is(err, tiers.ErrProducerSequence) {
		t.Fatalf("batch 1 after batch 2: first %d dup %v err %v, want ErrProducerSequence", first, dup, err)
	}
}

// failingSyncs wraps WAL files so that Sync fails while fail is set.
type failingSyncs struct{ fail atomic.Bool }

type failSyncFile struct {
	*os.File
	fs *failingSyncs
}

func (f failSyncFile) Sync() error {
	if f.fs.fail.Load() {
		return errors.New("injected: fsync failed")
	}
	return f.File.Sync()
}

func (fs *failingSyncs) open(path string, flag int, perm os.FileMode) (wal.SegmentFile, error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return failSyncFile{f, fs}, nil
}

// A WAL failure during a producer's batch: the batch and its retry are
// refused (storage failed), and after a restart the retry stores the batch
// once — as a duplicate of the frame the failed fsync left, or afresh —
// never twice.
func TestRetryAfterAWALFailureIsStoredOnce(t *testing.T) {
	dir := t.TempDir()
	p := &memPersister{}
	fs := &failingSyncs{}
	tr := openTier(t, dir, p, func(o *Options) { o.WAL.OpenFile = fs.open })
	ctx := context.Background()
	prod := tiers.ProducerID{8}
	if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 1}, recs("s", 2, 0)); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 3, 2)); !errors.Is(err, tiers.ErrStorageFailed) {
		t.Fatalf("batch 2 with a failing fsync: %v, want ErrStorageFailed", err)
	}
	if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 3, 2)); !errors.Is(err, tiers.ErrStorageFailed) {
		t.Fatalf("its retry before the restart: %v, want ErrStorageFailed", err)
	}
	tr.Close() // reports the failure; the process would restart now
	fs.fail.Store(false)
	tr = openTier(t, dir, p, func(o *Options) { o.Streams = map[string]uint64{"s": p.next("s")} })
	defer tr.Close()
	first, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 3, 2))
	if err != nil || first != 2 {
		t.Fatalf("retry after the restart: first %d err %v, want offset 2", first, err)
	}
	got := readAll(t, tr, "s")
	if len(got) != 5 {
		t.Fatalf("%d records after the retry, want 5 (batch 2 once)", len(got))
	}
	for i, r := range got {
		if want := fmt.Sprintf("s-%d", i); r.Key != want || r.Offset != uint64(i) {
			t.Fatalf("offset %d holds %s at %d, want %s", i, r.Key, r.Offset, want)
		}
	}
}
