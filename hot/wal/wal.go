package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/internal/vfs"
	"github.com/tierd/tierd/tiers"
)

// Options configures a WAL. Zero fields take the defaults.
type Options struct {
	Dir          string
	Sync         tiers.SyncMode // default tiers.SyncAlways
	SyncInterval time.Duration  // default 10ms (for tiers.SyncInterval)
	SegmentBytes int64          // rotate files at this size; default 64 MiB
	Logger       *slog.Logger   // nil: discard
	// Registerer receives tierd_wal_* metrics (fsync latency, bytes written,
	// group commits, ...); nil: no metrics.
	Registerer prometheus.Registerer
	// FS is the filesystem the log lives in; nil means vfs.Default (the
	// OS). Crash tests run the log on a vfs.MemFS.
	FS vfs.FS
	// OpenFile opens WAL files; tests inject short writes and failed syncs
	// through it. Default FS.OpenFile.
	OpenFile func(path string, flag int, perm os.FileMode) (SegmentFile, error)
	// ProducerTTL is how long an idempotent producer's last batch is
	// remembered after it was written (default 7 days): a retry later than
	// that is appended again.
	ProducerTTL time.Duration
	// Now is the clock of producer expiry; default time.Now.
	Now func() time.Time
	// Unwritten is told, after a group was refused with nothing written
	// (the next file could not be created, the disk is full), each
	// stream's first offset that is not in the log: the refused group's and
	// those of every batch queued behind it, which are refused too. The log
	// refuses every Enqueue until it returns, so the caller can take back
	// the offsets it assigned before any later batch builds on them. It is
	// called from the committer goroutine with no WAL lock held.
	Unwritten func(firsts map[string]uint64)
	// RetryInterval is the longest wait between the log's own attempts to
	// get past a refusal while no batch arrives (creating the next file,
	// checking for free space); they start at a fiftieth of it and double.
	// Default 1s.
	RetryInterval time.Duration
}

// DefaultRetryInterval is the default Options.RetryInterval.
const DefaultRetryInterval = time.Second

