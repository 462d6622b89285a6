package catalog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"
)

// This file checks the structure of a bbolt file before bbolt opens it.
//
// bbolt trusts its file: a damaged page makes it panic (its assertions),
// fault (a length that runs past the mapping), loop or allocate without
// bound (a page referenced from its own subtree, a freelist count of
// billions), or quietly use the older of its two meta pages, which rolls
// the catalog back by one transaction. None of that may reach tierd, so
// Open walks the file first, reading it through its own bounds-checked
// view, and refuses it unless bbolt can use every byte it will touch:
//
//   - both meta pages: magic, version and checksum; if one fails, the
//     valid one must be the newer (a damaged newest meta would make bbolt
//     fall back to the previous transaction silently);
//   - the active meta's root, freelist and high-water mark fit the file;
//   - the freelist page: type, count within the page, every id in [2, hwm)
//     and listed once;
//   - every page reachable from the root bucket, nested and inline buckets
//     included: in bounds, of the right type, referenced once (no cycles),
//     not also free, with its keys and values packed right after its
//     element array in element order, as bbolt writes them (so a damaged
//     count, position or length is seen), an inline page exactly filling
//     its value, keys non-empty, strictly increasing and inside the range
//     the parent branch gives them, and no page empty but the root
//     bucket's and an inline bucket's (bbolt inlines an emptied bucket and
//     merges an emptied page away);
//   - every page below the high-water mark is reachable, free or the
//     freelist.
//
// The checks follow bbolt's on-disk format (go.etcd.io/bbolt, internal/common
// page.go, meta.go, bucket.go) for format version 2, the only one bbolt
// writes; docs/format/catalog.md lists them.

// bbolt's on-disk constants (internal/common).
const (
	boltMagic         = 0xED0CDAED
	boltVersion       = 2
	boltPageHeader    = 16 // id u64, flags u16, count u16, overflow u32
	boltMetaSize      = 64 // magic, version, page size, flags, root (16), freelist, pgid, txid, checksum
	boltElementSize   = 16 // branch: pos, ksize, pgid; leaf: flags, pos, ksize, vsize
	boltBucketHeader  = 16 // root pgid, sequence
	boltBranchFlag    = 0x01
	boltLeafFlag      = 0x02
	boltMetaFlag      = 0x04
	boltFreelistFlag  = 0x10
	boltBucketLeaf    = 0x01
	boltNoFreelist    = ^uint64(0)
	boltMinPageSize   = 512
	boltMaxPageSize   = 1 << 16
	boltFirstDataPage = 2
)

// errFile is the cause of a structural defect of the catalog file.
var errFile = errors.New("damaged bbolt page structure")

// fileDefect describes one structural defect.
func fileDefect(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errFile, fmt.Sprintf(format, args...))
}

// checkFileLocked checks the structure of the bbolt file at path (see
// above) under a shared lock, so that it never reads a file another tierd is
// writing: ErrLocked when the lock is not granted within timeout. A missing
// or empty file passes: bbolt creates it. Any defect is returned as an error
// wrapping errFile.
func checkFileLocked(path string, timeout time.Duration) (err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Closing f releases the lock, before bbolt takes its exclusive one.
	return checkFile(f)
}

// checkFile checks the structure of the open bbolt file f.
func checkFile(f *os.File) (err error) {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	if size == 0 {
		return nil
	}
	if size < 2*boltMinPageSize || int64(int(size)) != size {
		return fileDefect("file of %d bytes is too small for two meta pages", size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map %s: %w", f.Name(), err)
	}
	defer unix.Munmap(data)
	// The file may shrink under the mapping (it should not: the caller holds
	// its lock); a fault reads as damage, not as a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			err = fileDefect("memory fault reading the file: %v", r)
		}
	}()
	return (&fileChecker{data: data}).check()
}

// boltMeta is a decoded meta page.
type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64 // pgid: the first page never allocated
	txid     uint64
	valid    error // nil when magic, version and checksum hold
}

func decodeMeta(b []byte) boltMeta {
	le := binary.LittleEndian
	m := boltMeta{
		pageSize: le.Uint32(b[8:]),
		root:     le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]),
		hwm:      le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
	}
	h := fnv.New64a()
	h.Write(b[:56])
	switch {
	case le.Uint32(b) != boltMagic:
		m.valid = errors.New("bad magic")
	case le.Uint32(b[4:]) != boltVersion:
		m.valid = fmt.Errorf("version %d, want %d", le.Uint32(b[4:]), boltVersion)
	case le.Uint64(b[56:]) != h.Sum64():
		m.valid = errors.New("checksum mismatch")
	}
	return m
}

