package wal

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/tiers"
)

// producerTable reads w's table as a map for comparisons.
func producerMap(w *WAL) map[ProducerKey]ProducerState {
	m := map[ProducerKey]ProducerState{}
	for _, st := range w.Producers() {
		st.At = 0 // the clock of the write, not compared
		m[ProducerKey{st.Stream, st.Producer}] = st
	}
	return m
}

func producerBatch(stream string, p tiers.ProducerID, seq, first uint64, n int) Batch {
	b := Batch{Stream: stream, Producer: p, Seq: seq}
	for i := range n {
		b.Records = append(b.Records, tiers.Record{Offset: first + uint64(i), Value: []byte("v")})
	}
	return b
}

func TestProducerTableSurvivesReopenAndCheckpoint(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 1 << 10} // small files: many rotations
	w, _ := openWAL(t, opts)
	p1, p2 := tiers.ProducerID{1}, tiers.ProducerID{2}
	next := map[string]uint64{}
	want := map[ProducerKey]ProducerState{}
	for i := range 60 {
		stream := []string{"a", "b"}[i%2]
		p := []tiers.ProducerID{p1, p2}[i/2%2]
		seq := uint64(i + 1)
		b := producerBatch(stream, p, seq, next[stream], 3)
		writeBatches(t, w, []Batch{b})
		want[ProducerKey{stream, p}] = ProducerState{Stream: stream, Producer: p, Seq: seq, First: next[stream], Count: 3}
		next[stream] += 3
	}
	writeBatches(t, w, []Batch{{Stream: "a", Records: []tiers.Record{{Offset: next["a"]}}}}) // no producer
	if got := producerMap(w); !maps.Equal(got, want) {
		t.Fatalf("table while open:\n got %v\nwant %v", got, want)
	}
	if w.Stats().Files < 5 {
		t.Fatalf("only %d files: the test needs rotations", w.Stats().Files)
	}
	// Every frame persisted: the checkpoint deletes all but the newest file,
	// whose head snapshot must now carry the whole table.
	checkpointAll(t, w)
	closeWAL(t, w)
	w, replayed := openWAL(t, opts)
	if got := producerMap(w); !maps.Equal(got, want) {
		t.Fatalf("table after checkpoint and reopen (%d batches replayed):\n got %v\nwant %v", len(replayed), got, want)
	}
	// Once more with nothing written in between: the new file's snapshot is
	// all there is.
	checkpointAll(t, w)
	closeWAL(t, w)
	w, _ = openWAL(t, opts)
	defer closeWAL(t, w)
	if got := producerMap(w); !maps.Equal(got, want) {
		t.Fatalf("table after a second reopen:\n got %v\nwant %v", got, want)
	}
	if w.Stats().Files != 2 {
		t.Fatalf("%d files, want the kept one and the new one", w.Stats().Files)
	}
}

func TestProducerTableExpires(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	opts := Options{Dir: dir, ProducerTTL: time.Hour, Now: clock}
	w, _ := openWAL(t, opts)
	writeBatches(t, w, []Batch{producerBatch("s", tiers.ProducerID{1}, 1, 0, 1)})
	now = now.Add(30 * time.Minute)
	writeBatches(t, w, []Batch{producerBatch("s", tiers.ProducerID{2}, 1, 1, 1)})
	closeWAL(t, w)
	now = now.Add(45 * time.Minute) // producer 1 is 75 minutes old, 2 is 45
	w, _ = openWAL(t, opts)         // the new file's snapshot drops 1 …
	checkpointAll(t, w)             // … and the file that held its batch goes
	closeWAL(t, w)
	w, _ = openWAL(t, opts)
	defer closeWAL(t, w)
	got := slices.Collect(maps.Keys(producerMap(w)))
	if len(got) != 1 || got[0].Producer != (tiers.ProducerID{2}) {
		t.Fatalf("producers after expiry: %v, want only producer 2", got)
	}
}

func TestProducerBatchValidation(t *testing.T) {
	for _, b := range []Batch{
		producerBatch("s", tiers.ProducerID{1}, 0, 0, 1),   // sequence 0
		{Stream: "s", Seq: 4, Records: []tiers.Record{{}}}, // a sequence without a producer
	} {
		if _, err := AppendFrame(nil, &b); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("AppendFrame(%+v) = %v, want ErrInvalidBatch", b, err)
		}
	}
}

