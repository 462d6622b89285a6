// Package sequencer is a cluster node's write path: it collects the batches
// Append is given, for any streams, into one journal object (package
// journal), and every FlushInterval or FlushBytes PUTs the object to the
// shared bucket and then sequences its batches in ONE PostgreSQL
// transaction: the node's epoch checked (fencing), each stream's row locked
// in name order, each idempotent producer's last batch checked, dense
// offsets assigned in arrival order, a journal_ranges row per accepted
// batch and the object's journal_objects row inserted, next_offset moved
// and a NOTIFY per stream sent. Only after COMMIT is an Append answered.
//
// The shape is group commit: while one object collects, up to two are in
// flight (the next PUT may overlap a slow previous flush; commits stay in
// object order), so a flush carries every batch that arrived since the
// previous one started, and a node makes at most one PUT and one
// transaction per FlushInterval however many appends it takes.
//
// Object keys are _journal/<node_id>/<epoch:020d>/<seq:020d>-<token> in the
// bucket (ObjectKey): unique per process (the epoch is, and the token is
// random per start, so that even an epoch taken again — PostgreSQL restored
// to an earlier point — never overwrites an object or meets a cache entry
// of another process), listable per node, and ordered by write. A crash between the PUT and the COMMIT leaves an object
// without a journal_objects row, which garbage collection removes after
// cluster.gc_delay; a crash between the COMMIT and the answers is resolved
// by the producer's retry, answered as a duplicate with the offsets the
// batch already has.
package sequencer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/cluster/registry"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/journal"
	"github.com/tierd/tierd/tiers"
)

// The defaults of Options' zero fields. policy's cluster section takes
// flush_interval and flush_bytes from them.
const (
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultFlushBytes    = 8 << 20
	// DefaultMaxPendingBytes bounds the bytes encoded and not yet
	// answered (the object in flight and the one collecting).
	DefaultMaxPendingBytes = 64 << 20
	// DefaultCommitTimeout bounds one flush's PostgreSQL transaction.
	DefaultCommitTimeout = 10 * time.Second
)

// JournalPrefix is the key prefix of every journal object in the bucket.
const JournalPrefix = "_journal/"

// ObjectKey is the key of the seq-th journal object a node's process with
// epoch and token wrote: _journal/<node_id>/<epoch:020d>/<seq:020d>-<token>.
func ObjectKey(nodeID string, epoch uint64, token string, seq uint64) string {
	return fmt.Sprintf("%s%s/%020d/%020d-%s", JournalPrefix, nodeID, epoch, seq, token)
}

// newToken is 8 random hex digits: a process's mark in its object keys.
func newToken() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Options configures New. Pool, Bucket and Registry are required.
type Options struct {
	// Pool reaches the cluster's PostgreSQL, migrated by pgschema.
	Pool *pgxpool.Pool
	// Bucket is the shared object store, with its deadlines
	// (objstore.Open adds them): a PUT that hangs fails the flush.
	Bucket objstore.Bucket
	// Registry is this process's membership: its node id and epoch name
	// the objects and fence the commits, and its streams-written figure
	// is kept up to date.
	Registry *registry.Registry
	// FlushInterval is the least time between the starts of two flushes:
	// a node PUTs at most 1/FlushInterval objects per second, and a batch
	// waits at most FlushInterval plus the flush in flight. The cadence
	// runs from the previous flush's start, not from a batch's arrival, so
	// appenders waiting for one flush join the next without adding its
	// duration to every cycle; after an idle spell the first batch goes at
	// once. 0 means DefaultFlushInterval.
	FlushInterval time.Duration
	// FlushBytes writes an object early once it holds this many bytes;
	// 0 means DefaultFlushBytes.
	FlushBytes int64
	// MaxPendingBytes caps the encoded bytes collected and in flight;
	// past it Append answers tiers.ErrBackpressure. 0 means
	// DefaultMaxPendingBytes.
	MaxPendingBytes int64
	// CommitTimeout bounds one flush's transaction; 0 means
	// DefaultCommitTimeout.
	CommitTimeout time.Duration
	// CommitBy bounds the time from a journal object's PUT to the end of
	// its commit: garbage collection deletes an object no row references
	// once it is older than cluster.gc_delay, so a commit landing later
	// could reference a deleted object. A commit that cannot finish in
	// time is abandoned (nothing written). The node passes half of
	// gc_delay, leaving the other half for clock skew between nodes and
	// the store; 0 means no bound beyond CommitTimeout.
	CommitBy time.Duration
	// ProducerTTL is how long an idempotent producer's last batch to a
	// stream is remembered after it was written, as wal.producer_ttl in
	// local mode: a commit forgets the older ones of the streams it locks
	// (at most once a minute), so cluster_producers does not grow with
	// every producer ever seen. 0 means tiers.DefaultProducerTTL.
	ProducerTTL time.Duration
	// OnCommit, when set, is called after each successful commit and
	// before the appends are answered, so the node's reader can cache the
	// object it just wrote (an acknowledged record is then readable from
	// memory at once). It runs on the flush path: it must not block. The
	// Committed value, Data included, is the callee's to keep.
	OnCommit func(Committed)
	// Logger receives flush failures and fencing; nil discards them.
	Logger *slog.Logger
	// Registerer, when set, exports the sequencer's metrics.
	Registerer prometheus.Registerer
}

