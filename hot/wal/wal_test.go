package wal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/tiers"
)

// genBatches returns n batches spread round-robin over the given number of
// streams, each with dense offsets continuing its stream, and values of
// varying size so that frames differ in length.
func genBatches(streams, n, recsPer, valueBytes int) []Batch {
	next := make([]uint64, streams)
	out := make([]Batch, 0, n)
	for i := range n {
		s := i % streams
		b := Batch{Stream: fmt.Sprintf("stream-%d", s)}
		for j := range recsPer {
			off := next[s]
			next[s]++
			v := make([]byte, valueBytes+(i*7+j*13)%31)
			for k := range v {
				v[k] = byte(int(off) + k*31 + s)
			}
			r := tiers.Record{Offset: off, TS: int64(1_700_000_000_000_000_000 + i*1000 + j), Value: v}
			if j%2 == 0 {
				r.Key = fmt.Sprintf("key-%d", off%5)
			}
			if j%3 == 0 {
				r.Tags = []string{"t1", fmt.Sprintf("t%d", s)}
			}
			b.Records = append(b.Records, r)
		}
		out = append(out, b)
	}
	return out
}

func openWAL(t testing.TB, opts Options) (*WAL, []Batch) {
	t.Helper()
	var got []Batch
	w, err := Open(context.Background(), opts, func(b Batch) error {
		got = append(got, b)
		return nil
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w, got
}

// writeBatches enqueues every batch without waiting in between, so groups
// hold many frames, then waits for all of them.
func writeBatches(t testing.TB, w *WAL, batches []Batch) {
	t.Helper()
	tickets := make([]*Ticket, len(batches))
	for i, b := range batches {
		tickets[i] = w.Enqueue(b)
	}
	for i, tk := range tickets {
		if err := tk.Wait(context.Background()); err != nil {
			t.Fatalf("batch %d: Wait: %v", i, err)
		}
	}
}

// writeEach enqueues and waits for each batch in turn, so each group holds
// one frame.
func writeEach(t testing.TB, w *WAL, batches []Batch) {
	t.Helper()
	for i, b := range batches {
		if err := w.Enqueue(b).Wait(context.Background()); err != nil {
			t.Fatalf("batch %d: Wait: %v", i, err)
		}
	}
}

func closeWAL(t testing.TB, w *WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func batchesEqual(got, want []Batch) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Stream != want[i].Stream || len(got[i].Records) != len(want[i].Records) {
			return fmt.Errorf("batch %d: got %s with %d records, want %s with %d", i,
				got[i].Stream, len(got[i].Records), want[i].Stream, len(want[i].Records))
		}
		for j := range got[i].Records {
			if !got[i].Records[j].Equal(&want[i].Records[j]) {
				return fmt.Errorf("batch %d record %d differs: got %+v want %+v", i, j, got[i].Records[j], want[i].Records[j])
			}
		}
	}
	return nil
}

func walFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// frameStarts lists the byte offsets of the frames of a clean file.
func frameStarts(t testing.TB, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int
	for off := headerLen; off < len(data); {
		p, n, err := framePayload(data[off:])
		if err != nil {
			t.Fatalf("%s at %d: %v", path, off, err)
		}
		if p[0] != typeSnapshot { // the file's head, not a batch
			starts = append(starts, off)
		}
		off += n
	}
	return starts
}

func TestRoundTripAcrossFiles(t *testing.T) {
	for _, tc := range []struct {
		name         string
		segmentBytes int64
		write        func(testing.TB, *WAL, []Batch)
		grouped      bool
	}{
		{"grouped/4KiB files", 4 << 10, writeBatches, true},
		{"one by one/4KiB files", 4 << 10, writeEach, false},
		{"one by one/one frame per file", 1, writeEach, false},
		{"grouped/one frame per file", 1, writeBatches, true},
		{"grouped/one big file", 64 << 20, writeBatches, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Dir: t.TempDir(), SegmentBytes: tc.segmentBytes}
			batches := genBatches(3, 150, 3, 40)
			w, replayed := openWAL(t, opts)
			if len(replayed) != 0 {
				t.Fatalf("fresh WAL replayed %d batches", len(replayed))
			}
			tc.write(t, w, batches[:100])
			closeWAL(t, w)

			// A second session appends after the first one's files.
			w, replayed = openWAL(t, opts)
			if err := batchesEqual(replayed, batches[:100]); err != nil {
				t.Fatalf("first reopen: %v", err)
			}
			tc.write(t, w, batches[100:])
			closeWAL(t, w)

			w, replayed = openWAL(t, opts)
			defer closeWAL(t, w)
			if err := batchesEqual(replayed, batches); err != nil {
				t.Fatalf("second reopen: %v", err)
			}
			files := walFiles(t, opts.Dir)
			// A group never spans files, so only groups of one frame
			// rotate by the frame.
			if !tc.grouped && tc.segmentBytes < 64<<20 && len(files) < 10 {
				t.Errorf("%d files with SegmentBytes %d, want rotation", len(files), tc.segmentBytes)
			}
			var total int64
			for _, f := range files {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				total += st.Size()
				// The head (header and producer snapshot, here of no
				// producers) does not count towards SegmentBytes; a group
				// (here of one frame) takes a file without frames past it.
				if n := len(frameStarts(t, f)); !tc.grouped && st.Size()-emptyHeadLen > tc.segmentBytes && n > 1 {
					t.Errorf("%s: %d bytes in %d frames, over SegmentBytes %d past the head", filepath.Base(f), st.Size(), n, tc.segmentBytes)
				}
			}
			if s := w.Stats(); s.Files != len(files) || s.Bytes != total {
				t.Errorf("Stats = %d files %d bytes, on disk %d files %d bytes", s.Files, s.Bytes, len(files), total)
			}
		})
	}
}

