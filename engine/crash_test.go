package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/internal/vfs"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// The whole local engine (WAL, warm store, catalog, and a cold tier on a
// file object store) crashed at many points through the filesystem seam.
//
// Each run starts an engine whose WAL, warm store and file object store live
// on a vfs.MemFS, and runs one workload: acknowledged appends to two
// streams, seals and persists to warm, uploads to cold and drops of warm
// copies, WAL checkpoints. After the Nth mutating filesystem call the disk
// dies (MemFS.FailAfter): every later create, write, sync, rename or removal
// fails and changes nothing. The workload stops at its first error, the
// engine is closed, and the power goes: CrashClone keeps what was synced
// (and, seeded per run, torn tails of unsynced appends and unsynced
// directory changes, as a real disk may). A new engine opens on what the
// crash left, and every acknowledged record must be read back exactly once,
// at the offset its append answered, in order, with offsets dense from 0;
// the batch in flight at the crash is there whole or not at all; and the
// next append gets the next offset.
//
// The catalog cannot go through the seam: bbolt opens its file itself. It
// lives on a real temporary directory and is not crashed, and that is sound
// because bbolt fsyncs every commit before it returns: what the catalog
// holds at the end of the run is what a power loss at the end of the run
// would keep. The filesystem's state at the end of the run is its synced
// state at call N, since nothing after N took effect. So each run is a real
// history: the disk failed at N, the process went on until it was closed,
// then the power went. A catalog commit after N refers only to files whose
// own steps (fsync, rename, directory fsync) succeeded before N; if the
// engine ever committed to the catalog a file that the crash can take away,
// the reopened engine would miss records and the test fails.

// crashRounds is how many rounds of appends the workload makes: a flush
// every fourth, a move of one segment per stream every eighth.
const crashRounds = 32

// crashStreams are the workload's streams.
var crashStreams = []string{"alpha", "beta"}

// crashValue is the value of the i-th record appended to stream.
func crashValue(stream string, i int) []byte {
	return fmt.Appendf(nil, `{"s":%q,"i":%d,"pad":"%040d"}`, stream, i, i)
}

// crashRun is what one workload run appended: per stream, the values of
// the acknowledged records in offset order, and the batch in flight when
// the workload stopped, if any.
type crashRun struct {
	acked   map[string][][]byte
	pending map[string][][]byte // the unacknowledged batch: all or nothing
	err     error               // what stopped the workload; nil if it ran to the end
	moves   int                 // segments uploaded and dropped from warm
}

func crashOptions(dataDir string, fsys vfs.FS, ct *cold.Tier) Options {
	return Options{
		DataDir:         dataDir,
		FS:              fsys,
		WALSegmentBytes: 2 << 10, // rotations and checkpoints
		SegmentMaxBytes: 1 << 20, // seals come from Flush
		SegmentMaxAge:   time.Hour,
		HotResidency:    time.Hour,
		HotTick:         time.Hour,
		Cold:            ct,
	}
}

// crashCold is a cold tier over a file object store on fsys.
func crashCold(t *testing.T, fsys vfs.FS, dataDir string) *cold.Tier {
	t.Helper()
	b, err := objstore.NewFileFS(fsys, filepath.Join(dataDir, "cold"))
	if err != nil {
		return nil
	}
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir(), RowGroupRows: 16})
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// crashWorkload runs the workload until it is done or its first error.
func crashWorkload(t *testing.T, fsys vfs.FS, dataDir string) crashRun {
	return crashWorkloadTS(t, fsys, dataDir, func(i int) int64 { return int64(1_000_000 + i) })
}

