package warm

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/vfs"
	"github.com/tierd/tierd/tiers"
)

// Defaults of Options.
const (
	DefaultIndexInterval = 64
	DefaultCacheSize     = 1024
	// DefaultMapCacheBytes is the default of Options.MapCacheBytes
	// (policy.Default takes warm.map_cache_bytes' from it).
	DefaultMapCacheBytes = 32 << 20
)

// tempMarker is part of every temp file's name (<base:020d>.seg.tmp-<random>),
// so Open can find and remove what a crashed writer left, and List can never
// mistake one for a committed segment.
const tempMarker = ".seg.tmp-"

// Options configures a Store. Zero fields take the defaults.
type Options struct {
	// IndexInterval is the number of records per sparse index block: Get
	// walks at most this many frames, and Scan prunes by time in blocks of
	// this size. Default 64, at most 65536.
	IndexInterval int
	// CacheSize bounds the readers kept mapped while nobody holds them, so
	// a node with many segments stays under the kernel's map-count and
	// address-space limits. Held readers are never unmapped. Default 1024.
	CacheSize int
	// MapCacheBytes bounds the memory the cached readers keep between
	// reads. A cached mapping keeps no page of its file resident (reads
	// give back the pages they touch, see pages.go); it is charged the
	// heap copy of its footer (block table and key filter), and the least
	// recently acquired leave the cache while the charges add up to more.
	// Held readers stay mapped (and valid) until released. Default 32 MiB.
	MapCacheBytes int64
	// Logger receives leftover-file cleanup and unmap failures; nil discards.
	Logger *slog.Logger
	// Registerer receives the tierd_warm_* metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// FS is the filesystem of the directory; nil means vfs.Default (the
	// OS). Files of another filesystem are read into memory instead of
	// mapped (vfs.Map).
	FS vfs.FS
}

func (o Options) withDefaults() Options {
	if o.IndexInterval <= 0 {
		o.IndexInterval = DefaultIndexInterval
	}
	o.IndexInterval = min(o.IndexInterval, maxIndexInterval)
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MapCacheBytes <= 0 {
		o.MapCacheBytes = DefaultMapCacheBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	return o
}

// SegmentFile is a committed segment file as List finds it on disk.
type SegmentFile struct {
	Stream string
	Base   uint64
	Path   string
	Size   int64
}

type segKey struct {
	stream string
	base   uint64
}

// Store is the warm directory: it writes segment files and shares mapped
// readers of them. It is safe for concurrent use.
type Store struct {
	dir  string
	fs   vfs.FS
	opts Options
	log  *slog.Logger
	met  *metrics

	mu struct {
		sync.Mutex
		closed bool
		// epoch advances whenever a file is replaced or removed, so an
		// Acquire that mapped a file before that does not cache it.
		epoch uint64
		cache map[segKey]*segment
		lru   list.List // of *segment, most recently acquired first
		// cacheBytes is the charge of the cached segments (residentCharge).
		cacheBytes int64
		dirs       map[string]bool
	}
}

// Open opens the warm directory dir, creating it if needed, and removes the
// temp files of writers that never committed (a crash mid-write), logging
// each. One Store owns a directory: a second one, in this process or
// another, would delete the first one's temp files and serve stale cached
// readers.
func Open(dir string, opts Options) (*Store, error) {
	s, err := newStore(dir, opts)
	if err != nil {
		return nil, err
	}
	// The directory's own entry must survive a crash too, or every
	// segment in it goes with it.
	if err := vfs.MkdirAllSync(s.fs, dir, 0o755); err != nil {
		return nil, fmt.Errorf("warm: open: %w", err)
	}
	streams, err := s.fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("warm: open: %w", err)
	}
	for _, st := range streams {
		if !st.IsDir() || tiers.ValidateStreamName(st.Name()) != nil {
			continue
		}
		sdir := filepath.Join(dir, st.Name())
		files, err := s.fs.ReadDir(sdir)
		if err != nil {
			return nil, fmt.Errorf("warm: open: %w", err)
		}
		for _, f := range files {
			if !strings.Contains(f.Name(), tempMarker) {
				continue
			}
			p := filepath.Join(sdir, f.Name())
			if err := s.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("warm: open: remove leftover temp file: %w", err)
			}
			s.log.Warn("warm: removed leftover temp file of an uncommitted segment", "path", p)
		}
		s.mu.dirs[st.Name()] = true
	}
	// Stream directories a crashed process created may not be durable yet;
	// one fsync here lets Create trust every directory that exists now.
	if err := s.syncDir(dir); err != nil {
		return nil, fmt.Errorf("warm: open: %w", err)
	}
	return s, nil
}

// newStore builds a Store without touching the disk.
func newStore(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, fs: opts.FS, opts: opts, log: opts.Logger, met: met}
	s.mu.cache = make(map[segKey]*segment)
	s.mu.dirs = make(map[string]bool)
	return s, nil
}

// Path is where the segment (stream, base) lives once committed.
func (s *Store) Path(stream string, base uint64) string {
	return filepath.Join(s.dir, stream, fmt.Sprintf("%020d.seg", base))
}

