package wal

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/tiers"
)

// faultFS is an OpenFile seam whose files fail on demand once armed.
type faultFS struct {
	shortWrite atomic.Bool // Write writes half and reports it without error
	writeErr   atomic.Bool // Write writes nothing and returns EIO
	syncErr    atomic.Bool // Sync returns EIO
	// holdSync makes the next Sync wait for release, then fail with EIO.
	holdSync atomic.Bool
	held     chan struct{} // closed when a Sync is being held
	release  chan struct{}
	writes   atomic.Int64
}

func (fs *faultFS) open(path string, flag int, perm os.FileMode) (SegmentFile, error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

// heal clears every fault and the write count.
func (fs *faultFS) heal() {
	fs.shortWrite.Store(false)
	fs.writeErr.Store(false)
	fs.syncErr.Store(false)
	fs.writes.Store(0)
}

type faultFile struct {
	*os.File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	f.fs.writes.Add(1)
	switch {
	case f.fs.shortWrite.Load():
		return f.File.Write(p[:len(p)/2])
	case f.fs.writeErr.Load():
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if f.fs.holdSync.CompareAndSwap(true, false) {
		close(f.fs.held)
		<-f.fs.release
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	if f.fs.syncErr.Load() {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

func TestStorageFailureIsSticky(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  tiers.SyncMode
		arm   func(*faultFS)
		cause error
		// whole is how many of the three batches a reopen replays: the
		// first always, the failing one only if its frame reached the file
		// whole.
		whole int
	}{
		{"short write", tiers.SyncAlways, func(fs *faultFS) { fs.shortWrite.Store(true) }, nil, 1},
		{"write error", tiers.SyncAlways, func(fs *faultFS) { fs.writeErr.Store(true) }, syscall.EIO, 1},
		{"fsync error", tiers.SyncAlways, func(fs *faultFS) { fs.syncErr.Store(true) }, syscall.EIO, 2},
		{"write error, sync none", tiers.SyncNone, func(fs *faultFS) { fs.writeErr.Store(true) }, syscall.EIO, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := &faultFS{}
			opts := Options{Dir: t.TempDir(), Sync: tc.mode, OpenFile: fs.open}
			w, _ := openWAL(t, opts)
			batches := genBatches(1, 3, 2, 300)
			writeEach(t, w, batches[:1])

			tc.arm(fs)
			err := w.Enqueue(batches[1]).Wait(context.Background())
			if !errors.Is(err, tiers.ErrStorageFailed) {
				t.Fatalf("failing group: Wait = %v, want tiers.ErrStorageFailed", err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("error %v does not carry the cause %v", err, tc.cause)
			}
			// Healthy again, the WAL still refuses: fail-stop until reopened.
			fs.heal()
			if err := w.Enqueue(batches[2]).Wait(context.Background()); !errors.Is(err, tiers.ErrStorageFailed) {
				t.Fatalf("later ticket: Wait = %v, want tiers.ErrStorageFailed", err)
			}
			if fs.writes.Load() != 0 {
				t.Errorf("the failed WAL wrote %d more times", fs.writes.Load())
			}
			if s := w.Stats(); !errors.Is(s.Failed, tiers.ErrStorageFailed) {
				t.Errorf("Stats.Failed = %v", s.Failed)
			}
			if err := w.Close(); !errors.Is(err, tiers.ErrStorageFailed) {
				t.Errorf("Close = %v, want the sticky failure", err)
			}

			w, replayed := openWAL(t, Options{Dir: opts.Dir})
			defer closeWAL(t, w)
			if err := batchesEqual(replayed, batches[:tc.whole]); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestIntervalSyncFailure(t *testing.T) {
	fs := &faultFS{}
	opts := Options{Dir: t.TempDir(), Sync: tiers.SyncInterval, SyncInterval: time.Millisecond, OpenFile: fs.open}
	w, _ := openWAL(t, opts)
	batches := genBatches(1, 2, 1, 10)
	fs.syncErr.Store(true)
	// Acknowledged after the write; the timer's fsync fails afterwards.
	if err := w.Enqueue(batches[0]).Wait(context.Background()); err != nil {
		t.Fatalf("Wait = %v, want nil (interval mode acks after write)", err)
	}
	// Not a timing assertion: the bound only keeps a bug from hanging the run.
	for deadline := time.Now().Add(30 * time.Second); w.Stats().Failed == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the interval fsync never ran")
		}
	}
	if err := w.Enqueue(batches[1]).Wait(context.Background()); !errors.Is(err, tiers.ErrStorageFailed) {
		t.Fatalf("after the failed fsync: Wait = %v, want tiers.ErrStorageFailed", err)
	}
	if err := w.Close(); !errors.Is(err, tiers.ErrStorageFailed) || !strings.Contains(err.Error(), "fsync") {
		t.Errorf("Close = %v, want the sticky fsync failure", err)
	}
}

// Rotation syncs the file it leaves before the next one exists; when that
// fsync of written frames fails the log stops (fsyncgate), unlike a failure
// to create the next file (TestCreateFailureIsRefused).
func TestRotationFsyncFailureIsSticky(t *testing.T) {
	fs := &faultFS{}
	// Interval mode with a long interval: the file is dirty at rotation.
	opts := Options{Dir: t.TempDir(), Sync: tiers.SyncInterval, SyncInterval: time.Hour, SegmentBytes: 1, OpenFile: fs.open}
	w, _ := openWAL(t, opts)
	batches := genBatches(1, 3, 1, 10)
	writeEach(t, w, batches[:1])
	// The next frame rotates, and the old file's fsync at rotation fails.
	fs.syncErr.Store(true)
	if err := w.Enqueue(batches[1]).Wait(context.Background()); !errors.Is(err, tiers.ErrStorageFailed) {
		t.Fatalf("Wait = %v, want tiers.ErrStorageFailed", err)
	}
	fs.syncErr.Store(false)
	if err := w.Enqueue(batches[2]).Wait(context.Background()); !errors.Is(err, tiers.ErrStorageFailed) {
		t.Fatalf("later Wait = %v, want tiers.ErrStorageFailed", err)
	}
	w.Close()
	w, replayed := openWAL(t, Options{Dir: opts.Dir})
	defer closeWAL(t, w)
	if err := batchesEqual(replayed, batches[:1]); err != nil {
		t.Fatal(err)
	}
}

func TestGroupQueuedDuringFailureIsNotWritten(t *testing.T) {
	fs := &faultFS{held: make(chan struct{}), release: make(chan struct{})}
	opts := Options{Dir: t.TempDir(), OpenFile: fs.open}
	w, _ := openWAL(t, opts)
	batches := genBatches(1, 2, 1, 10)
	fs.holdSync.Store(true)
	first := w.Enqueue(batches[0])
	<-fs.held // the committer is inside the fsync that will fail
	writes := fs.writes.Load()
	second := w.Enqueue(batches[1]) // queued before the failure is known
	close(fs.release)
	for i, tk := range []*Ticket{first, second} {
		if err := tk.Wait(context.Background()); !errors.Is(err, tiers.ErrStorageFailed) {
			t.Fatalf("ticket %d: Wait = %v, want tiers.ErrStorageFailed", i, err)
		}
	}
	if n := fs.writes.Load() - writes; n != 0 {
		t.Fatalf("%d writes after the failed fsync, want none", n)
	}
	w.Close()
	w, replayed := openWAL(t, Options{Dir: opts.Dir})
	defer closeWAL(t, w)
	// The first frame reached the file whole (only its fsync failed); the
	// second never did.
	if err := batchesEqual(replayed, batches[:1]); err != nil {
		t.Fatal(err)
	}
}
