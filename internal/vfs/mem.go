package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is an in-memory FS that knows what a power loss would keep (Pebble's
// vfs.NewCrashableMem is the model). Each file remembers the contents its
// last Sync made durable, each directory the entries its last Sync (through
// OpenDir) made durable; CrashClone returns the filesystem a crash now
// would leave. Every mutating call (a create, write, truncate, sync,
// rename, removal or mkdir) is counted, and FailAfter makes every mutating
// call after the Nth fail, as a disk that died: with it a test stops a
// whole engine at its Nth step and crashes it there. Safe for concurrent
// use.
type MemFS struct {
	mu struct {
		sync.Mutex
		root      *node
		ops       int64 // mutating calls that took effect
		failAfter int64 // -1: never
		failErr   error
		temps     uint64 // CreateTemp's counter
	}
}

// node is a file or a directory. A file's synced contents alias its data
// until a write below their end (shared), so a Sync costs no copy.
type node struct {
	dir     bool
	mode    fs.FileMode
	modTime time.Time

	data   []byte // file: live contents
	synced []byte // file: what the last Sync made durable
	shared bool   // synced aliases data's array

	ents       map[string]*node // dir: live entries
	syncedEnts map[string]*node // dir: what the last Sync made durable
}

func newDir(mode fs.FileMode) *node {
	return &node{dir: true, mode: fs.ModeDir | mode.Perm(), modTime: time.Now(), ents: map[string]*node{}, syncedEnts: map[string]*node{}}
}

// NewCrashableMem returns an empty memory filesystem whose root, "/", exists
// (and survives every crash).
func NewCrashableMem() *MemFS {
	m := &MemFS{}
	m.mu.root = newDir(0o755)
	m.mu.failAfter = -1
	return m
}

// FailAfter makes every mutating call after the first n (counted from the
// filesystem's creation, see MutatingOps) fail with err (syscall.EIO if
// nil) and change nothing; n < 0 lifts it. Reads keep working.
func (m *MemFS) FailAfter(n int64, err error) {
	if err == nil {
		err = syscall.EIO
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.failAfter, m.mu.failErr = n, err
}

// MutatingOps returns how many mutating calls have taken effect.
func (m *MemFS) MutatingOps() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.ops
}

// mutateLocked counts one mutating call, or returns the injected failure.
func (m *MemFS) mutateLocked() error {
	if m.mu.failAfter >= 0 && m.mu.ops >= m.mu.failAfter {
		return m.mu.failErr
	}
	m.mu.ops++
	return nil
}

// CrashOptions say what of the unsynced state a crash keeps. The zero value
// keeps nothing: every file has its synced contents, every directory its
// synced entries.
type CrashOptions struct {
	// Rand, when set, lets some unsynced state survive, as a real disk's
	// writeback might have stored it before the power went.
	Rand *rand.Rand
	// TornProb is the probability that a file whose data was only appended
	// to since its last Sync keeps a random part of the appended bytes: a
	// prefix of them, or as many zero bytes (the size was stored, the data
	// not).
	TornProb float64
	// DirProb is the probability that a directory keeps its live entries
	// (every create, rename and removal in it since its last Sync) instead
	// of its synced ones.
	DirProb float64
}

// CrashClone returns the filesystem a power loss now would leave: files
// hold what their last Sync made durable and directories the entries of
// their last Sync, but for what opts lets survive. Everything in the clone
// is durable; the receiver is unchanged, and its failure injection is not
// copied.
func (m *MemFS) CrashClone(opts CrashOptions) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewCrashableMem()
	c.mu.root = crashDir(m.mu.root, &opts)
	return c
}

func (o *CrashOptions) chance(p float64) bool { return o.Rand != nil && p > 0 && o.Rand.Float64() < p }

func crashDir(n *node, o *CrashOptions) *node {
	ents := n.syncedEnts
	if o.chance(o.DirProb) {
		ents = n.ents
	}
	c := newDir(n.mode)
	c.modTime = n.modTime
	// Sorted, so that a seeded Rand gives the same clone every time.
	for _, name := range slices.Sorted(maps.Keys(ents)) {
		ch := ents[name]
		if ch.dir {
			c.ents[name] = crashDir(ch, o)
		} else {
			c.ents[name] = crashFile(ch, o)
		}
	}
	c.syncedEnts = maps.Clone(c.ents)
	return c
}

