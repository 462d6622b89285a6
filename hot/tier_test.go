package hot

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

// memPersister keeps persisted segments in memory; fail makes it refuse.
type memPersister struct {
	mu   sync.Mutex
	segs map[string][]tiers.Record // by stream, in persist order
	fail error
}

func (p *memPersister) Persist(ctx context.Context, seg *SealedSegment) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	if p.segs == nil {
		p.segs = map[string][]tiers.Record{}
	}
	have := p.segs[seg.Stream]
	if len(have) > 0 && have[len(have)-1].Offset+1 != seg.Base {
		return fmt.Errorf("persisted out of order: have up to %d, got base %d", have[len(have)-1].Offset, seg.Base)
	}
	for r, err := range seg.Records() {
		if err != nil {
			return err
		}
		r.Value = append([]byte(nil), r.Value...)
		p.segs[seg.Stream] = append(p.segs[seg.Stream], r)
	}
	return nil
}

func (p *memPersister) next(stream string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return uint64(len(p.segs[stream]))
}

func openTier(t *testing.T, dir string, p *memPersister, mod func(*Options)) *Tier {
	t.Helper()
	o := Options{
		SegmentMaxBytes: 4 << 10,
		SegmentMaxAge:   time.Hour,
		Residency:       time.Hour,
		WAL:             wal.Options{Dir: filepath.Join(dir, "wal"), SegmentBytes: 32 << 10},
		Persister:       p,
	}
	if mod != nil {
		mod(&o)
	}
	tr, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func recs(stream string, n, from int) []tiers.Record {
	out := make([]tiers.Record, n)
	for i := range out {
		out[i] = tiers.Record{TS: int64(from + i), Key: fmt.Sprintf("%s-%d", stream, from+i), Tags: []string{"t"}, Value: []byte(fmt.Sprintf(`{"n":%d}`, from+i))}
	}
	return out
}

func readAll(t *testing.T, tr *Tier, stream string) []tiers.Record {
	t.Helper()
	sn := tr.Snapshot(stream)
	var out []tiers.Record
	for r, err := range sn.Scan(tiers.AllRecords()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestConcurrentAppendsAreDenseAndReadable(t *testing.T) {
	tr := openTier(t, t.TempDir(), &memPersister{}, nil)
	defer tr.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	streams := []string{"a", "b", "c"}
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := streams[w%3]
			for i := 0; i < 50; i++ {
				batch := recs(s, 1+i%7, w*1000+i*10)
				first, err := tr.Append(ctx, s, batch)
				if err != nil {
					t.Error(err)
					return
				}
				for j := range batch {
					if batch[j].Offset != first+uint64(j) {
						t.Errorf("offset %d at %d, want %d", batch[j].Offset, j, first+uint64(j))
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, s := range streams {
		got := readAll(t, tr, s)
		for i, r := range got {
			if r.Offset != uint64(i) {
				t.Fatalf("%s: offset %d at position %d", s, r.Offset, i)
			}
		}
		if sn := tr.Snapshot(s); sn.Next != uint64(len(got)) || len(got) == 0 {
			t.Fatalf("%s: Next %d, read %d", s, sn.Next, len(got))
		}
	}
}

func TestReplayRestoresEveryRecordAndSkipsPersisted(t *testing.T) {
	dir := t.TempDir()
	p := &memPersister{}
	tr := openTier(t, dir, p, nil)
	ctx := context.Background()
	var want []tiers.Record
	for i := 0; i < 40; i++ {
		b := recs("s", 10, i*10)
		if _, err := tr.Append(ctx, "s", b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	persisted := p.next("s")
	if persisted != uint64(len(want)) {
		t.Fatalf("flush persisted %d of %d", persisted, len(want))
	}
	more := recs("s", 5, 400)
	if _, err := tr.Append(ctx, "s", more); err != nil {
		t.Fatal(err)
	}
	want = append(want, more...)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Append(ctx, "s", recs("s", 1, 0)); !errors.Is(err, tiers.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	// Reopen as the engine would: the persister's watermark says what is warm.
	tr2 := openTier(t, dir, p, func(o *Options) { o.Streams = map[string]uint64{"s": persisted} })
	defer tr2.Close()
	sn := tr2.Snapshot("s")
	if sn.Next != uint64(len(want)) {
		t.Fatalf("after replay Next = %d, want %d", sn.Next, len(want))
	}
	got := readAll(t, tr2, "s")
	if len(got) != 5 || got[0].Offset != persisted {
		t.Fatalf("replayed %d records from %d; want the 5 unpersisted from %d", len(got), got[0].Offset, persisted)
	}
	for i := range got {
		if !got[i].Equal(&want[persisted+uint64(i)]) {
			t.Fatalf("record %d differs after replay", got[i].Offset)
		}
	}
	first, err := tr2.Append(ctx, "s", recs("s", 1, 999))
	if err != nil || first != uint64(len(want)) {
		t.Fatalf("append after replay: first %d err %v, want %d", first, err, len(want))
	}
}

func TestReplayRefusesAGap(t *testing.T) {
	dir := t.TempDir()
	// The catalog says offsets below 10 are persisted, so new records get 10, 11.
	tr := openTier(t, dir, &memPersister{}, func(o *Options) { o.Streams = map[string]uint64{"s": 10} })
	if _, err := tr.Append(context.Background(), "s", recs("s", 2, 0)); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	// A catalog that only has 0..4 persisted leaves 5..9 nowhere: a hole.
	_, err := Open(context.Background(), Options{WAL: wal.Options{Dir: filepath.Join(dir, "wal")}, Persister: &memPersister{}, Streams: map[string]uint64{"s": 5}})
	if !errors.Is(err, ErrOffsetGap) {
		t.Fatalf("open with the WAL starting above the persisted offset: %v, want ErrOffsetGap", err)
	}
}

func TestBackpressureWhenUnpersistedFillsBudget(t *testing.T) {
	p := &memPersister{fail: errors.New("disk unavailable")}
	tr := openTier(t, t.TempDir(), p, func(o *Options) { o.MaxBytes = 64 << 10; o.SegmentMaxBytes = 8 << 10 })
	defer tr.Close()
	ctx := context.Background()
	var err error
	appended := 0
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = tr.Append(ctx, "s", recs("s", 10, i*10))
		if err == nil {
			appended += 10
		}
	}
	if !errors.Is(err, tiers.ErrBackpressure) {
		t.Fatalf("budget never pushed back: %v", err)
	}
	if st := tr.Stats(); st.Unpersisted > st.MaxBytes {
		t.Fatalf("unpersisted %d exceeds the budget %d", st.Unpersisted, st.MaxBytes)
	}
	p.mu.Lock()
	p.fail = nil
	p.mu.Unlock()
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Append(ctx, "s", recs("s", 10, 0)); err != nil {
		t.Fatalf("append after the flusher caught up: %v", err)
	}
	if got := p.next("s"); got != uint64(appended) {
		t.Fatalf("persisted %d, appended %d before backpressure", got, appended)
	}
}

func TestEvictionKeepsBudgetAndOrder(t *testing.T) {
	p := &memPersister{}
	tr := openTier(t, t.TempDir(), p, func(o *Options) { o.MaxBytes = 96 << 10; o.SegmentMaxBytes = 8 << 10 })
	defer tr.Close()
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		if _, err := tr.Append(ctx, "s", recs("s", 10, i*10)); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			if err := tr.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	if st.Bytes > st.MaxBytes {
		t.Fatalf("resident %d bytes over budget %d", st.Bytes, st.MaxBytes)
	}
	sn := tr.Snapshot("s")
	if sn.First() == 0 {
		t.Fatal("nothing was evicted")
	}
	// What is resident is a contiguous suffix ending at Next.
	got := readAll(t, tr, "s")
	if len(got) == 0 || got[0].Offset != sn.First() || got[len(got)-1].Offset != sn.Next-1 || uint64(len(got)) != sn.Next-sn.First() {
		t.Fatalf("resident records are not the suffix [%d, %d)", sn.First(), sn.Next)
	}
	if p.next("s") != 2000 {
		t.Fatalf("persisted %d of 2000", p.next("s"))
	}
}

func TestResidencyEvictsByAge(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := &memPersister{}
	tr := openTier(t, t.TempDir(), p, func(o *Options) { o.Now = clock; o.Residency = time.Minute })
	defer tr.Close()
	ctx := context.Background()
	if _, err := tr.Append(ctx, "s", recs("s", 10, 0)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if sn := tr.Snapshot("s"); sn.First() != 0 {
		t.Fatalf("a fresh persisted segment was evicted")
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if sn := tr.Snapshot("s"); sn.First() != 10 || sn.Next != 10 {
		t.Fatalf("after residency: First %d Next %d, want both 10", sn.First(), sn.Next)
	}
}

func TestSnapshotGet(t *testing.T) {
	tr := openTier(t, t.TempDir(), &memPersister{}, nil)
	defer tr.Close()
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if _, err := tr.Append(ctx, "s", recs("s", 10, i*10)); err != nil {
			t.Fatal(err)
		}
	}
	sn := tr.Snapshot("s")
	if len(sn.Segments()) < 3 {
		t.Fatalf("expected several sealed segments, got %d", len(sn.Segments()))
	}
	for off := uint64(0); off < 1000; off += 37 {
		r, ok, err := sn.Get(off)
		if err != nil || !ok || r.Offset != off || r.Key != fmt.Sprintf("s-%d", off) {
			t.Fatalf("Get(%d) = %+v %v %v", off, r, ok, err)
		}
	}
	if _, ok, _ := sn.Get(1000); ok {
		t.Fatal("Get past the end found a record")
	}
}

func BenchmarkSnapshotGet(b *testing.B) {
	tr, err := Open(context.Background(), Options{WAL: wal.Options{Dir: b.TempDir(), Sync: tiers.SyncNone}, Persister: &memPersister{}, SegmentMaxBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	for i := 0; i < 100; i++ {
		tr.Append(context.Background(), "s", recs("s", 1000, i*1000))
	}
	sn := tr.Snapshot("s")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok, _ := sn.Get(uint64(i*7919) % 100000); !ok {
			b.Fatal("missing")
		}
	}
}

func TestPerStreamPolicyAndEvict(t *testing.T) {
	p := &memPersister{}
	tr := openTier(t, t.TempDir(), p, func(o *Options) {
		o.PolicyFor = func(stream string) StreamPolicy {
			if stream == "small" {
				return StreamPolicy{SegmentMaxBytes: 1 << 10}
			}
			return StreamPolicy{} // the Options' values
		}
	})
	defer tr.Close()
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		for _, s := range []string{"small", "big"} {
			if _, err := tr.Append(ctx, s, recs(s, 5, i*5)); err != nil {
				t.Fatal(err)
			}
		}
	}
	small, big := tr.Snapshot("small"), tr.Snapshot("big")
	smallSegs, bigSegs := small.Segments(), big.Segments()
	if len(smallSegs) <= len(bigSegs) {
		t.Fatalf("a 1 KiB policy made %d segments, the 4 KiB default %d", len(smallSegs), len(bigSegs))
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	snap := tr.Snapshot("small")
	segs := snap.Segments()
	upTo := segs[2].Last + 1
	if n := tr.Evict("small", upTo); n != 3 {
		t.Fatalf("Evict up to %d dropped %d segments, want 3", upTo, n)
	}
	sn := tr.Snapshot("small")
	if sn.First() != upTo || len(readAll(t, tr, "small")) != int(sn.Next-upTo) {
		t.Fatalf("after Evict: first %d, want %d", sn.First(), upTo)
	}
	// The active segment is never persisted, so never evicted.
	if _, err := tr.Append(ctx, "small", recs("small", 1, 999)); err != nil {
		t.Fatal(err)
	}
	tr.Evict("small", 1<<62)
	if got := readAll(t, tr, "small"); len(got) != 1 || got[0].Key != "small-999" {
		t.Fatalf("after evicting everything evictable, %d records resident, want the 1 unpersisted", len(got))
	}
	if tr.Evict("nope", 10) != 0 {
		t.Fatal("evicted from an unknown stream")
	}
}
