package wal

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/tiers"
)

// refuseFS is an OpenFile seam for the conditions a log must get past
// without stopping: creating a file fails (out of descriptors), a write
// runs out of space part way, a file being created cannot be synced.
type refuseFS struct {
	openErr    atomic.Pointer[error] // opening a .tmp file fails with it
	hold       atomic.Bool           // the next open of a .tmp file waits for holdOpen to close
	holdOpen   chan struct{}
	opening    chan struct{} // closed when an open is being held
	enospc     atomic.Bool   // a write writes half, then fails with ENOSPC
	tmpSyncErr atomic.Bool   // fsync of a .tmp file fails with EIO
	truncErr   atomic.Bool   // Truncate fails with EIO
	tmpOpens   atomic.Int64
}

func (fs *refuseFS) open(path string, flag int, perm os.FileMode) (SegmentFile, error) {
	tmp := strings.HasSuffix(path, tmpSuffix)
	if tmp {
		fs.tmpOpens.Add(1)
		if fs.hold.CompareAndSwap(true, false) {
			close(fs.opening)
			<-fs.holdOpen
		}
		if p := fs.openErr.Load(); p != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: *p}
		}
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return &refuseFile{File: f, fs: fs, tmp: tmp}, nil
}

func (fs *refuseFS) failOpen(err error) { fs.openErr.Store(&err) }

// heal clears every fault.
func (fs *refuseFS) heal() {
	fs.openErr.Store(nil)
	fs.enospc.Store(false)
	fs.tmpSyncErr.Store(false)
	fs.truncErr.Store(false)
}

type refuseFile struct {
	*os.File
	fs  *refuseFS
	tmp bool
}

func (f *refuseFile) Write(p []byte) (int, error) {
	if f.fs.enospc.Load() {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func (f *refuseFile) Sync() error {
	if f.tmp && f.fs.tmpSyncErr.Load() {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

func (f *refuseFile) Truncate(size int64) error {
	if f.fs.truncErr.Load() {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Truncate(size)
}

// unwrittenLog collects what Options.Unwritten is told.
type unwrittenLog struct {
	mu    sync.Mutex
	calls []map[string]uint64
}

func (u *unwrittenLog) note(firsts map[string]uint64) {
	u.mu.Lock()
	u.calls = append(u.calls, maps.Clone(firsts))
	u.mu.Unlock()
}

func (u *unwrittenLog) all() []map[string]uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]map[string]uint64(nil), u.calls...)
}

// waitRefused polls Stats until Refused is nil (want false) or set (want
// true). The bound only keeps a bug from hanging the run.
func waitRefused(t *testing.T, w *WAL, want bool) Stats {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		s := w.Stats()
		if (s.Refused != nil) == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats.Refused = %v, want refused=%v", s.Refused, want)
		}
	}
}

// noTempFiles fails the test if a .tmp file is left in dir.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix))
	if len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// A failure to create the next file refuses the group with nothing
// written; the log stays healthy, retries by itself, and takes the same
// batch once the condition is gone.
func TestCreateFailureIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		arm   func(*refuseFS)
		cause string
	}{
		{"out of descriptors", func(fs *refuseFS) { fs.failOpen(syscall.EMFILE) }, tiers.CauseDescriptors},
		{"no space for the head", func(fs *refuseFS) { fs.enospc.Store(true) }, tiers.CauseDiskFull},
		{"permission", func(fs *refuseFS) { fs.failOpen(syscall.EACCES) }, tiers.CauseStorage},
		{"fsync of the new file", func(fs *refuseFS) { fs.tmpSyncErr.Store(true) }, tiers.CauseStorage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := &refuseFS{}
			var un unwrittenLog
			opts := Options{Dir: t.TempDir(), SegmentBytes: 1, OpenFile: fs.open, Unwritten: un.note, RetryInterval: 20 * time.Millisecond}
			w, _ := openWAL(t, opts)
			batches := genBatches(1, 2, 3, 50)
			writeEach(t, w, batches[:1]) // the current file has frames: the next group rotates

			tc.arm(fs)
			err := w.Enqueue(batches[1]).Wait(context.Background())
			if !errors.Is(err, tiers.ErrStorageUnavailable) || errors.Is(err, tiers.ErrStorageFailed) {
				t.Fatalf("Wait = %v, want tiers.ErrStorageUnavailable (and not ErrStorageFailed)", err)
			}
			if got := tiers.StorageCause(err); got != tc.cause {
				t.Errorf("cause of %v = %q, want %q", err, got, tc.cause)
			}
			want := []map[string]uint64{{batches[1].Stream: batches[1].Records[0].Offset}}
			if got := un.all(); len(got) != 1 || !maps.Equal(got[0], want[0]) {
				t.Errorf("Unwritten told %v, want %v", got, want)
			}
			s := w.Stats()
			if s.Failed != nil || !errors.Is(s.Refused, tiers.ErrStorageUnavailable) || s.RefusedSince.IsZero() {
				t.Fatalf("Stats: Failed %v, Refused %v since %v; want refused, not failed", s.Failed, s.Refused, s.RefusedSince)
			}
			// The log retries by itself while the condition lasts.
			opens := fs.tmpOpens.Load()
			for deadline := time.Now().Add(30 * time.Second); fs.tmpOpens.Load() < opens+3; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the log does not retry creating the file")
				}
			}
			if s := w.Stats(); s.Refused == nil || s.RefusedSince != w.Stats().RefusedSince {
				t.Fatalf("still failing, Stats.Refused = %v", s.Refused)
			}
			noTempFiles(t, opts.Dir)

			fs.heal()
			waitRefused(t, w, false) // with no traffic: the retry found it gone
			if err := w.Enqueue(batches[1]).Wait(context.Background()); err != nil {
				t.Fatalf("after healing: Wait = %v", err)
			}
			closeWAL(t, w)
			w, replayed := openWAL(t, Options{Dir: opts.Dir})
			defer closeWAL(t, w)
			if err := batchesEqual(replayed, batches); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A write that runs out of space part way is truncated back: the group is
