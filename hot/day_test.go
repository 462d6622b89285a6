package hot

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

// midnight is a UTC midnight the day tests straddle.
var midnight = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// dayBatches are batches of one stream around midnight: forward across it
// inside a batch, back to the day before (out of order), and alternating
// record by record. want are the segments they must make, [base, last].
var dayBatches = [][]int64{
	{midnight - 3e9, midnight - 2e9},           // day D-1
	{midnight - 1e9, midnight, midnight + 1e9}, // cut inside the batch
	{midnight - 5e8},                           // back to D-1: its own segment
	{midnight + 2e9, midnight - 1, midnight + 3e9},
	{midnight + 4e9}, // D again: joins the active D segment
}

var dayWant = [][2]uint64{{0, 2}, {3, 4}, {5, 5}, {6, 6}, {7, 7}, {8, 9}}

func tsRecords(ts []int64, from int) []tiers.Record {
	out := make([]tiers.Record, len(ts))
	for i, x := range ts {
		out[i] = tiers.Record{TS: x, Key: fmt.Sprintf("k%d", from+i), Value: []byte(fmt.Sprintf(`{"n":%d}`, from+i))}
	}
	return out
}

// appendDays appends dayBatches to stream s and returns the records as
// appended.
func appendDays(t *testing.T, tr *Tier) []tiers.Record {
	t.Helper()
	var all []tiers.Record
	for _, b := range dayBatches {
		batch := tsRecords(b, len(all))
		if _, err := tr.Append(context.Background(), "s", batch); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
	}
	return all
}

// checkDaySegments checks the stream's resident segments are dayWant, each
// on one UTC day.
func checkDaySegments(t *testing.T, tr *Tier, when string) []SegmentState {
	t.Helper()
	sn := tr.Snapshot("s")
	segs := sn.Segments()
	var got [][2]uint64
	for _, s := range segs {
		got = append(got, [2]uint64{s.Base, s.Last})
		if tiers.UTCDay(s.MinTS) != tiers.UTCDay(s.MaxTS) {
			t.Errorf("%s: segment [%d, %d] holds ts %d..%d, two UTC days", when, s.Base, s.Last, s.MinTS, s.MaxTS)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(dayWant) {
		t.Fatalf("%s: segments %v, want %v", when, got, dayWant)
	}
	return segs
}

// TestSegmentsNeverHoldTwoDays: the hot tier seals before a record of
// another UTC day than the active segment's, going forward across midnight
// (inside a batch too) and backward (a late record), so every segment —
// and every warm file and cold object made of it — holds one day; every
// record is still there once, in offset order, and the budget's books
// balance.
func TestSegmentsNeverHoldTwoDays(t *testing.T) {
	p := &memPersister{}
	tr := openTier(t, t.TempDir(), p, nil)
	defer tr.Close()
	all := appendDays(t, tr)
	segs := checkDaySegments(t, tr, "after the appends")
	for _, s := range segs[:len(segs)-1] {
		if s.Active || s.SealedAt.IsZero() {
			t.Errorf("segment [%d, %d] cut by day is not sealed: %+v", s.Base, s.Last, s)
		}
	}
	if !segs[len(segs)-1].Active {
		t.Errorf("the last segment is not active: %+v", segs[len(segs)-1])
	}
	st := tr.Stats()
	if st.Unpersisted < 0 || st.Unpersisted > st.Bytes {
		t.Errorf("budget: %d unpersisted of %d bytes", st.Unpersisted, st.Bytes)
	}
	// Forward across midnight at 3 and 6 and 8; back at 5 and 7.
	if st.DaySeals != [2]uint64{3, 2} {
		t.Errorf("DaySeals = %v, want [3 2] (later day, earlier day)", st.DaySeals)
	}
	got := readAll(t, tr, "s")
	if len(got) != len(all) {
		t.Fatalf("read %d records, want %d", len(got), len(all))
	}
	for i := range all {
		all[i].Offset = uint64(i)
		if !got[i].Equal(&all[i]) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i], all[i])
		}
	}
	if _, _, err := tr.Seal(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	if n := p.next("s"); n != uint64(len(all)) {
		t.Fatalf("%d records persisted, want %d", n, len(all))
	}
	sn := tr.Snapshot("s")
	for _, s := range sn.Segments() {
		if !s.Persisted {
			t.Errorf("segment [%d, %d] not persisted after the seal", s.Base, s.Last)
		}
	}
}