// fileChecker walks one mapped file.
type fileChecker struct {
	data     []byte
	pageSize int
	hwm      uint64
	// state per page id below the high-water mark: 0 unseen, 1 reachable,
	// 2 free, 3 freelist.
	state []uint8
}

func (c *fileChecker) check() error {
	meta, err := c.activeMeta()
	if err != nil {
		return err
	}
	c.hwm = meta.hwm
	pages := uint64(len(c.data) / c.pageSize)
	switch {
	case meta.hwm < boltFirstDataPage+1 || meta.hwm > pages:
		return fileDefect("meta high-water mark %d, the file holds %d pages", meta.hwm, pages)
	case meta.root < boltFirstDataPage || meta.root >= meta.hwm:
		return fileDefect("meta root page %d outside [2, %d)", meta.root, meta.hwm)
	case meta.freelist != boltNoFreelist && (meta.freelist < boltFirstDataPage || meta.freelist >= meta.hwm):
		return fileDefect("meta freelist page %d outside [2, %d)", meta.freelist, meta.hwm)
	}
	c.state = make([]uint8, meta.hwm)
	if meta.freelist != boltNoFreelist {
		if err := c.checkFreelist(meta.freelist); err != nil {
			return err
		}
	}
	if err := c.checkBucket(meta.root, "root bucket", true); err != nil {
		return err
	}
	for id := uint64(boltFirstDataPage); id < meta.hwm; id++ {
		if c.state[id] == 0 && meta.freelist != boltNoFreelist {
			return fileDefect("page %d is neither reachable nor free", id)
		}
	}
	return nil
}

// activeMeta returns the meta page bbolt will use, refusing a file whose
// newest meta page is damaged: bbolt would silently fall back to the older
// one, losing the last committed transaction.
func (c *fileChecker) activeMeta() (boltMeta, error) {
	m0 := decodeMeta(c.data[boltPageHeader:])
	ps := int(m0.pageSize)
	if m0.valid != nil {
		// bbolt then looks for meta 1 at each power of two from 1 KiB.
		ps = 0
		for s := 1024; s <= boltMaxPageSize && s+boltPageHeader+boltMetaSize <= len(c.data); s <<= 1 {
			if m := decodeMeta(c.data[s+boltPageHeader:]); m.valid == nil && int(m.pageSize) == s {
				ps = s
				break
			}
		}
		if ps == 0 {
			return boltMeta{}, fileDefect("both meta pages are invalid (meta 0: %v)", m0.valid)
		}
	}
	if ps < boltMinPageSize || ps > boltMaxPageSize || ps&(ps-1) != 0 || 2*ps > len(c.data) {
		return boltMeta{}, fileDefect("page size %d", ps)
	}
	c.pageSize = ps
	m1 := decodeMeta(c.data[ps+boltPageHeader:])
	metas := [2]boltMeta{m0, m1}
	for i, m := range metas {
		if m.valid == nil && (int(m.pageSize) != ps || m.txid%2 != uint64(i)) {
			return boltMeta{}, fileDefect("meta %d: page size %d, txid %d", i, m.pageSize, m.txid)
		}
	}
	switch {
	case m0.valid == nil && m1.valid == nil:
		newer, older := m0, m1
		if m1.txid > m0.txid {
			newer, older = m1, m0
		}
		if newer.txid != older.txid+1 {
			return boltMeta{}, fileDefect("meta pages hold transactions %d and %d, want consecutive ones", older.txid, newer.txid)
		}
		return newer, nil
	case m0.valid == nil || m1.valid == nil:
		good, bad, badIdx := m0, m1, 1
		if m0.valid != nil {
			good, bad, badIdx = m1, m0, 0
		}
		// The damaged page's txid field, if intact, says whether it was the
		// older (harmless: bbolt overwrites it next) or the newer.
		if good.txid > 0 && bad.txid == good.txid-1 {
			return good, nil
		}
		return boltMeta{}, fileDefect("meta page %d is damaged (%v) and may hold the last committed transaction", badIdx, bad.valid)
	}
	return boltMeta{}, fileDefect("both meta pages are invalid (%v; %v)", m0.valid, m1.valid)
}

