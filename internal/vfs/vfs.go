// Package vfs is the filesystem seam of tierd's file-writing tiers (the WAL,
// the warm store, the file object store and the catalog's rebuild), modelled
// on Pebble's vfs package: every create, write, sync, rename and removal goes
// through an FS, so that a test can run the whole local engine on a
// filesystem that forgets what was not synced (NewCrashableMem) and prove
// that a power loss at any point loses and doubles nothing.
//
// Default is the operating system's filesystem; its files are *os.File, so
// code that needs the descriptor (warm's mmap, writeback hints) gets it
// through Map and StartWriteback, and a memory filesystem's files are read
// into memory instead.
package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File is an open file of an FS: what the WAL, the warm store and the
// object store need of one. *os.File implements it.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes the file's contents durable (fsync). For a directory
	// opened with OpenDir it makes its entries durable.
	Sync() error
	// Truncate changes the file's size; the change is durable after Sync.
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	// Name is the name the file was opened with.
	Name() string
}

// FS is a filesystem. Paths are the operating system's (filepath), so that
// a memory filesystem and Default take the same names. Errors are
// *fs.PathError / *os.LinkError wrapping syscall errnos, as the os package
// returns them, so errors.Is(err, fs.ErrNotExist) works for every FS.
type FS interface {
	// OpenFile opens name with os.OpenFile's flags and permissions.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Open opens name for reading.
	Open(name string) (File, error)
	// OpenDir opens a directory so that its Sync makes its entries (files
	// created, renamed or removed in it) durable.
	OpenDir(name string) (File, error)
	// CreateTemp creates a new file in dir as os.CreateTemp does (pattern's
	// last "*" is replaced by a random string) with permissions perm.
	CreateTemp(dir, pattern string, perm os.FileMode) (File, error)
	// Rename renames oldname to newname, replacing a file at newname.
	Rename(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// MkdirAll creates dir and its missing parents.
	MkdirAll(dir string, perm os.FileMode) error
	// ReadDir lists dir, sorted by name.
	ReadDir(dir string) ([]fs.DirEntry, error)
	// Stat and Lstat describe name (Lstat does not follow a symbolic
	// link; a memory filesystem has none).
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
}

// Default is the operating system's filesystem.
var Default FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // a nil *os.File must not become a non-nil File
	}
	return f, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (osFS) OpenDir(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (osFS) CreateTemp(dir, pattern string, perm os.FileMode) (File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if perm != 0o600 { // os.CreateTemp's
		if err := f.Chmod(perm); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
	}
	return f, nil
}

func (osFS) Rename(oldname, newname string) error        { return os.Rename(oldname, newname) }
func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) ReadDir(dir string) ([]fs.DirEntry, error)   { return os.ReadDir(dir) }
func (osFS) Stat(name string) (fs.FileInfo, error)       { return os.Stat(name) }
func (osFS) Lstat(name string) (fs.FileInfo, error)      { return os.Lstat(name) }

// SyncDir fsyncs directory dir of fsys, so that entries created, renamed or
// removed in it survive a power loss. It is the one copy of what the WAL,
// the warm store, the object store and the catalog each did by hand. Its
// errors name the directory (they are *fs.PathError).
func SyncDir(fsys FS, dir string) error { return TimedSyncDir(fsys, dir, nil) }

// TimedSyncDir is SyncDir that reports how long the fsync took to observe
// (for metrics), unless observe is nil.
func TimedSyncDir(fsys FS, dir string, observe func(time.Duration)) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	start := time.Now()
	err = d.Sync()
	if observe != nil {
		observe(time.Since(start))
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadFile reads the whole file name of fsys, as os.ReadFile.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, st.Size()+512)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// MkdirAllSync is MkdirAll whose directories survive a power loss: it
// syncs every directory from dir's parent up to the root, so that the
// entries of dir and of each of its ancestors are durable when it returns.
// Syncing only the directories it creates is not enough: one created
// before a crash (by a start that died before its sync) exists now and may
// still not be durable, and with it everything written below it. An
// ancestor that cannot be opened for want of permission is skipped (this
// process created nothing there). Directory fsyncs of unchanged
// directories are cheap; this runs when a store opens.
func MkdirAllSync(fsys FS, dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if err := fsys.MkdirAll(dir, perm); err != nil {
		return err
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if err := SyncDir(fsys, d); err != nil && !errors.Is(err, fs.ErrPermission) {
			return err
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