// Result is an accepted batch's offsets. Duplicate is set when the batch is
// an idempotent producer's retry of a batch already committed: First..Last
// are then the offsets that batch got, and nothing was written again.
type Result struct {
	First, Last uint64
	Count       int
	Duplicate   bool
}

// Range is one committed batch as journal_ranges has it.
type Range struct {
	Stream      string
	First, Last uint64
	// Off and Len are the block's bytes in the object.
	Off, Len     int64
	MinTS, MaxTS int64
	// Bytes is the records' tiers.Record.Size total.
	Bytes int64
}

// Committed is one committed journal object, given to Options.OnCommit:
// its key, its whole bytes, and the batches of it that were accepted (a
// duplicate or refused batch's block is in Data but has no Range).
type Committed struct {
	Key    string
	Data   []byte
	Ranges []Range
}

// Sequencer is a node's write path. Its methods are safe for concurrent
// use.
type Sequencer struct {
	o     Options
	node  string
	epoch uint64
	token string // random per process: see ObjectKey
	log   *slog.Logger
	m     *metrics

	wake chan struct{} // the flusher has something to look at
	done chan struct{} // the flusher exited
	life context.Context
	kill context.CancelFunc

	mu struct {
		sync.Mutex
		cur     *object // collecting; nil when empty
		seq     uint64  // the next object's sequence number
		pending int64   // encoded bytes collecting and in flight
		refuse  error   // why Append refuses: closed or fenced
		last    error   // the last flush's failure; nil once one succeeds
		fenced  error   // the node is fenced: every batch fails
		closing bool
	}
	written   streamWindow // the committing flush's only
	lastPrune time.Time    // the committing flush's only
}

// object is one journal object being collected or flushed.
type object struct {
	seq     uint64
	w       *journal.Writer
	bytes   int64
	batches []batch
	done    chan struct{} // closed once every batch has its answer
}

// batch is one Append in an object, and its answer once done is closed.
type batch struct {
	stream   string
	producer tiers.Producer
	ref      journal.BlockRef
	size     int64 // tiers.Record.Size total
	arrived  time.Time
	res      Result
	err      error
}

