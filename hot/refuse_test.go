package hot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

// noFiles is a WAL file seam that cannot create files while armed: the
// process is out of descriptors.
type noFiles struct{ on atomic.Bool }

func (n *noFiles) open(path string, flag int, perm os.FileMode) (wal.SegmentFile, error) {
	if n.on.Load() && strings.HasSuffix(path, ".tmp") {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EMFILE}
	}
	return os.OpenFile(path, flag, perm)
}

// checkDense fails unless stream's records in memory are exactly want's
// keys at offsets 0, 1, 2, ...
func checkDense(t *testing.T, tr *Tier, stream string, want []string) {
	t.Helper()
	got := readAll(t, tr, stream)
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", stream, len(got), len(want))
	}
	for i, r := range got {
		if r.Offset != uint64(i) || r.Key != want[i] {
			t.Fatalf("%s: position %d holds %q at offset %d, want %q at %d", stream, i, r.Key, r.Offset, want[i], i)
		}
	}
}

// keys returns the keys recs("s", n, from) has.
func keys(stream string, n, from int) []string {
	var out []string
	for _, r := range recs(stream, n, from) {
		out = append(out, r.Key)
	}
	return out
}

// A batch the WAL refuses with nothing written (the next file cannot be
// created) is taken back: its offsets go to the next batch, memory and the
// budget are as before, and nothing of it is read, persisted or replayed.
func TestRefusedAppendIsTakenBack(t *testing.T) {
	dir := t.TempDir()
	p := &memPersister{}
	nf := &noFiles{}
	tr := openTier(t, dir, p, func(o *Options) {
		o.SegmentMaxBytes = 600 // a refused batch may seal the segment it lands in
		o.WAL.SegmentBytes = 1  // every append rotates
		o.WAL.OpenFile = nf.open
		o.WAL.RetryInterval = time.Hour
	})
	ctx := context.Background()
	if _, err := tr.Append(ctx, "s", recs("s", 3, 0)); err != nil {
		t.Fatal(err)
	}
	before := tr.Stats()

	nf.on.Store(true)
	for i := range 5 {
		_, err := tr.Append(ctx, "s", recs("x", 20, 100*i))
		if !errors.Is(err, tiers.ErrStorageUnavailable) || tiers.StorageCause(err) != tiers.CauseDescriptors {
			t.Fatalf("append %d while out of descriptors: %v, want ErrStorageUnavailable (out_of_descriptors)", i, err)
		}
	}
	after := tr.Stats()
	// A refused batch may have sealed the segment it landed in (then
	// persisted with the records before it); it holds no memory. (The
	// index it grew is copied back to fit the records kept, which may
	// take less than before.)
	if after.Bytes > before.Bytes || after.Unpersisted > before.Unpersisted {
		t.Errorf("memory %d (unpersisted %d) after refused appends, was %d (%d)", after.Bytes, after.Unpersisted, before.Bytes, before.Unpersisted)
	}
	if after.WAL.Refused == nil || after.WAL.Failed != nil {
		t.Errorf("WAL stats: refused %v, failed %v", after.WAL.Refused, after.WAL.Failed)
	}
	checkDense(t, tr, "s", keys("s", 3, 0))
	if sn := tr.Snapshot("s"); sn.Next != 3 {
		t.Fatalf("Next = %d after refused appends, want 3", sn.Next)
	}

	nf.on.Store(false)
	first, err := tr.Append(ctx, "s", recs("s", 40, 3))
	if err != nil || first != 3 {
		t.Fatalf("append after the condition cleared: first %d, %v; want offset 3", first, err)
	}
	want := keys("s", 43, 0)
	checkDense(t, tr, "s", want)
	tr.Close()

	// The WAL holds exactly the acknowledged batches above what was
	// persisted: a restart persists the same stream, densely.
	tr = openTier(t, dir, p, func(o *Options) { o.Streams = map[string]uint64{"s": p.next("s")} })
	defer tr.Close()
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	persisted := append([]tiers.Record(nil), p.segs["s"]...)
	p.mu.Unlock()
	if len(persisted) != len(want) {
		t.Fatalf("persisted %d records, want %d", len(persisted), len(want))
	}
	for i, r := range persisted {
		if r.Key != want[i] || r.Offset != uint64(i) {
			t.Fatalf("persisted position %d: %q at %d, want %q", i, r.Key, r.Offset, want[i])
		}
	}
}