// crashWorkloadTS is crashWorkload with tsOf(i) the ts of a stream's i-th
// record.
func crashWorkloadTS(t *testing.T, fsys vfs.FS, dataDir string, tsOf func(i int) int64) crashRun {
	ctx := context.Background()
	run := crashRun{acked: map[string][][]byte{}, pending: map[string][][]byte{}}
	ct := crashCold(t, fsys, dataDir)
	if ct == nil {
		run.err = errors.New("the cold store does not open")
		return run // the disk died before the store could be made
	}
	e, err := Open(ctx, crashOptions(dataDir, fsys, ct))
	if err != nil {
		ct.Close()
		run.err = err
		return run
	}
	defer e.Close(ctx)
	next := map[string]int{}
	moved := map[string]int{} // segments of the stream uploaded and dropped
	for round := range crashRounds {
		for _, s := range crashStreams {
			recs := make([]tiers.Record, 1+round%3)
			var vals [][]byte
			for i := range recs {
				v := crashValue(s, next[s]+i)
				recs[i] = tiers.Record{TS: tsOf(next[s] + i), Key: fmt.Sprintf("k%d", i), Value: v}
				vals = append(vals, v)
			}
			res, err := e.Append(ctx, s, recs)
			if err != nil {
				run.pending[s], run.err = vals, err
				return run
			}
			if res.First != uint64(next[s]) {
				t.Fatalf("append to %s answered offset %d, want %d", s, res.First, next[s])
			}
			run.acked[s] = append(run.acked[s], vals...)
			next[s] += len(recs)
		}
		if round%4 != 3 {
			continue
		}
		if err := e.Flush(ctx); err != nil {
			run.err = err
			return run
		}
		if round%8 != 7 {
			continue
		}
		// Move the oldest segment not moved yet of each stream: upload,
		// then drop the warm copy.
		for _, s := range crashStreams {
			segs, err := e.Segments(ctx, s)
			if err != nil {
				run.err = err
				return run
			}
			if moved[s] >= len(segs) {
				continue
			}
			base := segs[moved[s]].Base
			for _, k := range []policy.ActionKind{policy.Upload, policy.DropWarm} {
				if err := e.Execute(ctx, policy.Action{Kind: k, Stream: s, Base: base}); err != nil {
					run.err = fmt.Errorf("%s %s/%d: %w", k, s, base, err)
					return run
				}
			}
			moved[s]++
			run.moves++
		}
	}
	return run
}

// durableDir makes dir exist in m and survive crashes, as a data directory
// an operator created long ago.
func durableDir(t *testing.T, m *vfs.MemFS, dir string) {
	t.Helper()
	if err := m.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := vfs.SyncDir(m, d); err != nil {
			t.Fatal(err)
		}
		if d == filepath.Dir(d) {
			return
		}
	}
}

// crashCheck reopens the engine on what the crash left and checks it
// against what the run acknowledged.
//
// It returns what the streams hold now: the records read and one appended
// to each stream after the check, all acknowledged.
func crashCheck(t *testing.T, fsys vfs.FS, dataDir string, run crashRun) crashRun {
	t.Helper()
	now := crashRun{acked: map[string][][]byte{}, pending: map[string][][]byte{}}
	ctx := context.Background()
	ct := crashCold(t, fsys, dataDir)
	if ct == nil {
		t.Fatal("cold store does not open after the crash")
	}
	e, err := Open(ctx, crashOptions(dataDir, fsys, ct))
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer e.Close(ctx)
	for _, s := range crashStreams {
		var got [][]byte
		for it, err := range e.Read(ctx, s, tiers.AllRecords()) {
			if errors.Is(err, tiers.ErrStreamNotFound) {
				break
			}
			if err != nil {
				t.Fatalf("read %s after the crash: %v", s, err)
			}
			if it.Offset != uint64(len(got)) {
				t.Fatalf("%s: record at offset %d follows %d records: offsets not dense", s, it.Offset, len(got))
			}
			got = append(got, it.Value)
		}
		acked, pending := run.acked[s], run.pending[s]
		if len(got) < len(acked) {
			t.Fatalf("%s: %d records after the crash, %d were acknowledged", s, len(got), len(acked))
		}
		for i, v := range acked {
			if string(got[i]) != string(v) {
				t.Fatalf("%s offset %d: %q, acknowledged %q", s, i, got[i], v)
			}
		}
		extra := got[len(acked):]
		if len(extra) != 0 && (len(extra) != len(pending) || !slices.EqualFunc(extra, pending, func(a, b []byte) bool { return string(a) == string(b) })) {
			t.Fatalf("%s: %d records beyond the acknowledged ones; the batch in flight had %d: %q", s, len(extra), len(pending), extra)
		}
		// The next append continues the stream: no offset is handed out
		// twice.
		res, err := e.Append(ctx, s, []tiers.Record{{TS: 1, Value: []byte("after")}})
		if err != nil {
			t.Fatalf("append to %s after the crash: %v", s, err)
		}
		if res.First != uint64(len(got)) {
			t.Fatalf("%s: append after the crash got offset %d, the stream holds %d records", s, res.First, len(got))
		}
		now.acked[s] = append(got, []byte("after"))
	}
	return now
}