// New starts a sequencer. Close stops it.
func New(o Options) (*Sequencer, error) {
	switch {
	case o.Pool == nil:
		return nil, errors.New("sequencer: Options.Pool is required")
	case o.Bucket == nil:
		return nil, errors.New("sequencer: Options.Bucket is required")
	case o.Registry == nil:
		return nil, errors.New("sequencer: Options.Registry is required")
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = DefaultFlushBytes
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = DefaultCommitTimeout
	}
	if o.ProducerTTL <= 0 {
		o.ProducerTTL = tiers.DefaultProducerTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sequencer{
		o:     o,
		node:  o.Registry.NodeID(),
		epoch: o.Registry.Epoch(),
		token: newToken(),
		log:   o.Logger,
		m:     newMetrics(o.Registerer),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	s.life, s.kill = context.WithCancel(context.Background())
	s.written.reset(time.Now())
	go s.run()
	return s, nil
}

// Append sequences one batch of one stream and returns its offsets once
// they are committed. p is the zero Producer for a plain append; for an
// idempotent producer's batch, a retry of its last batch to the stream
// (same Seq, same record count) answers Duplicate with the offsets the
// batch got, and an older Seq or a retry with another count fails with
// tiers.ErrProducerSequence. The records' offsets are ignored; recs are
// not retained.
//
// Errors: tiers.ErrStorageUnavailable when the object store or PostgreSQL
// failed before the commit (nothing was written; retry);
// tiers.ErrOutcomeUnknown when the commit was sent but its answer lost
// (the batch may be written; an idempotent producer's retry tells);
// tiers.ErrBackpressure when MaxPendingBytes are pending; registry.ErrFenced
// (also wrapping tiers.ErrStorageFailed) once a newer process took over the
// node id: this sequencer never writes again; tiers.ErrClosed after Close.
//
// When ctx ends while the batch waits, Append returns ctx.Err(), but the
// batch is already in the object and may still be committed: only an
// idempotent producer's retry can tell.
func (s *Sequencer) Append(ctx context.Context, stream string, p tiers.Producer, recs []tiers.Record) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err // nobody would wait for the answer
	}
	if err := tiers.ValidateStreamName(stream); err != nil {
		return Result{}, err
	}
	if len(recs) == 0 {
		return Result{}, fmt.Errorf("%w: a batch needs at least one record", tiers.ErrInvalidRecord)
	}
	if p.ID.IsZero() != (p.Seq == 0) || p.Seq > math.MaxInt64 {
		return Result{}, fmt.Errorf("%w: producer %s with sequence %d", tiers.ErrInvalidRecord, p.ID, p.Seq)
	}
	var size int64
	for i := range recs {
		size += int64(recs[i].Size())
	}
	if size > s.o.MaxPendingBytes {
		return Result{}, fmt.Errorf("%w: batch of %d bytes, the sequencer holds at most %d", tiers.ErrBatchOverBudget, size, s.o.MaxPendingBytes)
	}
	arrived := time.Now()

	s.mu.Lock()
	if err := s.mu.refuse; err != nil {
		s.mu.Unlock()
		return Result{}, err
	}
	if pending := s.mu.pending; pending > 0 && pending+size > s.o.MaxPendingBytes {
		s.mu.Unlock()
		return Result{}, fmt.Errorf("%w: %d bytes wait for the journal (max %d)", tiers.ErrBackpressure, pending, s.o.MaxPendingBytes)
	}
	obj := s.mu.cur
	first := obj == nil
	if first {
		var err error
		if obj, err = s.newObjectLocked(arrived); err != nil {
			s.mu.Unlock()
			return Result{}, err
		}
	}
	ref, err := obj.w.Add(stream, p, recs)
	if err != nil {
		if first {
			s.mu.cur = nil
		}
		s.mu.Unlock()
		if errors.Is(err, journal.ErrBatchTooLarge) {
			return Result{}, fmt.Errorf("%w: %w", tiers.ErrBatchOverBudget, err)
		}
		return Result{}, err
	}
	i := len(obj.batches)
	obj.batches = append(obj.batches, batch{stream: stream, producer: p, ref: ref, size: size, arrived: arrived})
	obj.bytes += ref.Len
	s.mu.pending += ref.Len
	s.m.pending.Set(float64(s.mu.pending))
	full := int64(obj.w.Len()) >= s.o.FlushBytes
	s.mu.Unlock()
	if first || full {
		s.poke()
	}

	select {
	case <-obj.done:
		b := &obj.batches[i]
		return b.res, b.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// newObjectLocked opens the next object. s.mu held.
func (s *Sequencer) newObjectLocked(now time.Time) (*object, error) {
	w, err := journal.NewWriter(journal.Header{NodeID: s.node, Epoch: s.epoch, CreatedAt: now.UnixNano()})
	if err != nil {
		return nil, fmt.Errorf("sequencer: %w", err)
	}
	obj := &object{seq: s.mu.seq, w: w, done: make(chan struct{})}
	s.mu.seq++
	s.mu.cur = obj
	return obj, nil
}

func (s *Sequencer) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// LastFlushError is the failure of the most recent flush (wrapping
// tiers.ErrStorageUnavailable, tiers.ErrOutcomeUnknown or
// registry.ErrFenced), nil once a flush succeeds: what keeps this node's
// writes from storage now, for health reports.
func (s *Sequencer) LastFlushError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.fenced != nil {
		return s.mu.fenced
	}
	return s.mu.last
}

// Err is non-nil once the sequencer refuses every write for good: it was
// closed (tiers.ErrClosed) or its node was fenced (registry.ErrFenced).
func (s *Sequencer) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.refuse
}