func (o *Options) setDefaults() {
	if o.Sync == "" {
		o.Sync = tiers.SyncAlways
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = tiers.DefaultWALSyncInterval
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = tiers.DefaultWALSegmentBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ProducerTTL <= 0 {
		o.ProducerTTL = tiers.DefaultProducerTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.OpenFile == nil {
		fsys := o.FS
		o.OpenFile = func(path string, flag int, perm os.FileMode) (SegmentFile, error) {
			f, err := fsys.OpenFile(path, flag, perm)
			if err != nil {
				return nil, err // a nil vfs.File must not become a non-nil SegmentFile
			}
			return f, nil
		}
	}
}

// SegmentFile is what the WAL needs of an open file (Prometheus
// wlog.SegmentFile-like), small so that a test can wrap *os.File to fail.
type SegmentFile interface {
	io.Reader
	io.Writer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

// Ticket is the promise of one Enqueue. Batches that share a group commit
// share a Ticket, so tickets cost nothing per batch.
type Ticket struct {
	done chan struct{}
	err  error // set before done is closed
}

func newTicket() *Ticket { return &Ticket{done: make(chan struct{})} }

// doneTicket returns a ticket already completed with err.
func doneTicket(err error) *Ticket {
	t := &Ticket{done: make(chan struct{}), err: err}
	close(t.done)
	return t
}

func (t *Ticket) complete(err error) {
	t.err = err
	close(t.done)
}

// Done reports whether the ticket is complete (Wait would not block).
func (t *Ticket) Done() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the ticket's frame is durable per the sync mode
// (tiers.SyncAlways: after the fsync covering it; tiers.SyncInterval/tiers.SyncNone: after the
// write), or ctx ends. ctx ending does not undo the frame; it may still
// become durable. Storage failures wrap tiers.ErrStorageFailed.
func (t *Ticket) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// frameInfo locates one queued frame in a group's buffer and carries what
// Checkpoint needs to know about it.
type frameInfo struct {
	end    int // end of the frame in the group buffer
	stream string
	last   uint64 // highest offset in the frame
	// An idempotent producer's batch: its ID, sequence and record count.
	producer tiers.ProducerID
	seq      uint64
	at       int64
	count    uint64
}

// segment is one WAL file and, for Checkpoint, the highest offset of each
// stream in it. Only the committer changes the newest segment; older ones
// are immutable.
type segment struct {
	seq     uint64
	path    string
	size    int64
	head    int64 // the header and the producer snapshot
	streams map[string]uint64
}

func (s *segment) note(stream string, last uint64) {
	if cur, ok := s.streams[stream]; !ok || last > cur {
		s.streams[stream] = last
	}
}

// Stats is a snapshot for status pages and tierctl.
type Stats struct {
	Files  int
	Bytes  int64
	Sync   string
	Failed error // the sticky storage failure; nil while healthy
	// Refused is why the latest group was refused with nothing written
	// (wrapping tiers.ErrStorageUnavailable), while the condition lasts:
	// nil again once a group is written or the log sees the condition
	// gone. RefusedSince is when the first refusal of the episode came.
	Refused      error
	RefusedSince time.Time
	GroupCommits uint64 // groups written
	Syncs        uint64 // fsyncs of WAL files
}

// WAL is the write-ahead log of every stream. Enqueue is safe for concurrent
// use; a single committer goroutine writes.
type WAL struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	wake chan struct{} // cap 1: the committer has work
	done chan struct{} // closed when the committer exits

	// mu guards the queue the committer takes whole.
	mu struct {
		sync.Mutex
		buf    []byte      // encoded frames of the pending group
		frames []frameInfo // their boundaries
		group  *Ticket     // the pending group's ticket, nil when empty
		closed bool
		failed error   // sticky; wraps tiers.ErrStorageFailed
		refuse *Ticket // completed ticket returned once closed or failed
		// refusing is set while Options.Unwritten takes back a refused
		// group's offsets: every Enqueue is refused with it meanwhile.
		refusing error
		// stalled is the latest refusal while the condition lasts (see
		// Stats.Refused), stalledSince when the episode began.
		stalled      error
		stalledSince time.Time
	}

	// files guards the file list shared with Checkpoint and Stats.
	files struct {
		sync.Mutex
		list []*segment // oldest first; the last is being written
	}
	checkpointMu sync.Mutex // one Checkpoint at a time

	// producers is the durable producer table: what the written frames
	// say. The committer writes it; Producers reads it.
	producers struct {
		sync.Mutex
		table producerTable
	}

	// Owned by the committer goroutine.
	dir      vfs.File // the log's directory, held open so that a rotation needs no descriptor to sync it
	cur      SegmentFile
	curSeg   *segment
	dirty    bool // written since the last fsync
	spareBuf []byte
	spareFrm []frameInfo
	closeErr error
	retry    retryState

	groupCommits atomic.Uint64
	syncs        atomic.Uint64
}

// Open opens or creates the WAL in opts.Dir, replays every frame of every file
// in order into replay (which may be nil), repairs a torn tail of the newest
// file (truncate at the last whole frame, log a warning naming file and
// offset), and returns an error (wrapping *tiers.CorruptionError naming file
// and byte offset) for damage anywhere else. After Open, appends go to a new
// file. Batches passed to replay are the caller's to keep.
func Open(ctx context.Context, opts Options, replay func(Batch) error) (*WAL, error) {
	opts.setDefaults()
	if opts.Dir == "" {
		return nil, fmt.Errorf("wal: Options.Dir is empty")
	}
	if !opts.Sync.Valid() {
		return nil, fmt.Errorf("wal: unknown sync mode %q", opts.Sync)
	}
	// The directory's own entry must survive a crash too, or every file in
	// it goes with it.
	if err := vfs.MkdirAllSync(opts.FS, opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	w := &WAL{
		opts: opts,
		log:  opts.Logger,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	w.metrics = newMetrics(opts.Registerer)
	w.producers.table = producerTable{}
	segs, err := w.recover(ctx, replay)
	if err != nil {
		return nil, err
	}
	var next uint64 = 1
	if len(segs) > 0 {
		next = segs[len(segs)-1].seq + 1
	}
	w.files.list = segs
	if w.dir, err = opts.FS.OpenDir(opts.Dir); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	f, seg, err := w.newFile(next)
	if err != nil {
		w.dir.Close()
		return nil, fmt.Errorf("wal: %w", err)
	}
	w.install(f, seg)
	go w.run()
	return w, nil
}

// Enqueue encodes b and queues it for the next group commit. It does not
// block on I/O. Frames are written in Enqueue order, so a caller that
// enqueues a stream's batches in offset order (under its own lock) gets them
// in the log in that order. b may be reused by the caller after Enqueue
// returns. A batch the log cannot hold gets a ticket failed with
// ErrInvalidBatch or ErrBatchTooLarge; after Close, tiers.ErrClosed; after a
// storage failure, the sticky tiers.ErrStorageFailed.
func (w *WAL) Enqueue(b Batch) *Ticket {
	if !b.Producer.IsZero() && b.At == 0 {
		b.At = w.opts.Now().UnixNano()
	}
	if _, err := batchBodyLen(&b); err != nil {
		return doneTicket(err)
	}
	w.mu.Lock()
	if w.mu.refuse != nil {
		t := w.mu.refuse
		w.mu.Unlock()
		return t
	}
	if err := w.mu.refusing; err != nil {
		w.mu.Unlock()
		return doneTicket(err)
	}
	w.mu.buf = appendFrame(w.mu.buf, &b)
	w.mu.frames = append(w.mu.frames, frameInfo{
		end:      len(w.mu.buf),
		stream:   b.Stream,
		last:     b.Records[len(b.Records)-1].Offset,
		producer: b.Producer,
		seq:      b.Seq,
		at:       b.At,
		count:    uint64(len(b.Records)),
	})
	if w.mu.group == nil {
		w.mu.group = newTicket()
	}
	t := w.mu.group
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return t
}

// Close writes and syncs what is queued, then closes the current file.
// Later Enqueue tickets fail with tiers.ErrClosed. It returns the sticky
// storage failure, if any, so a caller learns that acknowledged-by-write
// data may not be durable. Closing twice returns nil.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.mu.closed {
		w.mu.Unlock()
		return nil
	}
	w.mu.closed = true
	w.mu.refuse = doneTicket(fmt.Errorf("wal: %w", tiers.ErrClosed))
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
	return w.closeErr
}

// Stats returns a snapshot of the log's files and health.
func (w *WAL) Stats() Stats {
	s := Stats{
		Sync:         string(w.opts.Sync),
		GroupCommits: w.groupCommits.Load(),
		Syncs:        w.syncs.Load(),
	}
	w.mu.Lock()
	s.Failed = w.mu.failed
	if s.Failed == nil {
		s.Refused, s.RefusedSince = w.mu.stalled, w.mu.stalledSince
	}
	w.mu.Unlock()
	w.files.Lock()
	s.Files = len(w.files.list)
	for _, seg := range w.files.list {
		s.Bytes += seg.size
	}
	w.files.Unlock()
	return s
}

// Checkpoint deletes WAL files, oldest first, whose every frame is persisted
// elsewhere: a file goes when, for every stream in it, its highest offset in
// that file < persisted(stream) (persisted returns the stream's first
// not-yet-persisted offset). It stops at the first file that must stay, never
// deletes the file being written, and returns how many files it removed.
// persisted is called without the WAL's locks held.
func (w *WAL) Checkpoint(persisted func(stream string) uint64) (int, error) {
	w.checkpointMu.Lock()
	defer w.checkpointMu.Unlock()
	w.files.Lock()
	// Every file but the last is immutable, so it can be read unlocked.
	older := append([]*segment(nil), w.files.list[:len(w.files.list)-1]...)
	w.files.Unlock()

	removed := 0
	var err error
scan:
	for _, seg := range older {
		for stream, last := range seg.streams {
			if last >= persisted(stream) {
				break scan
			}
		}
		if rerr := w.opts.FS.Remove(seg.path); rerr != nil && !os.IsNotExist(rerr) {
			err = fmt.Errorf("wal: checkpoint: %w", rerr)
			break
		}
		removed++
	}
	if removed > 0 {
		w.files.Lock()
		w.files.list = w.files.list[removed:]
		n := len(w.files.list)
		w.files.Unlock()
		w.metrics.files.Set(float64(n))
		w.metrics.removed.Add(float64(removed))
		w.log.Debug("wal: checkpoint removed files", "files", removed, "through", older[removed-1].path)
		// Not strictly needed: a file that reappears after a crash is
		// replayed again, and callers skip what they have persisted.
		if serr := w.dir.Sync(); serr != nil && err == nil {
			err = fmt.Errorf("wal: checkpoint: %w", serr)
		}
	}
	return removed, err
}

// run is the committer: it takes everything queued, writes it, syncs per the
// mode and completes the group's ticket, until Close drains the queue.
func (w *WAL) run() {
	defer close(w.done)
	var tick <-chan time.Time
	if w.opts.Sync == tiers.SyncInterval {
		t := time.NewTicker(w.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-w.wake:
		case <-tick:
			if w.dirty && w.healthy() {
				if err := w.syncCur(); err != nil {
					w.fail(err)
				}
			}
			continue
		case <-w.retry.timer():
			w.probe()
			continue
		}
		for {
			g, buf, frames, closed := w.take()
			if g != nil {
				w.commit(g, buf, frames)
				continue
			}
			if closed {
				w.finish()
				return
			}
			break
		}
	}
}

// take swaps the pending queue for the committer's spare buffers.
func (w *WAL) take() (*Ticket, []byte, []frameInfo, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g, buf, frames := w.mu.group, w.mu.buf, w.mu.frames
	if g == nil {
		return nil, nil, nil, w.mu.closed
	}
	w.mu.group = nil
	w.mu.buf, w.mu.frames = w.spareBuf[:0], w.spareFrm[:0]
	w.spareBuf, w.spareFrm = nil, nil
	return g, buf, frames, w.mu.closed
}

// maxKeptBuf is the largest group buffer kept for reuse; one huge batch
// should not pin its memory for the life of the process.
const maxKeptBuf = 16 << 20

// commit writes one group: with one write to one file (rotating first if
// the group would take the current file past SegmentBytes), then one fsync
// under tiers.SyncAlways. A group never spans files, so it is refused whole with
// nothing written when the next file cannot be created or the write can be
// undone; only a failure that may have left bytes the log cannot take back
// stops the log (fail).
func (w *WAL) commit(g *Ticket, buf []byte, frames []frameInfo) {
	defer func() {
		if cap(buf) <= maxKeptBuf {
			w.spareBuf, w.spareFrm = buf[:0], frames[:0]
		}
	}()
	if err := w.failure(); err != nil {
		g.complete(err)
		return
	}
	err := w.writeGroup(buf, frames)
	var r *refusal
	if errors.As(err, &r) {
		w.refuse(g, frames, int64(len(buf)), r)
		return
	}
	if err != nil {
		err = w.fail(err)
	} else {
		w.resume()
	}
	w.groupCommits.Add(1)
	w.metrics.groupCommits.Inc()
	g.complete(err)
}

func (w *WAL) writeGroup(buf []byte, frames []frameInfo) error {
	if w.rotationDue(int64(len(buf))) {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	if err := w.writeFrames(buf, frames); err != nil {
		return err
	}
	if w.opts.Sync == tiers.SyncAlways {
		return w.syncCur()
	}
	return nil
}

// rotationDue reports whether n more bytes of frames would take the
// current file past SegmentBytes. The head (header and producer snapshot)
// does not count: a large snapshot must not make every group start a file
// of its own. A file without frames takes a group of any size.
func (w *WAL) rotationDue(n int64) bool {
	framed := w.curSeg.size - w.curSeg.head
	return framed > 0 && framed+n > w.opts.SegmentBytes
}

// writeFrames writes frames to the current file with one write.
// Bookkeeping comes first so that Checkpoint never underestimates what a
// file may hold. A write that fails for want of space is undone (truncated
// back, synced, checked) and returned as a *refusal; any other failure is
// the log's end.
func (w *WAL) writeFrames(b []byte, frames []frameInfo) error {
	if len(b) == 0 {
		return nil
	}
	w.files.Lock()
	for _, fr := range frames {
		w.curSeg.note(fr.stream, fr.last)
	}
	good := w.curSeg.size
	w.files.Unlock()
	n, err := w.cur.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil && undoable(err) {
		err = fmt.Errorf("write %s: %w", w.curSeg.path, err)
		if uerr := w.undo(good); uerr != nil {
			return errors.Join(err, uerr)
		}
		return &refusal{op: opWrite, err: err}
	}
	w.dirty = true
	w.files.Lock()
	w.curSeg.size += int64(n)
	w.files.Unlock()
	w.metrics.bytesWritten.Add(float64(n))
	if err != nil {
		return fmt.Errorf("write %s: %w", w.curSeg.path, err)
	}
	w.metrics.batches.Add(float64(len(frames)))
	// Written, so the next file's snapshot must hold them: rotation syncs
	// this file before the next one exists.
	w.producers.Lock()
	for _, fr := range frames {
		if !fr.producer.IsZero() {
			w.producers.table[ProducerKey{fr.stream, fr.producer}] = ProducerState{
				Stream: fr.stream, Producer: fr.producer, Seq: fr.seq,
				First: fr.last + 1 - fr.count, Count: fr.count, At: fr.at,
			}
		}
	}
	w.producers.Unlock()
	return nil
}

// undo takes a failed write back: the current file is truncated to good,
// its last size before the write, synced so that no part of the write can
// come back after a crash, and checked. Every byte below good was written
// by earlier groups, none of the failed one remains, so the log goes on.
func (w *WAL) undo(good int64) error {
	if err := w.cur.Truncate(good); err != nil {
		return fmt.Errorf("truncate %s back to %d bytes: %w", w.curSeg.path, good, err)
	}
	if err := w.syncCur(); err != nil {
		return err
	}
	st, err := w.cur.Stat()
	if err != nil {
		return fmt.Errorf("stat %s after truncating it: %w", w.curSeg.path, err)
	}
	if st.Size() != good {
		return fmt.Errorf("%s is %d bytes after truncating it to %d", w.curSeg.path, st.Size(), good)
	}
	return nil
}

// Producers returns the durable producer table: per stream and producer,
// the last batch the log holds. The hot tier seeds its own table with it
// after Open.
func (w *WAL) Producers() []ProducerState {
	w.producers.Lock()
	defer w.producers.Unlock()
	out := make([]ProducerState, 0, len(w.producers.table))
	for _, st := range w.producers.table {
		out = append(out, st)
	}
	return out
}

// rotate syncs the current file, creates the next one and switches to it.
// Creating comes after the sync, so only the newest file can ever be torn;
// a failed creation leaves the current file in place and is a *refusal.
func (w *WAL) rotate() error {
	if w.dirty {
		if err := w.syncCur(); err != nil {
			return err
		}
	}
	f, seg, err := w.newFile(w.curSeg.seq + 1)
	if err != nil {
		return err
	}
	// Synced above, so a close error costs nothing written.
	if err := w.cur.Close(); err != nil {
		w.log.Warn("wal: closing a synced file failed", "file", w.curSeg.path, "err", err)
	}
	w.install(f, seg)
	return nil
}

// newFile creates file seq. Like etcd's cut, the head is written to a
// temporary name, synced and renamed, and the directory synced, so a file
// never appears without its head. Any failure before the rename leaves
// nothing behind and is a *refusal; a failed directory sync after it is
// not (the name may or may not survive a crash).
func (w *WAL) newFile(seq uint64) (SegmentFile, *segment, error) {
	path := filepath.Join(w.opts.Dir, segmentName(seq))
	tmp := path + tmpSuffix
	// An attempt that failed may have left it (its removal failed too).
	if err := w.opts.FS.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, &refusal{op: opCreate, err: fmt.Errorf("create %s: %w", path, err)}
	}
	f, err := w.opts.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, &refusal{op: opCreate, err: fmt.Errorf("create %s: %w", tmp, err)}
	}
	// The header and the producer snapshot go in one write, before the
	// file has its name: a file never exists without both.
	w.producers.Lock()
	snap := w.producers.table.live(w.opts.Now().Add(-w.opts.ProducerTTL).UnixNano())
	w.producers.Unlock()
	head := appendSnapshotFrame(appendHeader(nil), snap)
	err = writeFull(f, head)
	if err == nil {
		err = w.timedSync(f)
	}
	if err == nil {
		err = w.opts.FS.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		w.opts.FS.Remove(tmp)
		return nil, nil, &refusal{op: opCreate, err: fmt.Errorf("create %s: %w", path, err)}
	}
	if err := w.dir.Sync(); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("create %s: fsync directory: %w", path, err)
	}
	seg := &segment{seq: seq, path: path, size: int64(len(head)), head: int64(len(head)), streams: map[string]uint64{}}
	return f, seg, nil
}