// Appends racing a refusal, on several streams: every acknowledged batch is
// read back at its offsets, densely, every refused one is absent, and a
// restart replays the same.
func TestConcurrentAppendsAcrossARefusal(t *testing.T) {
	dir := t.TempDir()
	nf := &noFiles{}
	tr := openTier(t, dir, &memPersister{}, func(o *Options) {
		o.SegmentMaxBytes = 64 << 20 // nothing sealed, persisted or checkpointed: the WAL holds it all
		o.WAL.SegmentBytes = 2 << 10
		o.WAL.OpenFile = nf.open
		o.WAL.RetryInterval = 5 * time.Millisecond
	})
	ctx := context.Background()
	type ack struct {
		first uint64
		key   string
	}
	var (
		mu    sync.Mutex
		acked = map[string][]ack{}
		wg    sync.WaitGroup
		stop  atomic.Bool
	)
	refused := atomic.Int64{}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("s%d", w%3)
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				batch := []tiers.Record{{Key: key, Value: []byte(key)}, {Key: key, Value: []byte(key)}}
				first, err := tr.Append(ctx, stream, batch)
				switch {
				case err == nil:
					mu.Lock()
					acked[stream] = append(acked[stream], ack{first, key})
					mu.Unlock()
				case errors.Is(err, tiers.ErrStorageUnavailable):
					refused.Add(1)
				default:
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	for range 20 {
		time.Sleep(5 * time.Millisecond)
		nf.on.Store(true)
		time.Sleep(5 * time.Millisecond)
		nf.on.Store(false)
	}
	stop.Store(true)
	wg.Wait()
	if refused.Load() == 0 {
		t.Fatal("no append was refused: the test did not test")
	}
	check := func(tr *Tier) {
		t.Helper()
		for stream, as := range acked {
			got := readAll(t, tr, stream)
			if len(got) != 2*len(as) {
				t.Fatalf("%s: %d records, %d acknowledged", stream, len(got), 2*len(as))
			}
			for _, a := range as {
				for j := range 2 {
					if r := got[a.first+uint64(j)]; r.Key != a.key || r.Offset != a.first+uint64(j) {
						t.Fatalf("%s: offset %d holds %q, acknowledged %q", stream, a.first+uint64(j), r.Key, a.key)
					}
				}
			}
		}
	}
	check(tr)
	tr.Close()
	tr = openTier(t, dir, &memPersister{}, nil)
	defer tr.Close()
	check(tr)
}

// An idempotent producer's refused batch is not its last: a retry after
// the condition clears is appended (once), not answered as a duplicate of
// a batch that was never stored.
func TestRefusedProducerBatchIsAppendedOnRetry(t *testing.T) {
	dir := t.TempDir()
	nf := &noFiles{}
	tr := openTier(t, dir, &memPersister{}, func(o *Options) {
		o.SegmentMaxBytes = 64 << 20 // nothing persisted: the WAL holds it all
		o.WAL.SegmentBytes = 1
		o.WAL.OpenFile = nf.open
		o.WAL.RetryInterval = time.Hour
	})
	ctx := context.Background()
	prod := tiers.ProducerID{9}
	if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 1}, recs("s", 2, 0)); err != nil {
		t.Fatal(err)
	}
	nf.on.Store(true)
	for range 2 {
		if _, _, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 3, 2)); !errors.Is(err, tiers.ErrStorageUnavailable) {
			t.Fatalf("batch 2 while out of descriptors: %v", err)
		}
	}
	// Its predecessor is still the producer's last batch.
	if first, dup, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 1}, recs("s", 2, 0)); err != nil || !dup || first != 0 {
		t.Fatalf("retry of batch 1: first %d dup %v err %v, want the duplicate at 0", first, dup, err)
	}
	nf.on.Store(false)
	first, dup, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 3, 2))
	if err != nil || dup || first != 2 {
		t.Fatalf("batch 2 after the condition cleared: first %d dup %v err %v, want appended at 2", first, dup, err)
	}
	if first, dup, err := tr.AppendAs(ctx, "s", tiers.Producer{ID: prod, Seq: 2}, recs("s", 3, 2)); err != nil || !dup || first != 2 {
		t.Fatalf("retry of batch 2: first %d dup %v err %v, want the duplicate at 2", first, dup, err)
	}
	checkDense(t, tr, "s", keys("s", 5, 0))
	tr.Close()
	tr = openTier(t, dir, &memPersister{}, nil)
	defer tr.Close()
	checkDense(t, tr, "s", keys("s", 5, 0))
}

// A persist that fails is retried by the flusher with a growing wait, shows
// in Stats, and turns backpressure into a storage error naming it; once
// persisting works again everything is persisted and Stats clear.
func TestPersistFailureIsRetried(t *testing.T) {
	dir := t.TempDir()
	p := &memPersister{}
	full := fmt.Errorf("warm: create: %w", syscall.ENOSPC)
	p.fail = full
	tr := openTier(t, dir, p, func(o *Options) {
		o.MaxBytes = 64 << 10
		o.SegmentMaxBytes = 4 << 10
		o.Tick = 5 * time.Millisecond
	})
	defer tr.Close()
	ctx := context.Background()
	var err error
	n := 0
	for ; err == nil && n < 10000; n++ {
		_, err = tr.Append(ctx, "s", recs("s", 10, n*10))
	}
	if !errors.Is(err, tiers.ErrBackpressure) || !errors.Is(err, tiers.ErrStorageUnavailable) || tiers.StorageCause(err) != tiers.CauseDiskFull {
		t.Fatalf("append with persisting failing: %v, want backpressure naming the full disk", err)
	}
	st := tr.Stats()
	if !errors.Is(st.PersistFailed, syscall.ENOSPC) || st.PersistFailedSince.IsZero() {
		t.Fatalf("Stats: PersistFailed %v since %v", st.PersistFailed, st.PersistFailedSince)
	}
	p.mu.Lock()
	p.fail = nil
	p.mu.Unlock()
	for deadline := time.Now().Add(30 * time.Second); tr.Stats().PersistFailed != nil || tr.Stats().Unpersisted > 4<<10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the flusher did not resume persisting: %+v", tr.Stats())
		}
	}
	if _, err := tr.Append(ctx, "s", recs("s", 10, n*10)); err != nil {
		t.Fatalf("append after persisting resumed: %v", err)
	}
}