// List returns every committed segment file, by stream then base. Temp files
// and foreign names are skipped. It reads only directory entries, so it is
// cheap enough for recovery and catalog rebuild; Acquire and Verify check
// the contents.
func (s *Store) List() ([]SegmentFile, error) {
	streams, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("warm: list: %w", err)
	}
	var out []SegmentFile
	for _, st := range streams {
		if !st.IsDir() || tiers.ValidateStreamName(st.Name()) != nil {
			continue
		}
		files, err := s.fs.ReadDir(filepath.Join(s.dir, st.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("warm: list: %w", err)
		}
		for _, f := range files {
			base, ok := parseSegName(f.Name())
			if !ok || !f.Type().IsRegular() {
				continue
			}
			info, err := f.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since ReadDir
			}
			if err != nil {
				return nil, fmt.Errorf("warm: list: %w", err)
			}
			out = append(out, SegmentFile{
				Stream: st.Name(), Base: base,
				Path: filepath.Join(s.dir, st.Name(), f.Name()), Size: info.Size(),
			})
		}
	}
	return out, nil
}

// parseSegName parses "<base:020d>.seg".
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil
}

// Acquire returns a reader of the committed segment (stream, base). Readers
// of one file share one mapping, which the store keeps cached after the
// last Release (up to Options.CacheSize). Every Acquire must be paired with
// one Release. A missing file yields an error wrapping
// tiers.ErrSegmentNotFound; a damaged one a *tiers.CorruptionError; a file
// of a newer format ErrUnsupportedVersion.
func (s *Store) Acquire(stream string, base uint64) (*Reader, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return nil, fmt.Errorf("warm: acquire: %w", err)
	}
	k := segKey{stream, base}
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("warm: acquire: %w", tiers.ErrClosed)
	}
	if sg := s.mu.cache[k]; sg != nil {
		sg.refs++
		s.mu.lru.MoveToFront(sg.elem)
		s.mu.Unlock()
		s.met.acquires.WithLabelValues("hit").Inc()
		return &Reader{s: s, sg: sg}, nil
	}
	epoch := s.mu.epoch
	s.mu.Unlock()

	// Map outside the lock: other segments' readers must not wait for I/O.
	sg, err := s.mapSegment(k)
	if err != nil {
		s.met.acquires.WithLabelValues("error").Inc()
		var ce *tiers.CorruptionError
		if errors.As(err, &ce) {
			s.met.corruptions.WithLabelValues("open").Inc()
		}
		return nil, err
	}
	s.met.acquires.WithLabelValues("miss").Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		s.unmap(sg)
		return nil, fmt.Errorf("warm: acquire: %w", tiers.ErrClosed)
	}
	if other := s.mu.cache[k]; other != nil {
		// A concurrent Acquire mapped it first; cached entries are current.
		s.unmap(sg)
		other.refs++
		s.mu.lru.MoveToFront(other.elem)
		return &Reader{s: s, sg: other}, nil
	}
	sg.refs = 1
	if s.mu.epoch == epoch {
		sg.cached = true
		sg.elem = s.mu.lru.PushFront(sg)
		s.mu.cache[k] = sg
		s.mu.cacheBytes += sg.charge
		s.met.cacheBytes.Add(float64(sg.charge))
		s.evictLocked()
	}
	return &Reader{s: s, sg: sg}, nil
}

// AcquireUncached is Acquire without the reader cache: it maps the file as
// it is on disk now, even if a cached mapping of an older file (since
// removed or replaced) exists, and does not cache its own. Verify uses it.
func (s *Store) AcquireUncached(stream string, base uint64) (*Reader, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return nil, fmt.Errorf("warm: acquire: %w", err)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("warm: acquire: %w", tiers.ErrClosed)
	}
	sg, err := s.mapSegment(segKey{stream, base})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	sg.refs = 1
	s.mu.Unlock()
	return &Reader{s: s, sg: sg}, nil
}

