package objstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/tierd/tierd/internal/vfs"
)

// tmpPrefix names the file provider's temporary files. ValidateKey reserves
// it, so a temporary file can never be mistaken for an object, and List
// skips files that carry it (left behind by a crash mid-Put).
const tmpPrefix = ".objstore-tmp-"

// File is the local-directory provider, the embedded default when no S3 is
// configured. Keys map to paths under the root. A Put writes a temporary
// file in the target directory, fsyncs it, renames it over the key and
// fsyncs the directory, so after a crash a key holds the old object or the
// whole new one, and once Put returns the object survives power loss.
//
// One difference from S3 follows from mapping keys to paths: a key cannot
// be both an object and a directory, so with "a" stored a Put of "a/b"
// fails (and the other way round). tierd's key layout never does this.
type File struct {
	root   string
	fs     vfs.FS
	closed atomic.Bool
}

// NewFile opens (creating if needed) a directory store rooted at dir.
func NewFile(dir string) (*File, error) { return NewFileFS(vfs.Default, dir) }

// NewFileFS is NewFile on the filesystem fsys (crash tests run the store on
// a vfs.MemFS).
func NewFileFS(fsys vfs.FS, dir string) (*File, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("objstore: file store %q: %w", dir, err)
	}
	if err := vfs.MkdirAllSync(fsys, abs, 0o755); err != nil {
		return nil, fmt.Errorf("objstore: file store: %w", err)
	}
	return &File{root: abs, fs: fsys}, nil
}

func (f *File) backend() string { return "file " + f.root }

func (f *File) path(key string) string { return filepath.Join(f.root, filepath.FromSlash(key)) }

func (f *File) check(op, key string) error {
	if f.closed.Load() {
		return opError(f.backend(), op, key, ErrClosed)
	}
	if err := ValidateKey(key); err != nil {
		return opError(f.backend(), op, key, err)
	}
	return nil
}

// Put implements Bucket.
func (f *File) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := f.check("put", key); err != nil {
		return err
	}
	if err := f.put(ctx, key, r, size); err != nil {
		return opError(f.backend(), "put", key, err)
	}
	return nil
}

func (f *File) put(ctx context.Context, key string, r io.Reader, size int64) error {
	if size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrSizeMismatch, size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := f.path(key)
	dir := filepath.Dir(dst)
	var tmp vfs.File
	// A concurrent Delete may remove the directory between MkdirAll and
	// CreateTemp (it prunes empty parents); try again a few times.
	for attempt := 0; ; attempt++ {
		if err := f.fs.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var err error
		tmp, err = f.fs.CreateTemp(dir, tmpPrefix+"*", 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return err
		}
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			f.fs.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, newExactReader(ctx, r, size)); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.fs.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	ok = true
	return f.syncUp(dir)
}

// syncUp fsyncs dir and every directory above it up to the root: the
// rename is durable once dir is synced, but dir itself may be new (MkdirAll
// above, by this Put or by a concurrent one that has not synced it yet),
// and an object whose directory a crash takes away is lost with it. Syncing
// the whole chain, always, costs a directory fsync per level of the key
// (two for tierd's keys) and needs no memory of which directories are
// durable.
func (f *File) syncUp(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		if err := vfs.SyncDir(f.fs, d); err != nil {
			return err
		}
		if d == f.root || !strings.HasPrefix(d, f.root) || d == filepath.Dir(d) {
			return nil
		}
	}
}

// openRegular opens key's file, mapping a missing file or a directory (a
// key that is only a prefix of others) to ErrNotFound.
func (f *File) openRegular(key string) (vfs.File, fs.FileInfo, error) {
	fh, err := f.fs.Open(f.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
			return nil, nil, ErrNotFound
		}
		return nil, nil, err
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		fh.Close()
		return nil, nil, ErrNotFound
	}
	return fh, fi, nil
}

// Get implements Bucket.
func (f *File) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := f.check("get", key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, opError(f.backend(), "get", key, err)
	}
	fh, _, err := f.openRegular(key)
	if err != nil {
		return nil, opError(f.backend(), "get", key, err)
	}
	return fh, nil
}