// refused, the file is as it was, and the log goes on, in every sync mode.
func TestFullDiskWriteIsUndone(t *testing.T) {
	for _, mode := range []tiers.SyncMode{tiers.SyncAlways, tiers.SyncInterval, tiers.SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			fs := &refuseFS{}
			var un unwrittenLog
			// The refusal outlasts its last refused group by 2 s.
			opts := Options{Dir: t.TempDir(), Sync: mode, OpenFile: fs.open, Unwritten: un.note, RetryInterval: time.Second}
			w, _ := openWAL(t, opts)
			batches := genBatches(2, 4, 3, 200)
			writeEach(t, w, batches[:2])
			files := walFiles(t, opts.Dir)
			cur := files[len(files)-1]
			before, err := os.Stat(cur)
			if err != nil {
				t.Fatal(err)
			}

			fs.enospc.Store(true)
			err = w.Enqueue(batches[2]).Wait(context.Background())
			if !errors.Is(err, tiers.ErrStorageUnavailable) || !errors.Is(err, syscall.ENOSPC) || tiers.StorageCause(err) != tiers.CauseDiskFull {
				t.Fatalf("Wait = %v, want tiers.ErrStorageUnavailable with ENOSPC", err)
			}
			after, err := os.Stat(cur)
			if err != nil {
				t.Fatal(err)
			}
			if after.Size() != before.Size() {
				t.Fatalf("%s is %d bytes after the refused write, was %d", cur, after.Size(), before.Size())
			}
			if s := w.Stats(); s.Failed != nil || s.Refused == nil || s.Bytes != sumSizes(t, opts.Dir) {
				t.Fatalf("Stats: Failed %v, Refused %v, %d bytes (on disk %d)", s.Failed, s.Refused, s.Bytes, sumSizes(t, opts.Dir))
			}
			if got := un.all(); len(got) != 1 || got[0][batches[2].Stream] != batches[2].Records[0].Offset {
				t.Errorf("Unwritten told %v", got)
			}

			fs.heal()
			writeEach(t, w, batches[2:]) // the same batch again, then the next
			waitRefused(t, w, false)
			closeWAL(t, w)
			w, replayed := openWAL(t, Options{Dir: opts.Dir})
			defer closeWAL(t, w)
			if err := batchesEqual(replayed, batches); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func sumSizes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, f := range walFiles(t, dir) {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// A write out of space that cannot be truncated back leaves bytes the log
// cannot vouch for: that stops it.
func TestUndoFailureIsSticky(t *testing.T) {
	fs := &refuseFS{}
	opts := Options{Dir: t.TempDir(), OpenFile: fs.open}
	w, _ := openWAL(t, opts)
	batches := genBatches(1, 2, 1, 100)
	writeEach(t, w, batches[:1])
	fs.enospc.Store(true)
	fs.truncErr.Store(true)
	err := w.Enqueue(batches[1]).Wait(context.Background())
	if !errors.Is(err, tiers.ErrStorageFailed) || !strings.Contains(err.Error(), "truncate") {
		t.Fatalf("Wait = %v, want tiers.ErrStorageFailed naming the truncate", err)
	}
	if err := w.Close(); !errors.Is(err, tiers.ErrStorageFailed) {
		t.Errorf("Close = %v, want the sticky failure", err)
	}
	// The half-written frame is a torn tail: a reopen drops it.
	w, replayed := openWAL(t, Options{Dir: opts.Dir})
	defer closeWAL(t, w)
	if err := batchesEqual(replayed, batches[:1]); err != nil {
		t.Fatal(err)
	}
}

// Batches queued behind a refused group were given offsets that follow the
// refused ones: they are refused with it, Unwritten is told each stream's
// lowest unwritten offset, and Enqueue refuses until Unwritten returns.
func TestQueuedGroupsAreRefusedWithTheFailedOne(t *testing.T) {
	fs := &refuseFS{holdOpen: make(chan struct{}), opening: make(chan struct{})}
	var un unwrittenLog
	var during *Ticket
	var w *WAL
	opts := Options{Dir: t.TempDir(), SegmentBytes: 1, OpenFile: fs.open, RetryInterval: time.Hour,
		Unwritten: func(firsts map[string]uint64) {
			un.note(firsts)
			during = w.Enqueue(genBatches(1, 1, 1, 1)[0]) // refused while offsets are taken back
		}}
	w, _ = openWAL(t, opts)
	batches := genBatches(2, 6, 2, 20) // streams 0 and 1 alternate
	writeEach(t, w, batches[:2])

	fs.failOpen(syscall.EMFILE)
	fs.hold.Store(true)
	failing := w.Enqueue(batches[2]) // stream-0: rotates, and the open is held
	<-fs.opening
	queued := []*Ticket{w.Enqueue(batches[3]), w.Enqueue(batches[4]), w.Enqueue(batches[5])}
	close(fs.holdOpen)
	for i, tk := range append([]*Ticket{failing}, queued...) {
		if err := tk.Wait(context.Background()); !errors.Is(err, tiers.ErrStorageUnavailable) {
			t.Fatalf("ticket %d: Wait = %v, want tiers.ErrStorageUnavailable", i, err)
		}
	}
	want := map[string]uint64{"stream-0": batches[2].Records[0].Offset, "stream-1": batches[3].Records[0].Offset}
	if got := un.all(); len(got) != 1 || !maps.Equal(got[0], want) {
		t.Fatalf("Unwritten told %v, want one call with %v", got, want)
	}
	if during == nil || !during.Done() {
		t.Fatal("Enqueue during Unwritten was not refused at once")
	}
	if err := during.Wait(context.Background()); !errors.Is(err, tiers.ErrStorageUnavailable) {
		t.Fatalf("Enqueue during Unwritten: %v", err)
	}
	fs.heal()
	writeEach(t, w, batches[2:])
	closeWAL(t, w)
	w, replayed := openWAL(t, Options{Dir: opts.Dir})
	defer closeWAL(t, w)
	if err := batchesEqual(replayed, batches); err != nil {
		t.Fatal(err)
	}
}

// The head of every file holds the producer table as of its first byte:
// a refused group's producer batches are not in it, and a snapshot written
// after the refusal holds every batch written before.
func TestRefusedProducerBatchesStayOutOfTheTable(t *testing.T) {
	fs := &refuseFS{}
	opts := Options{Dir: t.TempDir(), SegmentBytes: 1, OpenFile: fs.open, RetryInterval: time.Hour}
	w, _ := openWAL(t, opts)
	p := tiers.ProducerID{7, 15: 1}
	writeEach(t, w, []Batch{producerBatch("s", p, 1, 0, 2)})
	fs.failOpen(syscall.EMFILE)
	if err := w.Enqueue(producerBatch("s", p, 2, 2, 2)).Wait(context.Background()); !errors.Is(err, tiers.ErrStorageUnavailable) {
		t.Fatalf("Wait = %v", err)
	}
	want := map[ProducerKey]ProducerState{{"s", p}: {Stream: "s", Producer: p, Seq: 1, First: 0, Count: 2}}
	if got := producerMap(w); !maps.Equal(got, want) {
		t.Fatalf("table after the refusal: %v, want %v", got, want)
	}
	fs.heal()
	other := tiers.ProducerID{8, 15: 1}
	writeEach(t, w, []Batch{producerBatch("t", other, 1, 0, 1)}) // in a new file, whose snapshot holds s's batch 1
	want[ProducerKey{"t", other}] = ProducerState{Stream: "t", Producer: other, Seq: 1, First: 0, Count: 1}
	closeWAL(t, w)
	w, _ = openWAL(t, Options{Dir: opts.Dir})
	checkpointAll(t, w) // only the newest files remain: their snapshots must say it all
	closeWAL(t, w)
	w, _ = openWAL(t, Options{Dir: opts.Dir})
	defer closeWAL(t, w)
	got := producerMap(w)
	for k, v := range got {
		v.At = 0
		got[k] = v
	}
	if !maps.Equal(got, want) {
		t.Fatalf("table after checkpoint and reopen: %v, want %v", got, want)
	}
}