func crashFile(n *node, o *CrashOptions) *node {
	data := bytes.Clone(n.synced)
	if data == nil {
		data = []byte{}
	}
	if extra := len(n.data) - len(n.synced); extra > 0 && o.chance(o.TornProb) && bytes.HasPrefix(n.data, n.synced) {
		k := o.Rand.IntN(extra + 1)
		if o.Rand.IntN(2) == 0 {
			data = append(data, n.data[len(n.synced):len(n.synced)+k]...)
		} else {
			data = append(data, make([]byte, k)...)
		}
	}
	return &node{mode: n.mode, modTime: n.modTime, data: data, synced: data[:len(data):len(data)], shared: true}
}

// split cleans name into its components below the root.
func split(name string) []string {
	name = filepath.ToSlash(filepath.Clean("/" + name))
	if name == "/" {
		return nil
	}
	return strings.Split(name[1:], "/")
}

// walkLocked returns the directory holding name's last component, that
// component, and the node it names (nil if none).
func (m *MemFS) walkLocked(op, name string) (parent *node, base string, n *node, err error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", m.mu.root, nil
	}
	dir := m.mu.root
	for _, p := range parts[:len(parts)-1] {
		next := dir.ents[p]
		if next == nil {
			return nil, "", nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
		}
		if !next.dir {
			return nil, "", nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		dir = next
	}
	base = parts[len(parts)-1]
	return dir, base, dir.ents[base], nil
}

// OpenFile implements FS.
func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	parent, base, n, err := m.walkLocked("open", name)
	if err != nil {
		return nil, err
	}
	write := flag&(os.O_WRONLY|os.O_RDWR) != 0
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EEXIST}
	case n != nil && n.dir && (write || flag&os.O_TRUNC != 0):
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	if n == nil {
		if err := m.mutateLocked(); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		n = &node{mode: perm.Perm(), modTime: time.Now()}
		parent.ents[base] = n
	} else if flag&os.O_TRUNC != 0 && len(n.data) > 0 {
		if err := m.mutateLocked(); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		n.truncate(0)
	}
	return &memFile{fs: m, n: n, name: name, read: flag&os.O_WRONLY == 0, write: write, appnd: flag&os.O_APPEND != 0}, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) { return m.OpenFile(name, os.O_RDONLY, 0) }

// OpenDir implements FS.
func (m *MemFS) OpenDir(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _, n, err := m.walkLocked("open", name)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOTDIR}
	}
	return &memFile{fs: m, n: n, name: name, read: true}, nil
}

// CreateTemp implements FS.
func (m *MemFS) CreateTemp(dir, pattern string, perm os.FileMode) (File, error) {
	if strings.ContainsRune(pattern, filepath.Separator) {
		return nil, &fs.PathError{Op: "createtemp", Path: pattern, Err: fmt.Errorf("pattern contains path separator")}
	}
	prefix, suffix := pattern, ""
	if i := strings.LastIndexByte(pattern, '*'); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for try := 0; ; try++ {
		m.mu.Lock()
		m.mu.temps++
		seq := m.mu.temps
		m.mu.Unlock()
		name := filepath.Join(dir, prefix+strconv.FormatUint(seq, 10)+suffix)
		f, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) && try < 10000 {
			continue // a name a crash clone kept
		}
		if err != nil {
			return nil, &fs.PathError{Op: "createtemp", Path: filepath.Join(dir, pattern), Err: err.(*fs.PathError).Err}
		}
		return f, nil
	}
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	lerr := func(errno error) error { return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: errno} }
	op, ob, n, err := m.walkLocked("rename", oldname)
	if err != nil {
		return lerr(err.(*fs.PathError).Err)
	}
	if n == nil || op == nil {
		return lerr(syscall.ENOENT)
	}
	np, nb, dst, err := m.walkLocked("rename", newname)
	if err != nil {
		return lerr(err.(*fs.PathError).Err)
	}
	if np == nil {
		return lerr(syscall.EBUSY)
	}
	switch {
	case dst == n:
		return nil
	case dst != nil && dst.dir && !n.dir:
		return lerr(syscall.EISDIR)
	case dst != nil && !dst.dir && n.dir:
		return lerr(syscall.ENOTDIR)
	case dst != nil && dst.dir && len(dst.ents) > 0:
		return lerr(syscall.ENOTEMPTY)
	}
	if err := m.mutateLocked(); err != nil {
		return lerr(err)
	}
	delete(op.ents, ob)
	np.ents[nb] = n
	return nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	parent, base, n, err := m.walkLocked("remove", name)
	if err != nil {
		return err
	}
	switch {
	case n == nil:
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOENT}
	case parent == nil:
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.EBUSY}
	case n.dir && len(n.ents) > 0:
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	if err := m.mutateLocked(); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	delete(parent.ents, base)
	return nil
}