// GetRange implements Bucket.
func (f *File) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := f.check("get range", key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, opError(f.backend(), "get range", key, err)
	}
	fh, fi, err := f.openRegular(key)
	if err != nil {
		return nil, opError(f.backend(), "get range", key, err)
	}
	n, err := checkRange(off, length, fi.Size())
	if err != nil {
		fh.Close()
		return nil, opError(f.backend(), "get range", key, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(fh, off, n), fh}, nil
}

// Stat implements Bucket.
func (f *File) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := f.check("stat", key); err != nil {
		return Attrs{}, err
	}
	if err := ctx.Err(); err != nil {
		return Attrs{}, opError(f.backend(), "stat", key, err)
	}
	fi, err := f.fs.Stat(f.path(key))
	if err == nil && !fi.Mode().IsRegular() {
		err = ErrNotFound
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		err = ErrNotFound
	}
	if err != nil {
		return Attrs{}, opError(f.backend(), "stat", key, err)
	}
	return Attrs{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements Bucket. Directories emptied by the delete are removed
// too, so expiring old date partitions does not leave a tree of empty
// directories behind.
func (f *File) Delete(ctx context.Context, key string) error {
	if err := f.check("delete", key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return opError(f.backend(), "delete", key, err)
	}
	p := f.path(key)
	fi, err := f.fs.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) || (err == nil && fi.IsDir()) {
		return nil
	}
	if err == nil {
		err = f.fs.Remove(p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return opError(f.backend(), "delete", key, err)
	}
	dir := filepath.Dir(p)
	if err := vfs.SyncDir(f.fs, dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return opError(f.backend(), "delete", key, err)
	}
	for dir != f.root && strings.HasPrefix(dir, f.root) {
		if f.fs.Remove(dir) != nil { // not empty, or already gone
			break
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

// List implements Bucket. It walks only the directories that can hold keys
// with the prefix, and visits each directory's entries in the order of
// their keys ("a/" sorts after "a-c"), so keys come out in the same
// byte-wise order S3 lists them without collecting them all first.
func (f *File) List(ctx context.Context, prefix string) iter.Seq2[Attrs, error] {
	return func(yield func(Attrs, error) bool) {
		if f.closed.Load() {
			yield(Attrs{}, opError(f.backend(), "list", prefix, ErrClosed))
			return
		}
		if !listable(prefix) {
			return
		}
		start := prefix[:strings.LastIndex(prefix, "/")+1]
		err := f.walk(ctx, start, prefix, yield)
		if err != nil && !errors.Is(err, errStop) {
			yield(Attrs{}, opError(f.backend(), "list", prefix, err))
		}
	}
}

var errStop = errors.New("stop")

// walk yields the objects under dirKey (empty or ending in "/") whose keys
// start with prefix.
func (f *File) walk(ctx context.Context, dirKey, prefix string, yield func(Attrs, error) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := f.fs.ReadDir(f.path(dirKey + "."))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return nil
	}
	if err != nil {
		return err
	}
	type item struct {
		key string
		e   fs.DirEntry
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		k := dirKey + name
		if e.IsDir() {
			k += "/"
			if !strings.HasPrefix(k, prefix) && !strings.HasPrefix(prefix, k) {
				continue
			}
		} else if !e.Type().IsRegular() || !strings.HasPrefix(k, prefix) {
			continue
		}
		items = append(items, item{k, e})
	}
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.key, b.key) })
	for _, it := range items {
		if it.e.IsDir() {
			if err := f.walk(ctx, it.key, prefix, yield); err != nil {
				return err
			}
			continue
		}
		fi, err := it.e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted while listing
		}
		if err != nil {
			return err
		}
		if !yield(Attrs{Key: it.key, Size: fi.Size(), ModTime: fi.ModTime()}, nil) {
			return errStop
		}
	}
	return nil
}

// Close implements Bucket.
func (f *File) Close() error {
	f.closed.Store(true)
	return nil
}