// writeProducers logs one batch for each of n producers in stream "p".
func writeProducers(t *testing.T, w *WAL, n int) {
	t.Helper()
	bs := make([]Batch, n)
	for i := range bs {
		bs[i] = producerBatch("p", tiers.ProducerID{byte(i >> 8), byte(i), 15: 1}, 1, uint64(i), 1)
	}
	writeBatches(t, w, bs)
}

func TestSnapshotPlacementIsChecked(t *testing.T) {
	newestFile := func(dir string) string {
		files := walFiles(t, dir)
		return files[len(files)-1]
	}
	for _, tc := range []struct {
		name   string
		damage func(path string)
	}{
		{"snapshot after the first frame", func(path string) {
			b, _ := os.ReadFile(path)
			os.WriteFile(path, appendSnapshotFrame(b, nil), 0o644)
		}},
		{"producer batch in a version 1 file", func(path string) {
			b, _ := os.ReadFile(path)
			b = b[:headerLen]
			b[4] = 1
			pb := producerBatch("s", tiers.ProducerID{1}, 1, 0, 1)
			os.WriteFile(path, appendFrame(b, &pb), 0o644)
		}},
		{"version 2 file without its snapshot", func(path string) {
			b, _ := os.ReadFile(path)
			pb := Batch{Stream: "s", Records: []tiers.Record{{}}}
			os.WriteFile(path, appendFrame(b[:headerLen], &pb), 0o644)
		}},
		{"damaged snapshot of the newest file", func(path string) {
			b, _ := os.ReadFile(path)
			b[headerLen+frameHeaderLen+2] ^= 0x40 // inside the snapshot's first entry
			os.WriteFile(path, b, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, _ := openWAL(t, Options{Dir: dir})
			writeProducers(t, w, 3)
			closeWAL(t, w)
			w, _ = openWAL(t, Options{Dir: dir}) // a newest file whose snapshot holds 3
			closeWAL(t, w)
			path := newestFile(dir)
			tc.damage(path)
			_, err := Open(context.Background(), Options{Dir: dir}, nil)
			var ce *tiers.CorruptionError
			if !errors.As(err, &ce) || ce.Path != path {
				t.Fatalf("Open = %v, want a corruption error naming %s", err, path)
			}
		})
	}
	// A version-1 file of plain batches still opens.
	dir := t.TempDir()
	b := appendHeader(nil)
	b[4] = 1
	pb := Batch{Stream: "s", Records: []tiers.Record{{Value: []byte("old")}}}
	os.WriteFile(filepath.Join(dir, segmentName(1)), appendFrame(b, &pb), 0o644)
	w, replayed := openWAL(t, Options{Dir: dir})
	closeWAL(t, w)
	if len(replayed) != 1 || string(replayed[0].Records[0].Value) != "old" {
		t.Fatalf("version 1 file replayed %v", replayed)
	}
}

// A snapshot larger than SegmentBytes does not count towards it: frames
// still share files instead of each starting one (with its own copy of
// the snapshot and two fsyncs).
func TestLargeSnapshotDoesNotRotatePerFrame(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 16 << 10}
	w, _ := openWAL(t, opts)
	writeProducers(t, w, 1000) // a snapshot of about 50 KiB
	closeWAL(t, w)
	w, _ = openWAL(t, opts)
	defer closeWAL(t, w)
	before := w.Stats().Files
	for i := range 50 {
		writeBatches(t, w, []Batch{{Stream: "s", Records: []tiers.Record{{Offset: uint64(i), Value: []byte("small")}}}})
	}
	if grew := w.Stats().Files - before; grew > 0 {
		t.Fatalf("50 small frames started %d new files", grew)
	}
}

// eventFS records the syncs of the files the WAL opens.
type eventFS struct {
	mu     sync.Mutex
	events []string
}

type eventFile struct {
	*os.File
	fs *eventFS
}

func (f eventFile) Sync() error {
	f.fs.mu.Lock()
	f.fs.events = append(f.fs.events, "sync "+filepath.Base(f.Name()))
	f.fs.mu.Unlock()
	return f.File.Sync()
}