// MkdirAll implements FS. Creating the missing directories counts as one
// mutating call; nothing to create, none.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.mu.root
	counted := false
	for _, p := range split(dir) {
		next := cur.ents[p]
		if next == nil {
			if !counted {
				if err := m.mutateLocked(); err != nil {
					return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
				}
				counted = true
			}
			next = newDir(perm)
			cur.ents[p] = next
		} else if !next.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		cur = next
	}
	return nil
}

// ReadDir implements FS.
func (m *MemFS) ReadDir(dir string) ([]fs.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _, n, err := m.walkLocked("open", dir)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: syscall.ENOENT}
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdirent", Path: dir, Err: syscall.ENOTDIR}
	}
	out := make([]fs.DirEntry, 0, len(n.ents))
	for _, name := range slices.Sorted(maps.Keys(n.ents)) {
		out = append(out, fs.FileInfoToDirEntry(n.ents[name].info(name)))
	}
	return out, nil
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, base, n, err := m.walkLocked("stat", name)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: syscall.ENOENT}
	}
	if base == "" {
		base = "/"
	}
	return n.info(base), nil
}

// Lstat implements FS: a memory filesystem has no symbolic links.
func (m *MemFS) Lstat(name string) (fs.FileInfo, error) { return m.Stat(name) }

// truncate sets a file's size, copying data first when its synced
// contents alias the bytes that change.
func (n *node) truncate(size int64) {
	if n.shared && int(size) < len(n.synced) {
		n.data, n.shared = bytes.Clone(n.data), false
	}
	if int(size) <= len(n.data) {
		n.data = n.data[:size]
	} else {
		n.data = append(n.data, make([]byte, int(size)-len(n.data))...)
	}
	n.modTime = time.Now()
}

// writeAt writes p at off, growing the file as needed.
func (n *node) writeAt(p []byte, off int64) {
	if n.shared && int(off) < len(n.synced) {
		n.data, n.shared = bytes.Clone(n.data), false
	}
	if end := int(off) + len(p); end > len(n.data) {
		n.data = append(n.data, make([]byte, end-len(n.data))...)
	}
	copy(n.data[off:], p)
	n.modTime = time.Now()
}

func (n *node) info(name string) fs.FileInfo {
	return &memInfo{name: name, size: int64(len(n.data)), mode: n.mode, modTime: n.modTime}
}

type memInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i *memInfo) Name() string       { return i.name }
func (i *memInfo) Size() int64        { return i.size }
func (i *memInfo) Mode() fs.FileMode  { return i.mode }
func (i *memInfo) ModTime() time.Time { return i.modTime }
func (i *memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *memInfo) Sys() any           { return nil }

// memFile is an open file (or directory, from OpenDir) of a MemFS.
type memFile struct {
	fs     *MemFS
	n      *node
	name   string
	read   bool
	write  bool
	appnd  bool
	mu     sync.Mutex // guards pos and closed
	pos    int64
	closed bool
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) check(op string, mode bool) error {
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: os.ErrClosed}
	}
	if !mode {
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("read", f.read); err != nil {
		return 0, err
	}
	n, err := f.readAt(p, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("read", f.read); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: syscall.EINVAL}
	}
	n, err := f.readAt(p, off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (f *memFile) readAt(p []byte, off int64) (int, error) {
	if f.n.dir {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EISDIR}
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off >= int64(len(f.n.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	return copy(p, f.n.data[off:]), nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("write", f.write); err != nil {
		return 0, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.fs.mutateLocked(); err != nil {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: err}
	}
	if f.appnd {
		f.pos = int64(len(f.n.data))
	}
	f.n.writeAt(p, f.pos)
	f.pos += int64(len(p))
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("sync", true); err != nil {
		return err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.mutateLocked(); err != nil {
		return &fs.PathError{Op: "sync", Path: f.name, Err: err}
	}
	if f.n.dir {
		f.n.syncedEnts = maps.Clone(f.n.ents)
		return nil
	}
	f.n.synced = f.n.data[:len(f.n.data):len(f.n.data)]
	f.n.shared = true
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("truncate", f.write); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.mutateLocked(); err != nil {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: err}
	}
	f.n.truncate(size)
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("stat", true); err != nil {
		return nil, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.n.info(filepath.Base(f.name)), nil
}

func (f *memFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	f.closed = true
	return nil
}