// install makes f the file being written.
func (w *WAL) install(f SegmentFile, seg *segment) {
	w.cur, w.curSeg, w.dirty = f, seg, false
	w.files.Lock()
	w.files.list = append(w.files.list, seg)
	n := len(w.files.list)
	w.files.Unlock()
	w.metrics.files.Set(float64(n))
}

func (w *WAL) syncCur() error {
	if err := w.timedSync(w.cur); err != nil {
		return fmt.Errorf("fsync %s: %w", w.curSeg.path, err)
	}
	w.dirty = false
	return nil
}

func (w *WAL) timedSync(f SegmentFile) error {
	start := time.Now()
	err := f.Sync()
	w.metrics.fsyncDuration.Observe(time.Since(start).Seconds())
	w.syncs.Add(1)
	return err
}

// finish runs once the queue is drained after Close.
func (w *WAL) finish() {
	w.retry.stop()
	defer w.dir.Close()
	if w.cur == nil {
		w.closeErr = w.failure()
		return
	}
	if w.healthy() && w.dirty {
		if err := w.syncCur(); err != nil {
			w.fail(err)
		}
	}
	cerr := w.cur.Close()
	w.cur = nil
	if err := w.failure(); err != nil {
		w.closeErr = err
	} else if cerr != nil {
		w.closeErr = fmt.Errorf("wal: close %s: %w", w.curSeg.path, cerr)
	}
}

// fail makes err sticky: after a failed write or fsync the page cache state
// is unknown (PostgreSQL's fsyncgate), so the log stops writing until it is
// reopened and recovered from what is really on disk.
func (w *WAL) fail(cause error) error {
	err := fmt.Errorf("wal: %w: %w", tiers.ErrStorageFailed, cause)
	w.mu.Lock()
	if w.mu.failed != nil {
		err = w.mu.failed
	} else {
		w.mu.failed = err
		if !w.mu.closed {
			w.mu.refuse = doneTicket(err)
		}
	}
	w.mu.Unlock()
	w.retry.active = false
	w.retry.stop()
	w.metrics.refusing.Set(0)
	w.metrics.failed.Set(1)
	w.log.Error("wal: storage failed, writes disabled until restart", "err", err)
	return err
}

func (w *WAL) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.failed
}

func (w *WAL) healthy() bool { return w.failure() == nil }

func writeFull(f SegmentFile, b []byte) error {
	n, err := f.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}