// Close refuses new appends, flushes the batches already collected and
// stops. If ctx ends first, the flush in progress is abandoned (its
// appends fail) and Close returns ctx.Err().
func (s *Sequencer) Close(ctx context.Context) error {
	s.mu.Lock()
	s.mu.closing = true
	if s.mu.refuse == nil {
		s.mu.refuse = fmt.Errorf("sequencer: %w", tiers.ErrClosed)
	}
	s.mu.Unlock()
	s.poke()
	select {
	case <-s.done:
		s.kill()
		return nil
	case <-ctx.Done():
		s.kill()
		<-s.done
		return ctx.Err()
	}
}

// maxInFlight is how many flushes may be under way at once. Two let the
// next object's PUT overlap a slow PUT or commit of the previous one (a
// store's tail latency then delays one cycle, not two), while commits stay
// in object order.
const maxInFlight = 2

// run is the flusher: it takes the collecting object once it is due
// (FlushInterval after the previous flush started, or FlushBytes full, or
// at Close) and starts its flush once fewer than maxInFlight are under
// way. Each flush PUTs at once and commits after the previous flush's
// commit is decided, so offsets follow the objects' order.
func (s *Sequencer) run() {
	var inFlight sync.WaitGroup
	defer func() {
		inFlight.Wait()
		close(s.done)
	}()
	slots := make(chan struct{}, maxInFlight)
	prev := make(chan struct{}) // closed when the previous flush's commit is decided
	close(prev)
	var lastStart time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	fenced := s.o.Registry.Fenced()
	for {
		s.mu.Lock()
		obj, closing, failAll := s.mu.cur, s.mu.closing, s.mu.fenced
		var wait time.Duration
		if obj != nil && !closing && failAll == nil && int64(obj.w.Len()) < s.o.FlushBytes {
			wait = time.Until(lastStart.Add(s.o.FlushInterval))
		}
		if obj != nil && wait <= 0 {
			s.mu.cur = nil
		}
		s.mu.Unlock()

		switch {
		case obj == nil && closing:
			return
		case obj == nil || wait > 0:
			if wait > 0 {
				timer.Reset(wait)
			}
			select {
			case <-s.wake:
			case <-timer.C:
			case <-fenced:
				fenced = nil
				s.fence(fmt.Errorf("sequencer: the registry's heartbeat found a newer epoch: %w", registry.ErrFenced))
			}
			timer.Stop()
			continue
		case failAll != nil:
			s.answer(obj, nil, failAll)
			continue
		}
		slots <- struct{}{}
		lastStart = time.Now()
		turn, mine := prev, make(chan struct{})
		prev = mine
		inFlight.Go(func() {
			defer func() { <-slots }()
			s.flush(obj, turn, mine)
		})
	}
}

// fence makes the sequencer refuse everything from now on: the node's
// epoch is no longer current, so nothing it collected may be committed.
func (s *Sequencer) fence(cause error) {
	err := fmt.Errorf("%w (node %s epoch %d stops writing): %w", cause, s.node, s.epoch, tiers.ErrStorageFailed)
	s.mu.Lock()
	first := s.mu.fenced == nil
	if first {
		s.mu.fenced = err
		s.mu.refuse = err
	}
	s.mu.Unlock()
	if first {
		s.log.Error("sequencer fenced: another process joined with this node id; refusing every write", "node_id", s.node, "epoch", s.epoch)
		s.o.Registry.MarkFenced()
	}
}