// mapSegment opens, maps and parses one file.
func (s *Store) mapSegment(k segKey) (*segment, error) {
	path := s.Path(k.stream, k.base)
	f, err := s.fs.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("warm: acquire %s/%d: %w: %w", k.stream, k.base, tiers.ErrSegmentNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("warm: acquire %s/%d: %w", k.stream, k.base, err)
	}
	defer f.Close() // the mapping outlives the descriptor
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("warm: acquire %s/%d: %w", k.stream, k.base, err)
	}
	size := info.Size()
	if size < headerFixedLen+trailerLen {
		// Too short to map usefully (and mmap rejects length 0); parse the
		// bytes we have so the error names the same cause a mapping would.
		b, err := vfs.ReadFile(s.fs, path)
		if err != nil {
			return nil, fmt.Errorf("warm: acquire %s/%d: %w", k.stream, k.base, err)
		}
		if _, err := parseLayout(path, b); err != nil {
			return nil, err
		}
		return nil, &tiers.CorruptionError{Path: path, Offset: 0, Err: fmt.Errorf("%w: file is %d bytes", ErrTruncated, len(b))}
	}
	if size != int64(int(size)) {
		return nil, fmt.Errorf("warm: acquire %s/%d: file of %d bytes does not fit the address space", k.stream, k.base, size)
	}
	m, err := vfs.Map(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("warm: acquire %s/%d: %w", k.stream, k.base, err)
	}
	s.met.mappedDelta(1)
	sg := &segment{key: k, path: path, data: m.Data, mapped: m.Mapped}
	if err := sg.parse(); err != nil {
		s.unmap(sg)
		return nil, err
	}
	// Reads consult the footer's heap copy: no page parsing touched needs
	// to stay resident (pages.go).
	s.dropPages(sg, 0, len(m.Data))
	sg.charge = sg.residentCharge()
	if sg.stream != k.stream || sg.base != k.base {
		s.unmap(sg)
		return nil, &tiers.CorruptionError{Path: path, Offset: 0, Err: fmt.Errorf("%w: header names %s/%d", ErrBadHeader, sg.stream, sg.base)}
	}
	return sg, nil
}

// unmap releases a mapping nobody can reach any more.
func (s *Store) unmap(sg *segment) {
	if sg.data == nil {
		return
	}
	if err := (vfs.Mapping{Data: sg.data, Mapped: sg.mapped}).Unmap(); err != nil {
		s.log.Error("warm: munmap failed", "path", sg.path, "err", err)
	}
	sg.data = nil
	s.met.mappedDelta(-1)
}

// release drops one holder's reference.
func (s *Store) release(sg *segment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sg.refs--
	if sg.refs == 0 && !sg.cached {
		s.unmap(sg)
	}
}

// dropLocked removes k from the cache; its mapping goes when the last
// holder releases it.
func (s *Store) dropLocked(k segKey) {
	sg := s.mu.cache[k]
	if sg == nil {
		return
	}
	delete(s.mu.cache, k)
	s.mu.lru.Remove(sg.elem)
	s.mu.cacheBytes -= sg.charge
	s.met.cacheBytes.Add(-float64(sg.charge))
	sg.cached, sg.elem = false, nil
	if sg.refs == 0 {
		s.unmap(sg)
	}
}

// evictLocked trims the cache to CacheSize readers and MapCacheBytes of
// resident charge, least recently acquired first. A held reader leaves the
// cache but stays mapped until released.
func (s *Store) evictLocked() {
	for s.mu.lru.Len() > s.opts.CacheSize || s.mu.cacheBytes > s.opts.MapCacheBytes {
		s.dropLocked(s.mu.lru.Back().Value.(*segment).key)
	}
}

// invalidate makes the next Acquire of k map the file afresh, after the file
// was replaced or removed.
func (s *Store) invalidate(k segKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.epoch++
	s.dropLocked(k)
}

// Remove unlinks the segment file now and fsyncs its directory. Readers
// already holding it keep a valid mapping until they release it; later
// Acquires get tiers.ErrSegmentNotFound.
func (s *Store) Remove(stream string, base uint64) error {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return fmt.Errorf("warm: remove: %w", err)
	}
	if s.isClosed() {
		return fmt.Errorf("warm: remove: %w", tiers.ErrClosed)
	}
	k := segKey{stream, base}
	// Unlink before invalidating: an Acquire racing with us either maps the
	// file before the unlink (and the invalidation drops it) or fails.
	err := s.fs.Remove(s.Path(stream, base))
	s.invalidate(k)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("warm: remove %s/%d: %w: %w", stream, base, tiers.ErrSegmentNotFound, err)
	}
	if err != nil {
		return fmt.Errorf("warm: remove %s/%d: %w", stream, base, err)
	}
	if err := s.syncDir(filepath.Join(s.dir, stream)); err != nil {
		return fmt.Errorf("warm: remove %s/%d: %w", stream, base, err)
	}
	return nil
}

// Close drops the reader cache. Readers still held stay valid until
// released; every other call fails with tiers.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil
	}
	s.mu.closed = true
	for k := range s.mu.cache {
		s.dropLocked(k)
	}
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closed
}

// ensureStreamDir creates the stream's directory and makes its entry
// durable before the first segment is written into it.
func (s *Store) ensureStreamDir(stream string) error {
	s.mu.Lock()
	known := s.mu.dirs[stream]
	s.mu.Unlock()
	if known {
		return nil
	}
	if err := s.fs.MkdirAll(filepath.Join(s.dir, stream), 0o755); err != nil {
		return err
	}
	if err := s.syncDir(s.dir); err != nil {
		return err
	}
	s.mu.Lock()
	s.mu.dirs[stream] = true
	s.mu.Unlock()
	return nil
}

// syncDir fsyncs a directory so entries created, renamed or removed in it
// survive a power loss.
func (s *Store) syncDir(dir string) error {
	return vfs.TimedSyncDir(s.fs, dir, func(d time.Duration) {
		s.met.fsync.WithLabelValues("dir").Observe(d.Seconds())
	})
}