func (e *eventFS) open(path string, flag int, perm os.FileMode) (SegmentFile, error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return eventFile{f, e}, nil
}

// Frames a crash left written but not synced are replayed from the page
// cache; Open syncs them before it writes the next file's snapshot (which
// would otherwise make a retry of such a batch a "duplicate" of data a
// power loss can still take) and before anything is appended.
func TestOpenSyncsTheReplayedNewestFile(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir, Sync: tiers.SyncNone}) // never fsyncs its frames
	writeBatches(t, w, []Batch{producerBatch("s", tiers.ProducerID{1}, 1, 0, 3)})
	closeWAL(t, w)
	newest := filepath.Base(walFiles(t, dir)[0])
	fs := &eventFS{}
	w, _ = openWAL(t, Options{Dir: dir, OpenFile: fs.open})
	defer closeWAL(t, w)
	want := []string{"sync " + newest, "sync " + segmentName(2) + tmpSuffix}
	if len(fs.events) < 2 || fs.events[0] != want[0] || fs.events[1] != want[1] {
		t.Fatalf("Open's syncs %v, want %v first: the replayed file before the new one", fs.events, want)
	}
}

// Producer batches enqueued together form one group larger than
// SegmentBytes: it goes whole into a new file (a group never spans files),
// and the table still holds each producer's last batch, on reopen and
// after every older file is checkpointed away.
func TestProducerTableWithAGroupOverSegmentBytes(t *testing.T) {
	dir := t.TempDir()
	g := &gateFS{release: make(chan struct{}), holding: make(chan struct{})}
	opts := Options{Dir: dir, SegmentBytes: 512, OpenFile: g.open}
	w, _ := openWAL(t, opts)
	want := map[ProducerKey]ProducerState{}
	note := func(b Batch) {
		want[ProducerKey{b.Stream, b.Producer}] = ProducerState{Stream: b.Stream, Producer: b.Producer, Seq: b.Seq,
			First: b.Records[0].Offset, Count: uint64(len(b.Records))}
	}
	lone := producerBatch("g", tiers.ProducerID{99, 15: 1}, 1, 0, 1)
	writeEach(t, w, []Batch{lone}) // the first file has frames
	note(lone)
	// The next batch's fsync is held until the 40 are queued: they form
	// one group, over SegmentBytes, which must go whole into a new file.
	g.armed.Store(true)
	heldBatch := producerBatch("h", tiers.ProducerID{98, 15: 1}, 1, 0, 1)
	held := w.Enqueue(heldBatch)
	note(heldBatch)
	<-g.holding
	tickets := []*Ticket{held}
	for i := range 40 {
		b := producerBatch("g", tiers.ProducerID{byte(i % 7), 15: 1}, uint64(i+1), uint64(1+i*2), 2)
		tickets = append(tickets, w.Enqueue(b))
		note(b)
	}
	close(g.release)
	for _, tk := range tickets {
		if err := tk.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var counts []int
	for _, f := range walFiles(t, dir) {
		counts = append(counts, len(frameStarts(t, f)))
	}
	// lone and held (small, they share the file) | the group of 40
	if want := []int{2, 40}; !slices.Equal(counts, want) {
		t.Fatalf("frames per file = %v, want %v", counts, want)
	}
	if got := producerMap(w); !maps.Equal(got, want) {
		t.Fatalf("table while open:\n got %v\nwant %v", got, want)
	}
	closeWAL(t, w)
	w, _ = openWAL(t, opts)
	checkpointAll(t, w)
	closeWAL(t, w)
	w, _ = openWAL(t, opts)
	defer closeWAL(t, w)
	if got := producerMap(w); !maps.Equal(got, want) {
		t.Fatalf("table after checkpoint and reopen:\n got %v\nwant %v", got, want)
	}
}

// checkpointAll checkpoints w as if every stream were persisted: every
// file but the one being written goes.
func checkpointAll(t *testing.T, w *WAL) {
	t.Helper()
	if _, err := w.Checkpoint(func(string) uint64 { return 1 << 62 }); err != nil {
		t.Fatal(err)
	}
}