// flush writes obj, waits for its turn (the previous flush's commit
// decided), commits it, then answers its batches. It closes mine once its
// own commit is decided and OnCommit has run, so OnCommit sees objects in
// commit order.
func (s *Sequencer) flush(obj *object, turn <-chan struct{}, mine chan<- struct{}) {
	defer close(mine)
	data := obj.w.Finish()
	key := ObjectKey(s.node, s.epoch, s.token, obj.seq)
	s.m.batches.Observe(float64(len(obj.batches)))
	s.m.objectBytes.Observe(float64(len(data)))

	start := time.Now()
	err := s.o.Bucket.Put(s.life, key, bytes.NewReader(data), int64(len(data)))
	s.m.put.Observe(time.Since(start).Seconds())
	if err == nil {
		err = failpoint.Inject(failpoint.SequencerAfterPut)
	}
	<-turn
	if err != nil {
		s.m.flushes.WithLabelValues(resultPutFailed).Inc()
		s.logFailure("journal object not stored; its appends fail, nothing written", key, err)
		s.answer(obj, nil, fmt.Errorf("%w: sequencer: put journal object %s: %w", tiers.ErrStorageUnavailable, key, err))
		return
	}
	s.mu.Lock()
	fenced := s.mu.fenced
	s.mu.Unlock()
	if fenced != nil {
		// The flush before found the node fenced: do not even try.
		s.m.flushes.WithLabelValues(resultFenced).Inc()
		s.answer(obj, nil, fenced)
		return
	}

	putAt := start
	start = time.Now()
	out, err := s.commit(obj, key, int64(len(data)), putAt)
	s.m.commit.Observe(time.Since(start).Seconds())
	if err == nil {
		err = failpoint.Inject(failpoint.SequencerAfterCommit)
		if err != nil {
			err = fmt.Errorf("%w: sequencer: after the commit of %s: %w", tiers.ErrOutcomeUnknown, key, err)
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, registry.ErrFenced):
		s.m.flushes.WithLabelValues(resultFenced).Inc()
		s.fence(err)
		s.mu.Lock()
		err = s.mu.fenced
		s.mu.Unlock()
		s.answer(obj, nil, err)
		return
	case errors.Is(err, tiers.ErrOutcomeUnknown):
		s.m.flushes.WithLabelValues(resultUnknown).Inc()
		s.logFailure("commit sent, answer lost: the appends may be written; producers' retries resolve them", key, err)
		s.answer(obj, nil, err)
		return
	default:
		s.m.flushes.WithLabelValues(resultCommitFailed).Inc()
		s.logFailure("commit failed; its appends fail, nothing written (the object is garbage)", key, err)
		s.answer(obj, nil, err)
		return
	}
	s.m.flushes.WithLabelValues(resultOK).Inc()
	if s.o.OnCommit != nil && len(out.ranges) > 0 {
		s.o.OnCommit(Committed{Key: key, Data: data, Ranges: out.ranges})
	}
	s.noteWritten(out.ranges)
	s.answer(obj, out.results, nil)
}

func (s *Sequencer) logFailure(msg, key string, err error) {
	s.log.Warn("sequencer: "+msg, "key", key, "err", err)
}

// answer gives each batch of obj its result (results[i]) or err, frees its
// pending bytes and wakes its Append.
func (s *Sequencer) answer(obj *object, results []outcome, err error) {
	now := time.Now()
	for i := range obj.batches {
		b := &obj.batches[i]
		if err != nil {
			b.err = err
		} else {
			b.res, b.err = results[i].res, results[i].err
		}
		s.m.ack.Observe(now.Sub(b.arrived).Seconds())
	}
	s.mu.Lock()
	s.mu.pending -= obj.bytes
	s.mu.last = err
	s.m.pending.Set(float64(s.mu.pending))
	s.mu.Unlock()
	close(obj.done)
}

// noteWritten counts the streams committed to and reports them to the
// registry's heartbeat.
func (s *Sequencer) noteWritten(ranges []Range) {
	now := time.Now()
	for _, r := range ranges {
		s.written.add(now, r.Stream)
	}
	s.o.Registry.SetStreamsWritten(int64(s.written.count()))
}

// streamWindow counts distinct streams written in about the last minute
// with two rotating sets, so its memory is bounded by the streams active
// in two minutes, not by every stream ever written.
type streamWindow struct {
	start     time.Time
	cur, prev map[string]struct{}
}

const streamWindowLen = time.Minute

func (w *streamWindow) reset(now time.Time) {
	w.start, w.cur, w.prev = now, map[string]struct{}{}, map[string]struct{}{}
}

func (w *streamWindow) add(now time.Time, stream string) {
	if now.Sub(w.start) >= streamWindowLen {
		w.prev, w.cur, w.start = w.cur, map[string]struct{}{}, now
	}
	w.cur[stream] = struct{}{}
}

func (w *streamWindow) count() int { return max(len(w.cur), len(w.prev)) }