// TestCrashEngine crashes the engine after every mutating filesystem call
// of its workload (spread over them, were there more than maxCrashPoints),
// at least minCrashPoints times.
func TestCrashEngine(t *testing.T) {
	const minCrashPoints, maxCrashPoints = 200, 1000
	// One run without a crash counts the workload's mutating calls.
	m := vfs.NewCrashableMem()
	dir := t.TempDir()
	durableDir(t, m, dir)
	setup := m.MutatingOps()
	full := crashWorkload(t, m, dir)
	total := m.MutatingOps() - setup
	if full.err != nil || full.moves == 0 {
		t.Fatalf("the workload without a crash stopped after %d moves: %v", full.moves, full.err)
	}
	crashCheck(t, m.CrashClone(vfs.CrashOptions{}), dir, full)
	t.Logf("the workload makes %d mutating filesystem calls, %d moves to cold", total, full.moves)

	var points []int64
	for i := range min(total, maxCrashPoints-1) + 1 {
		points = append(points, i*total/min(total, maxCrashPoints-1))
	}
	if len(points) < minCrashPoints {
		t.Fatalf("%d crash points; the workload must make at least %d mutating calls", len(points), minCrashPoints)
	}
	start := time.Now()
	// A run mostly waits for the catalog's fsyncs: a few at a time keep two
	// cores busy. (t.Run may be called from several goroutines.)
	work := make(chan int64)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for n := range work {
				crashAt(t, n)
			}
		})
	}
	for _, n := range points {
		work <- n
	}
	close(work)
	wg.Wait()
	t.Logf("%d crash points in %v", len(points), time.Since(start).Round(time.Millisecond))
}

// crashAt runs the workload on a disk that dies after n mutating calls,
// crashes and checks.
func crashAt(t *testing.T, n int64) {
	t.Helper()
	t.Run(fmt.Sprintf("after-%d", n), func(t *testing.T) {
		m := vfs.NewCrashableMem()
		dir := t.TempDir()
		durableDir(t, m, dir)
		m.FailAfter(m.MutatingOps()+n, syscall.EIO)
		run := crashWorkload(t, m, dir)
		// Half the crashes keep nothing unsynced; the others keep torn
		// tails and unsynced directory changes at random.
		opts := vfs.CrashOptions{}
		if n%2 == 1 {
			opts = vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(n), 7)), TornProb: 0.5, DirProb: 0.3}
		}
		// The catalog as the run left it, for the second history below.
		catalogPath := filepath.Join(dir, "catalog.db")
		saved, err := os.ReadFile(catalogPath)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		crashCheck(t, m.CrashClone(opts), dir, run)

		// The other history: the process died at the same point but the
		// disk kept all it was given (and lives again). What the engine
		// recovers from that, and serves, must survive a power loss right
		// after it.
		if saved != nil {
			if err := os.WriteFile(catalogPath, saved, 0o600); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Remove(catalogPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		m.FailAfter(-1, nil)
		served := crashCheck(t, m, dir, run)
		crashCheck(t, m.CrashClone(vfs.CrashOptions{}), dir, served)
	})
}