func TestSyncModes(t *testing.T) {
	for _, mode := range []tiers.SyncMode{tiers.SyncAlways, tiers.SyncInterval, tiers.SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			opts := Options{Dir: t.TempDir(), Sync: mode, SegmentBytes: 8 << 10}
			batches := genBatches(2, 60, 2, 100)
			w, _ := openWAL(t, opts)
			writeBatches(t, w, batches)
			if s := w.Stats(); s.Sync != mode.String() || s.Failed != nil {
				t.Errorf("Stats = %+v", s)
			}
			closeWAL(t, w)
			w, replayed := openWAL(t, opts)
			defer closeWAL(t, w)
			if err := batchesEqual(replayed, batches); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEnqueueRejectsInvalidBatches(t *testing.T) {
	big := make([]byte, 1<<20)
	tooMany := make([]tiers.Record, MaxFrameBytes/len(big)+1)
	for i := range tooMany {
		tooMany[i] = tiers.Record{Offset: uint64(i), Value: big}
	}
	for _, tc := range []struct {
		name string
		b    Batch
		want error
	}{
		{"no records", Batch{Stream: "s"}, ErrInvalidBatch},
		{"empty stream", Batch{Records: []tiers.Record{{}}}, ErrInvalidBatch},
		{"long stream", Batch{Stream: strings.Repeat("s", tiers.MaxStreamNameLen+1), Records: []tiers.Record{{}}}, ErrInvalidBatch},
		{"gap in offsets", Batch{Stream: "s", Records: []tiers.Record{{Offset: 4}, {Offset: 6}}}, ErrInvalidBatch},
		{"decreasing offsets", Batch{Stream: "s", Records: []tiers.Record{{Offset: 4}, {Offset: 3}}}, ErrInvalidBatch},
		{"offsets overflow", Batch{Stream: "s", Records: []tiers.Record{{Offset: math.MaxUint64}, {Offset: 0}}}, ErrInvalidBatch},
		{"over MaxFrameBytes", Batch{Stream: "s", Records: tooMany}, ErrBatchTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Dir: t.TempDir()}
			w, _ := openWAL(t, opts)
			err := w.Enqueue(tc.b).Wait(context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("Wait = %v, want %v", err, tc.want)
			}
			// A batch the log cannot hold is the API's 413 batch_too_large,
			// whichever layer finds it.
			if tc.want == ErrBatchTooLarge && !errors.Is(err, tiers.ErrBatchTooLarge) {
				t.Fatalf("Wait = %v, not a tiers.ErrBatchTooLarge", err)
			}
			// The log stays usable and holds nothing of the rejected batch.
			ok := genBatches(1, 1, 1, 10)
			writeEach(t, w, ok)
			closeWAL(t, w)
			w, replayed := openWAL(t, opts)
			defer closeWAL(t, w)
			if err := batchesEqual(replayed, ok); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A frame (here a group of one) larger than SegmentBytes goes alone into a
// file, and the next group starts another.
func TestOversizeFrameGoesAlone(t *testing.T) {
	opts := Options{Dir: t.TempDir(), SegmentBytes: 2 << 10}
	small := genBatches(1, 4, 1, 10)
	huge := Batch{Stream: "huge", Records: []tiers.Record{{Offset: 0, Value: make([]byte, 10<<10)}}}
	batches := []Batch{small[0], small[1], huge, small[2], small[3]}
	w, _ := openWAL(t, opts)
	writeEach(t, w, batches) // one group each: a group never spans files
	closeWAL(t, w)
	w, replayed := openWAL(t, opts)
	defer closeWAL(t, w)
	if err := batchesEqual(replayed, batches); err != nil {
		t.Fatal(err)
	}
	var frames []int
	for _, f := range walFiles(t, opts.Dir) {
		frames = append(frames, len(frameStarts(t, f)))
	}
	// small, small | huge | small, small | (new, empty)
	if want := []int{2, 1, 2, 0}; !slices.Equal(frames, want) {
		t.Fatalf("frames per file = %v, want %v", frames, want)
	}
}

// gateFS is an OpenFile seam whose files count fsyncs and can hold the next
// fsync until released.
type gateFS struct {
	syncs   atomic.Int64
	armed   atomic.Bool
	release chan struct{}
	holding chan struct{} // if set, closed once a Sync is being held
}

func (g *gateFS) open(path string, flag int, perm os.FileMode) (SegmentFile, error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return &gateFile{File: f, g: g}, nil
}

type gateFile struct {
	*os.File
	g *gateFS
}

func (f *gateFile) Sync() error {
	if f.g.armed.CompareAndSwap(true, false) {
		if f.g.holding != nil {
			close(f.g.holding)
		}
		<-f.g.release
	}
	f.g.syncs.Add(1)
	return f.File.Sync()
}

func TestGroupCommit(t *testing.T) {
	const n = 64
	reg := prometheus.NewRegistry()
	g := &gateFS{release: make(chan struct{})}
	opts := Options{Dir: t.TempDir(), OpenFile: g.open, Registerer: reg}
	w, _ := openWAL(t, opts)
	syncsAtOpen := g.syncs.Load()

	// The first fsync is held until every goroutine has enqueued, so the
	// committer must gather the rest into one group instead of syncing per
	// request.
	g.armed.Store(true)
	var enqueued atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	want := make(map[string]Batch)
	for i := range n {
		b := Batch{Stream: fmt.Sprintf("g%02d", i), Records: []tiers.Record{
			{Offset: 0, TS: int64(i), Value: []byte(fmt.Sprintf("value %d", i))},
			{Offset: 1, TS: int64(i), Key: "k"},
		}}
		want[b.Stream] = b
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := w.Enqueue(b)
			if enqueued.Add(1) == n {
				close(g.release)
			}
			errs <- tk.Wait(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
	}
	syncs := g.syncs.Load() - syncsAtOpen
	s := w.Stats()
	if syncs >= n || syncs > 2 {
		t.Errorf("%d fsyncs for %d concurrent requests, want at most 2", syncs, n)
	}
	if s.GroupCommits > 2 || s.GroupCommits == 0 {
		t.Errorf("%d group commits for %d requests, want 1 or 2", s.GroupCommits, n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metric := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch {
		case m.Counter != nil:
			metric[mf.GetName()] = m.Counter.GetValue()
		case m.Histogram != nil:
			metric[mf.GetName()] = float64(m.Histogram.GetSampleCount())
		case m.Gauge != nil:
			metric[mf.GetName()] = m.Gauge.GetValue()
		}
	}
	if got := metric["tierd_wal_group_commits_total"]; got != float64(s.GroupCommits) {
		t.Errorf("tierd_wal_group_commits_total = %v, Stats says %d", got, s.GroupCommits)
	}
	if got := metric["tierd_wal_fsync_duration_seconds"]; got != float64(g.syncs.Load()) {
		t.Errorf("fsync histogram has %v samples, the files saw %d fsyncs", got, g.syncs.Load())
	}
	if got := metric["tierd_wal_batches_written_total"]; got != n {
		t.Errorf("tierd_wal_batches_written_total = %v, want %d", got, n)
	}
	if got := metric["tierd_wal_bytes_written_total"]; got != float64(s.Bytes-emptyHeadLen) {
		t.Errorf("tierd_wal_bytes_written_total = %v, file holds %d frame bytes", got, s.Bytes-emptyHeadLen)
	}
	closeWAL(t, w)

	w, replayed := openWAL(t, Options{Dir: opts.Dir})
	defer closeWAL(t, w)
	if len(replayed) != n {
		t.Fatalf("replayed %d batches, want %d", len(replayed), n)
	}
	for _, b := range replayed {
		if err := batchesEqual([]Batch{b}, []Batch{want[b.Stream]}); err != nil {
			t.Errorf("%s: %v", b.Stream, err)
		}
		delete(want, b.Stream)
	}
	if len(want) != 0 {
		t.Errorf("%d batches never replayed", len(want))
	}
}

func TestWaitHonoursContextAndClose(t *testing.T) {
	g := &gateFS{release: make(chan struct{})}
	opts := Options{Dir: t.TempDir(), OpenFile: g.open}
	w, _ := openWAL(t, opts)
	g.armed.Store(true)
	b := genBatches(1, 2, 1, 10)
	tk := w.Enqueue(b[0])
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tk.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context = %v, want context.Canceled", err)
	}
	close(g.release)
	// Ending the context did not undo the frame.
	if err := tk.Wait(context.Background()); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	closeWAL(t, w)
	if err := w.Enqueue(b[1]).Wait(context.Background()); !errors.Is(err, tiers.ErrClosed) {
		t.Fatalf("Enqueue after Close: %v, want tiers.ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	w, replayed := openWAL(t, Options{Dir: opts.Dir})
	defer closeWAL(t, w)
	if err := batchesEqual(replayed, b[:1]); err != nil {
		t.Fatal(err)
	}
}

func TestCloseFlushesQueue(t *testing.T) {
	for _, mode := range []tiers.SyncMode{tiers.SyncAlways, tiers.SyncInterval, tiers.SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			opts := Options{Dir: t.TempDir(), Sync: mode}
			w, _ := openWAL(t, opts)
			batches := genBatches(4, 40, 2, 50)
			tickets := make([]*Ticket, len(batches))
			for i, b := range batches {
				tickets[i] = w.Enqueue(b)
			}
			closeWAL(t, w) // without waiting first
			for i, tk := range tickets {
				if err := tk.Wait(context.Background()); err != nil {
					t.Fatalf("ticket %d after Close: %v", i, err)
				}
			}
			w, replayed := openWAL(t, opts)
			defer closeWAL(t, w)
			if err := batchesEqual(replayed, batches); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReplayErrorStopsOpen(t *testing.T) {
	opts := Options{Dir: t.TempDir()}
	w, _ := openWAL(t, opts)
	writeEach(t, w, genBatches(1, 3, 1, 10))
	closeWAL(t, w)
	boom := errors.New("memtable full")
	calls := 0
	_, err := Open(context.Background(), opts, func(Batch) error {
		calls++
		if calls == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls != 2 {
		t.Fatalf("Open = %v after %d calls, want the replay error after 2", err, calls)
	}
}

func TestCheckpoint(t *testing.T) {
	// SegmentBytes 1 puts each frame in its own file:
	// 1: a[0,9]  2: b[0,4]  3: a[10,19]  4: b[5,9]  5: a[20,29] (current)
	rec := func(stream string, from, to uint64) Batch {
		b := Batch{Stream: stream}
		for o := from; o <= to; o++ {
			b.Records = append(b.Records, tiers.Record{Offset: o, Value: []byte(stream)})
		}
		return b
	}
	batches := []Batch{rec("a", 0, 9), rec("b", 0, 4), rec("a", 10, 19), rec("b", 5, 9), rec("a", 20, 29)}
	for _, tc := range []struct {
		name      string
		persisted map[string]uint64
		reopen    bool // checkpoint from replay bookkeeping, with a new current file
		want      int
	}{
		{"nothing persisted", nil, false, 0},
		{"highest offset not yet persisted", map[string]uint64{"a": 9, "b": 100}, false, 0},
		{"first file persisted", map[string]uint64{"a": 10}, false, 1},
		{"stops at first file that must stay", map[string]uint64{"a": 100, "b": 4}, false, 1},
		{"two files", map[string]uint64{"a": 10, "b": 5}, false, 2},
		{"all but current", map[string]uint64{"a": 30, "b": 10}, false, 4},
		{"from replay: all but current", map[string]uint64{"a": 30, "b": 10}, true, 5},
		{"from replay: three files", map[string]uint64{"a": 20, "b": 5}, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Dir: t.TempDir(), SegmentBytes: 1}
			w, _ := openWAL(t, opts)
			writeEach(t, w, batches)
			if tc.reopen {
				closeWAL(t, w)
				w, _ = openWAL(t, opts)
			}
			files := walFiles(t, opts.Dir)
			current := files[len(files)-1]
			var asked []string
			n, err := w.Checkpoint(func(s string) uint64 {
				asked = append(asked, s)
				return tc.persisted[s]
			})
			if err != nil || n != tc.want {
				t.Fatalf("Checkpoint = %d, %v; want %d (asked about %v)", n, err, tc.want, asked)
			}
			left := walFiles(t, opts.Dir)
			if !slices.Equal(left, files[n:]) {
				t.Fatalf("files left %v, want %v", left, files[n:])
			}
			if _, err := os.Stat(current); err != nil {
				t.Fatalf("current file: %v", err)
			}
			if s := w.Stats(); s.Files != len(left) {
				t.Errorf("Stats.Files = %d, %d on disk", s.Files, len(left))
			}
			// The log goes on, and a reopen replays exactly what is left.
			more := rec("b", 10, 12)
			writeEach(t, w, []Batch{more})
			closeWAL(t, w)
			w, replayed := openWAL(t, opts)
			defer closeWAL(t, w)
			want := append(slices.Clone(batches[min(n, len(batches)):]), more)
			if err := batchesEqual(replayed, want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConcurrentStreamsKeepTheirOrder(t *testing.T) {
	const streams, perStream = 8, 60
	opts := Options{Dir: t.TempDir(), SegmentBytes: 16 << 10}
	w, _ := openWAL(t, opts)
	sent := make([][]Batch, streams)
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for s := range streams {
		sent[s] = genBatches(1, perStream, 2, 30+s)
		for i := range sent[s] {
			sent[s][i].Stream = fmt.Sprintf("s%d", s)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tickets := make([]*Ticket, 0, perStream)
			for _, b := range sent[s] {
				tickets = append(tickets, w.Enqueue(b))
			}
			for _, tk := range tickets {
				if err := tk.Wait(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	closeWAL(t, w)
	w, replayed := openWAL(t, opts)
	defer closeWAL(t, w)
	got := make([][]Batch, streams)
	for _, b := range replayed {
		var s int
		fmt.Sscanf(b.Stream, "s%d", &s)
		got[s] = append(got[s], b)
	}
	for s := range streams {
		if err := batchesEqual(got[s], sent[s]); err != nil {
			t.Errorf("stream %d: %v", s, err)
		}
	}
}

func BenchmarkEnqueueWait(b *testing.B) {
	for _, mode := range []tiers.SyncMode{tiers.SyncAlways, tiers.SyncNone} {
		b.Run(mode.String(), func(b *testing.B) {
			w, _ := openWAL(b, Options{Dir: b.TempDir(), Sync: mode})
			defer closeWAL(b, w)
			var stream atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				batch := genBatches(1, 1, 10, 100)[0]
				batch.Stream = fmt.Sprintf("bench-%d", stream.Add(1))
				for pb.Next() {
					if err := w.Enqueue(batch).Wait(context.Background()); err != nil {
						b.Error(err)
						return
					}
					for i := range batch.Records {
						batch.Records[i].Offset += uint64(len(batch.Records))
					}
				}
			})
		})
	}
}

// emptyHeadLen is a file's head with no producers: the header, then a
// snapshot frame of type and a zero count.
const emptyHeadLen = headerLen + frameHeaderLen + 2