// span returns the bytes of page id and its overflow pages, checking that
// they are below the high-water mark, and marks them with state st; a page
// already marked is a second reference (or a cycle).
func (c *fileChecker) span(id uint64, st uint8, what string) ([]byte, error) {
	if id < boltFirstDataPage || id >= c.hwm {
		return nil, fileDefect("%s: page %d outside [2, %d)", what, id, c.hwm)
	}
	p := c.data[id*uint64(c.pageSize):]
	if got := binary.LittleEndian.Uint64(p); got != id {
		return nil, fileDefect("%s: page %d says it is page %d", what, id, got)
	}
	overflow := uint64(binary.LittleEndian.Uint32(p[12:]))
	if overflow >= c.hwm-id {
		return nil, fileDefect("%s: page %d has %d overflow pages, past the high-water mark %d", what, id, overflow, c.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if prev := c.state[i]; prev != 0 {
			return nil, fileDefect("%s: page %d is also %s", what, i, stateName(prev))
		}
		c.state[i] = st
	}
	return p[:(overflow+1)*uint64(c.pageSize)], nil
}

func stateName(st uint8) string {
	switch st {
	case 1:
		return "reachable from elsewhere"
	case 2:
		return "free"
	}
	return "the freelist"
}

func (c *fileChecker) checkFreelist(id uint64) error {
	p, err := c.span(id, 3, "freelist")
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if flags := le.Uint16(p[8:]); flags != boltFreelistFlag {
		return fileDefect("freelist page %d has type %#x", id, flags)
	}
	idx, count := 0, uint64(le.Uint16(p[10:]))
	if count == 0xFFFF {
		idx, count = 1, le.Uint64(p[boltPageHeader:])
	}
	if room := uint64(len(p)-boltPageHeader) / 8; count > room-uint64(idx) {
		return fileDefect("freelist page %d lists %d pages, it has room for %d", id, count, room-uint64(idx))
	}
	ids := p[boltPageHeader+8*idx:]
	for i := uint64(0); i < count; i++ {
		f := le.Uint64(ids[8*i:])
		if f < boltFirstDataPage || f >= c.hwm {
			return fileDefect("freelist lists page %d outside [2, %d)", f, c.hwm)
		}
		if c.state[f] != 0 {
			return fileDefect("freelist lists page %d, which is %s", f, stateName(c.state[f]))
		}
		c.state[f] = 2
	}
	return nil
}

// pageWork is a page (or inline page) still to check, with the key range
// its parent branch allows: [lo, hi), nil for no bound.
type pageWork struct {
	page   []byte // the page's bytes (an inline page: the value after the bucket header)
	id     uint64 // 0 for an inline page
	lo, hi []byte
	what   string
	// mayBeEmpty: the root page of the root bucket (an empty file has
	// no buckets yet) or an inline page.
	mayBeEmpty bool
}

// checkBucket checks the bucket whose root is page root, and every bucket
// nested in it, with an explicit stack so that a deep tree cannot exhaust
// the goroutine stack.
func (c *fileChecker) checkBucket(root uint64, what string, mayBeEmpty bool) error {
	p, err := c.span(root, 1, what)
	if err != nil {
		return err
	}
	stack := []pageWork{{page: p, id: root, what: what, mayBeEmpty: mayBeEmpty}}
	for len(stack) > 0 {
		w := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		more, err := c.checkPage(w)
		if err != nil {
			return err
		}
		stack = append(stack, more...)
	}
	return nil
}

// checkPage checks one branch or leaf page and returns the pages it points
// to: a branch's children, a leaf's nested buckets.
func (c *fileChecker) checkPage(w pageWork) ([]pageWork, error) {
	le := binary.LittleEndian
	p := w.page
	name := fmt.Sprintf("%s page %d", w.what, w.id)
	if w.id == 0 {
		name = w.what + " (inline page)"
	}
	if len(p) < boltPageHeader {
		return nil, fileDefect("%s: %d bytes, shorter than a page header", name, len(p))
	}
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if flags != boltBranchFlag && flags != boltLeafFlag {
		return nil, fileDefect("%s has type %#x, want a branch or leaf page", name, flags)
	}
	if w.id == 0 && flags != boltLeafFlag {
		return nil, fileDefect("%s is a branch page", name)
	}
	if count == 0 && (flags == boltBranchFlag || !w.mayBeEmpty && w.id != 0) {
		return nil, fileDefect("%s: an empty page", name)
	}
	if boltPageHeader+count*boltElementSize > len(p) {
		return nil, fileDefect("%s: %d elements overrun the page", name, count)
	}
	var out []pageWork
	var prev []byte
	// next is where the next element's key must start: bbolt packs keys
	// and values right after the element array, in element order.
	next := uint64(boltPageHeader + count*boltElementSize)
	keyAt := func(i int, e, pos, ksize, vsize uint64) ([]byte, []byte, error) {
		end := e + pos + ksize + vsize
		if pos > uint64(len(p)) || end > uint64(len(p)) || end < e {
			return nil, nil, fileDefect("%s: element %d (pos %d, key %d, value %d bytes) runs past the page", name, i, pos, ksize, vsize)
		}
		if e+pos != next {
			return nil, nil, fileDefect("%s: element %d's key is at byte %d, want %d (right after the previous one)", name, i, e+pos, next)
		}
		next = end
		if ksize == 0 {
			return nil, nil, fileDefect("%s: element %d has an empty key", name, i)
		}
		k := p[e+pos : e+pos+ksize]
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return nil, nil, fileDefect("%s: key %d (%x) is not above the one before it (%x)", name, i, k, prev)
		}
		if w.lo != nil && bytes.Compare(k, w.lo) < 0 || w.hi != nil && bytes.Compare(k, w.hi) >= 0 {
			return nil, nil, fileDefect("%s: key %d (%x) is outside the range its parent gives it", name, i, k)
		}
		prev = k
		return k, p[e+pos+ksize : end], nil
	}
	for i := 0; i < count; i++ {
		e := uint64(boltPageHeader + i*boltElementSize)
		if flags == boltBranchFlag {
			pos, ksize, child := uint64(le.Uint32(p[e:])), uint64(le.Uint32(p[e+4:])), le.Uint64(p[e+8:])
			k, _, err := keyAt(i, e, pos, ksize, 0)
			if err != nil {
				return nil, err
			}
			var hi []byte
			if i+1 < count {
				// The next element's key bounds this child; it is checked
				// in its turn, so only its bounds matter here.
				n := e + boltElementSize
				npos, nksize := uint64(le.Uint32(p[n:])), uint64(le.Uint32(p[n+4:]))
				if end := n + npos + nksize; npos > uint64(len(p)) || end > uint64(len(p)) || end < n {
					return nil, fileDefect("%s: element %d runs past the page", name, i+1)
				}
				hi = p[n+npos : n+npos+nksize]
			} else {
				hi = w.hi
			}
			cp, err := c.span(child, 1, w.what)
			if err != nil {
				return nil, err
			}
			out = append(out, pageWork{page: cp, id: child, lo: k, hi: hi, what: w.what})
			continue
		}
		eflags := le.Uint32(p[e:])
		pos, ksize, vsize := uint64(le.Uint32(p[e+4:])), uint64(le.Uint32(p[e+8:])), uint64(le.Uint32(p[e+12:]))
		k, v, err := keyAt(i, e, pos, ksize, vsize)
		if err != nil {
			return nil, err
		}
		switch eflags {
		case 0:
		case boltBucketLeaf:
			if w.id == 0 {
				return nil, fileDefect("%s: element %d is a bucket inside an inline bucket", name, i)
			}
			if len(v) < boltBucketHeader {
				return nil, fileDefect("%s: bucket %q has a %d-byte header", name, k, len(v))
			}
			what := fmt.Sprintf("bucket %q", k)
			if root := le.Uint64(v); root != 0 {
				if len(v) != boltBucketHeader {
					return nil, fileDefect("%s: bucket %q has root page %d and %d bytes of inline page", name, k, root, len(v)-boltBucketHeader)
				}
				cp, err := c.span(root, 1, what)
				if err != nil {
					return nil, err
				}
				out = append(out, pageWork{page: cp, id: root, what: what})
			} else {
				out = append(out, pageWork{page: v[boltBucketHeader:], what: what})
			}
		default:
			return nil, fileDefect("%s: element %d has flags %#x", name, i, eflags)
		}
	}
	if w.id == 0 && next != uint64(len(p)) {
		return nil, fileDefect("%s: %d bytes of elements in a %d-byte inline page", name, next, len(p))
	}
	return out, nil
}