// TestReplayCutsDaysAsAppendsDid: after a restart the WAL replay, adding the
// records through the same path, cuts the unpersisted records into the
// same one-day segments the appends made.
func TestReplayCutsDaysAsAppendsDid(t *testing.T) {
	dir := t.TempDir()
	p := &memPersister{fail: errors.New("no disk today")} // everything stays in the WAL
	tr := openTier(t, dir, p, nil)
	appendDays(t, tr)
	checkDaySegments(t, tr, "before the restart")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.fail = nil
	p.mu.Unlock()
	// The flusher persists what replay sealed at once; the last segment
	// stays active (segment.max_age is an hour).
	tr = openTier(t, dir, p, func(o *Options) { o.Streams = map[string]uint64{"s": 0} })
	defer tr.Close()
	checkDaySegments(t, tr, "after replay")
	if got := readAll(t, tr, "s"); len(got) != 10 {
		t.Fatalf("after replay, %d records, want 10", len(got))
	}
}

// TestDayRunsBudget: a batch cut into several segments reserves at least
// what the new segments allocate (the reservation is what keeps concurrent
// appends within the budget), and the books settle to the bytes held.
func TestDayRunsBudget(t *testing.T) {
	p := &memPersister{fail: errors.New("hold everything")} // nothing leaves the books
	tr := openTier(t, t.TempDir(), p, func(o *Options) { o.SegmentMaxBytes = 1 << 20 })
	defer tr.Close()
	var ts []int64
	for i := range 300 {
		ts = append(ts, midnight+int64((i/7)%2*2-1)*int64(i+1)) // runs of 7, alternating days
	}
	batch := tsRecords(ts, 0)
	sizes := make([]int, len(batch))
	for i := range batch {
		batch[i].Offset = uint64(i)
		sizes[i] = tiers.EncodedLen(&batch[i])
	}
	var need int64
	for _, r := range dayRuns(nil, batch, sizes) {
		need += growthBound(nil, sizes[r.from:r.to], r.bytes, 1<<20)
	}
	if _, err := tr.Append(context.Background(), "s", batch); err != nil {
		t.Fatal(err)
	}
	sn := tr.Snapshot("s")
	if segs := sn.Segments(); len(segs) != (300+6)/7 {
		t.Fatalf("%d segments, want %d", len(segs), (300+6)/7)
	}
	st := tr.Stats()
	if st.Unpersisted != st.Bytes {
		t.Fatalf("budget: %d unpersisted, %d bytes held (nothing persisted)", st.Unpersisted, st.Bytes)
	}
	if st.Bytes > need {
		t.Fatalf("the batch allocated %d bytes, more than the %d it reserved", st.Bytes, need)
	}
}

// BenchmarkAppendAcrossDays is what a producer whose ts alternates UTC
// days costs the hot tier, beside one in order: batches of 100 records of
// ~60 bytes, every record another day (one segment each) or all on one
// day. It reports the memory held per record (hot.max_bytes counts it) and
// the segments made per record.
func BenchmarkAppendAcrossDays(b *testing.B) {
	for _, c := range []struct {
		name      string
		alternate bool
	}{{"in_order", false}, {"alternating", true}} {
		b.Run(c.name, func(b *testing.B) {
			p := &memPersister{fail: errors.New("keep everything in memory")}
			tr, err := Open(context.Background(), Options{WAL: wal.Options{Dir: b.TempDir(), Sync: tiers.SyncNone}, Persister: p,
				SegmentMaxBytes: 64 << 20, MaxBytes: 8 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			ts := make([]int64, 100)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := range ts {
					ts[k] = midnight + int64(k)
					if c.alternate && k%2 == 1 {
						ts[k] = midnight - int64(k)
					}
				}
				if _, err := tr.Append(context.Background(), "s", tsRecords(ts, i*100)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := tr.Stats()
			n := float64(b.N * 100)
			b.ReportMetric(float64(st.Bytes)/n, "heapB/record")
			b.ReportMetric(float64(st.Segments)/n, "segments/record")
		})
	}
}
