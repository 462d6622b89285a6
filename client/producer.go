package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tierd/tierd/tiers"
)

// QueuePolicy is what Send does when the Producer's queue is full.
type QueuePolicy int

const (
	// Drop refuses the record with ErrQueueFull and counts it in
	// Stats().Dropped; Send never waits. The default.
	Drop QueuePolicy = iota
	// Block makes Send wait until a batch completes and frees room (or
	// the producer closes). Nothing is dropped, but a caller can stall
	// for as long as the server is unreachable.
	Block
)

// ProducerOptions configures a Producer. Zero fields take the defaults
// below.
type ProducerOptions struct {
	// QueueSize bounds the records the producer holds at once: queued,
	// waiting in a batch, or in flight (being sent or retried). It is the
	// producer's whole memory bound. Default 10 000.
	QueueSize int
	// Policy applies when QueueSize records are held. Default Drop.
	Policy QueuePolicy
	// BatchRecords closes a stream's batch at this many records;
	// default 100.
	BatchRecords int
	// BatchBytes closes a batch when its keys, tags and values reach this
	// size (a single larger record still goes alone); default 4 MiB, well
	// under the server's default 64 MiB body limit.
	BatchBytes int
	// Linger is how long a record may wait for its batch to fill;
	// default 10 ms.
	Linger time.Duration
	// Workers is the number of batches in flight at once, across streams
	// (one per stream at a time, which is what keeps a stream's batches in
	// order). Default 4. Give the Client a transport with at least this
	// many idle connections per host (http.DefaultTransport keeps 2).
	Workers int
	// MaxAttempts bounds the tries of one batch; 0 retries until the
	// batch succeeds, fails for a reason retrying cannot fix, or Close
	// gives up. Backpressure (503, 429), gateway errors (502, 504) and
	// network errors are retried; any other 4xx or 5xx fails the batch.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between tries, which
	// doubles from MinBackoff with jitter and honours the server's
	// Retry-After up to MaxBackoff. Defaults 10 ms and 2 s.
	MinBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds one try; default 30 s.
	RequestTimeout time.Duration
	// MaxRecordBytes is the value cap checked before sending, so that one
	// oversized record fails alone instead of failing its whole batch on
	// the server. Set it to the server's max_record_bytes; default 1 MiB.
	MaxRecordBytes int
	// OnBatch, if set, is called once for every batch with its outcome,
	// from a worker goroutine, in order for each stream. It must be quick
	// (the worker waits for it) and must not call Flush or Close.
	OnBatch func(*Outcome)
}

// The defaults of ProducerOptions, in one place.
const (
	DefaultQueueSize      = 10000
	DefaultBatchRecords   = 100
	DefaultBatchBytes     = 4 << 20
	DefaultLinger         = 10 * time.Millisecond
	DefaultWorkers        = 4
	DefaultMinBackoff     = 10 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	// flushSlots bounds the Flush calls whose marker is queued at once, so
	// markers can never take the room a record was promised.
	flushSlots = 16
)

func (o ProducerOptions) withDefaults() ProducerOptions {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.QueueSize, DefaultQueueSize)
	def(&o.BatchRecords, DefaultBatchRecords)
	def(&o.BatchBytes, DefaultBatchBytes)
	def(&o.Workers, DefaultWorkers)
	def(&o.MaxRecordBytes, tiers.DefaultMaxRecordBytes)
	defDur(&o.Linger, DefaultLinger)
	defDur(&o.MinBackoff, DefaultMinBackoff)
	defDur(&o.MaxBackoff, DefaultMaxBackoff)
	defDur(&o.RequestTimeout, DefaultRequestTimeout)
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	return o
}

// Outcome is the result of one batch, as OnBatch receives it.
type Outcome struct {
	Stream string
	// FirstOffset and LastOffset are the offsets the server assigned
	// (Records[i] is at FirstOffset+i); set only when Err is nil.
	FirstOffset, LastOffset uint64
	// Count is len(Records).
	Count int
	// Records are the batch's records in order. The slice and the
	// records are reused once OnBatch returns: copy what you keep.
	Records []Record
	// Attempts is the number of requests made for the batch: 0 for a
	// record refused before sending, more than 1 after retries. A retry
	// of a batch an earlier request stored (its answer lost to a network
	// error or a crash) is answered with that request's offsets and not
	// stored again (Idempotence). A batch reported failed may still have
	// been stored by an attempt whose answer was lost.
	Attempts int
	// Err is nil when the batch is persisted. Otherwise it is why the
	// records were not: an *APIError, a network error after the last
	// attempt, an ErrInvalidRecord for a record refused before sending
	// (which then forms a batch of its own), or ErrProducerClosed when
	// Close gave up.
	Err error
}

// ProducerStats counts records since the producer started. Received =
// Dropped + Persisted + Failed + the records still held.
type ProducerStats struct {
	Received  uint64 // Send calls made before Close (accepted or dropped)
	Persisted uint64 // acknowledged by the server
	Dropped   uint64 // refused by Send with ErrQueueFull
	Failed    uint64 // reported to OnBatch with an error
	Batches   uint64 // batches the server acknowledged
	Retries   uint64 // requests repeated after a retryable error
	Pending   uint64 // held now: queued, batched or in flight
	// LossRate is (Dropped + Failed) / Received; 0 before any Send.
	LossRate float64
}

// Errors of Send, Flush and Close.
var (
	ErrQueueFull      = errors.New("client: producer queue full, record dropped")
	ErrProducerClosed = errors.New("client: producer closed")
)

// Producer sends records to tierd in the background: Send only enqueues,
// workers batch records per stream and append each batch with retries. It
// is safe for concurrent use. Records of one stream are stored in the
// order their Sends returned (for Sends from different goroutines, in the
// order they reached the queue); each batch is atomic.
type Producer struct {
	// Send's fields, apart from those the workers write.
	held     atomic.Int64 // records accepted and not yet resolved
	capacity int64
	closed   atomic.Bool
	in       chan entry
	_        [64]byte

	dropped   atomic.Uint64
	persisted atomic.Uint64
	failed    atomic.Uint64
	batches   atomic.Uint64
	retries   atomic.Uint64

	c    *Client
	opts ProducerOptions
	id   string // the producer ID every batch carries (Idempotence)

	// room is where Sends wait under the Block policy.
	room    sync.Mutex
	roomC   *sync.Cond
	waiters atomic.Int32

	flushSem chan struct{}
	work     chan *job
	done     chan *job
	quit     chan struct{} // closed by Close to stop the dispatcher
	finished chan struct{} // closed when Close has stopped everything
	closeErr error         // Close's result, set before finished closes
	ctx      context.Context
	cancel   context.CancelFunc // aborts retries when Close gives up
	wg       sync.WaitGroup
}

// entry is one element of the queue: a record, or a Flush marker.
type entry struct {
	stream string
	rec    Record
	flush  *flushReq
}

// NewProducer starts a producer sending through c; Close stops it.
func NewProducer(c *Client, opts ProducerOptions) *Producer {
	opts = opts.withDefaults()
	p := &Producer{
		capacity: int64(opts.QueueSize),
		// Every held record fits with room for the Flush markers, so the
		// channel send in Send never waits.
		in:       make(chan entry, opts.QueueSize+flushSlots),
		c:        c,
		opts:     opts,
		id:       NewProducerID(),
		flushSem: make(chan struct{}, flushSlots),
		work:     make(chan *job),
		done:     make(chan *job, opts.Workers),
		quit:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	p.roomC = sync.NewCond(&p.room)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	d := newDispatcher(p)
	p.wg.Add(1 + opts.Workers)
	go func() { defer p.wg.Done(); d.run() }()
	for range opts.Workers {
		go func() { defer p.wg.Done(); p.worker() }()
	}
	return p
}

// Send queues rec for stream and returns at once. When the queue is full
// the policy applies: Drop returns ErrQueueFull, Block waits for room.
// After Close it returns ErrProducerClosed. The producer keeps rec's
// slices until the batch's outcome is reported, so do not modify them
// after Send. Records with errors the server would refuse are reported
// through OnBatch, not here: Send does no validation.
func (p *Producer) Send(stream string, rec Record) error {
	if p.opts.Policy != Block && p.held.Load() >= p.capacity {
		// Full under drop: refuse with a read of the shared count rather
		// than a write to it (and a second to undo it), so that callers
		// hammering a full queue do not fight over its cache line.
		p.dropped.Add(1)
		return ErrQueueFull
	}
	if p.held.Add(1) > p.capacity {
		if err := p.full(); err != nil {
			return err
		}
	}
	if p.closed.Load() {
		p.release(1)
		return ErrProducerClosed
	}
	p.in <- entry{stream: stream, rec: rec}
	return nil
}

// full is Send's slow path: the count it took is over capacity.
func (p *Producer) full() error {
	p.held.Add(-1)
	if p.opts.Policy != Block {
		p.dropped.Add(1)
		return ErrQueueFull
	}
	p.room.Lock()
	defer p.room.Unlock()
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	for {
		if p.closed.Load() {
			return ErrProducerClosed
		}
		if p.held.Add(1) <= p.capacity {
			return nil
		}
		p.held.Add(-1)
		p.roomC.Wait()
	}
}

// release returns n records' room and wakes Sends waiting for it. The
// waiter count is read after the room is returned and a waiter registers
// before it takes room, under the lock the broadcast takes: no wakeup is
// lost.
func (p *Producer) release(n int) {
	p.held.Add(-int64(n))
	if p.waiters.Load() > 0 {
		p.room.Lock()
		p.roomC.Broadcast()
		p.room.Unlock()
	}
}

// Stats returns the counters. It is a snapshot taken without stopping the
// producer, so while batches complete the sum may be off by one batch.
func (p *Producer) Stats() ProducerStats {
	s := ProducerStats{
		Persisted: p.persisted.Load(),
		Failed:    p.failed.Load(),
		Dropped:   p.dropped.Load(),
		Batches:   p.batches.Load(),
		Retries:   p.retries.Load(),
		Pending:   uint64(max(p.held.Load(), 0)),
	}
	s.Received = s.Dropped + s.Persisted + s.Failed + s.Pending
	if s.Received > 0 {
		s.LossRate = float64(s.Dropped+s.Failed) / float64(s.Received)
	}
	return s
}

// flushReq is a Flush waiting for the records queued before its marker.
type flushReq struct {
	done      chan struct{}
	remaining int // streams not yet resolved up to their target; dispatcher-owned
}

// Flush sends every record queued before the call without waiting for
// batches to fill, and returns once each has its outcome reported
// (persisted or failed; Stats tells which). Records sent during the Flush
// may or may not be covered. It returns ctx's error if ctx ends first.
func (p *Producer) Flush(ctx context.Context) error {
	if p.closed.Load() {
		return ErrProducerClosed
	}
	return p.flush(ctx)
}

func (p *Producer) flush(ctx context.Context) error {
	req := &flushReq{done: make(chan struct{})}
	select {
	case p.flushSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("client: flush: %w", ctx.Err())
	}
	p.in <- entry{flush: req} // room reserved by the semaphore
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("client: flush: %w", ctx.Err())
	}
}

// Close stops accepting records (Send returns ErrProducerClosed), sends
// everything held and waits for the outcomes, then stops the workers. If
// ctx ends first, Close stops retrying: every record not yet persisted is
// reported to OnBatch as failed with ErrProducerClosed, and Close returns
// ctx's error. Calling Close again waits for the first call to finish.
func (p *Producer) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		select {
		case <-p.finished:
			return p.closeErr
		case <-ctx.Done():
			return fmt.Errorf("client: close: %w", ctx.Err())
		}
	}
	// Wake Sends blocked for room: they see closed and return.
	p.room.Lock()
	p.roomC.Broadcast()
	p.room.Unlock()
	var err error
	if err = p.drain(ctx); err != nil {
		err = fmt.Errorf("client: close: %w", err)
		p.cancel()
		p.drain(context.Background()) // quick now: every try fails at once
	}
	p.cancel()
	close(p.quit)
	p.wg.Wait()
	p.closeErr = err
	close(p.finished)
	return err
}

// drain flushes until nothing is held. A Send that counted its record
// before Close but has not queued it yet is waited for.
func (p *Producer) drain(ctx context.Context) error {
	for {
		if err := p.flush(ctx); err != nil {
			return err
		}
		if p.held.Load() <= 0 {
			return nil
		}
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// job is one batch on its way to the server.
type job struct {
	st   *streamState // dispatcher-owned; the worker reads only stream
	seq  uint64       // the batch's number in its stream, for idempotence
	recs []Record
	out  Outcome
}

// worker sends the batches the dispatcher hands it, one at a time.
func (p *Producer) worker() {
	var (
		enc     tiers.BatchEncoder
		scratch bytes.Buffer
	)
	for j := range p.work {
		p.send(j, &enc, &scratch)
		p.done <- j
	}
}

// send appends one batch, retrying as the options say, and reports it.
// Records that cannot be encoded are reported first, one by one, and the
// rest go as the batch.
func (p *Producer) send(j *job, enc *tiers.BatchEncoder, scratch *bytes.Buffer) {
	enc.Reset()
	good := j.recs[:0]
	for i := range j.recs {
		if err := addRecord(enc, &j.recs[i], scratch, p.opts.MaxRecordBytes); err != nil {
			p.report(j, j.recs[i:i+1], 0, err)
			continue
		}
		good = append(good, j.recs[i])
	}
	if len(good) == 0 {
		return
	}
	body := enc.Finish()
	var (
		res      AppendResult
		err      error
		attempts int
		backoff  = p.opts.MinBackoff
	)
	for {
		if p.ctx.Err() != nil {
			if err != nil {
				err = fmt.Errorf("%w: gave up on the batch after %d attempts (last error: %w)", ErrProducerClosed, attempts, err)
			} else {
				err = fmt.Errorf("%w: the batch was not sent", ErrProducerClosed)
			}
			break
		}
		attempts++
		actx, cancel := context.WithTimeout(p.ctx, p.opts.RequestTimeout)
		res, err = p.c.postBatch(actx, j.st.name, body, Idempotence{ProducerID: p.id, Seq: j.seq})
		cancel()
		if err == nil || !Retryable(err) || (p.opts.MaxAttempts > 0 && attempts >= p.opts.MaxAttempts) {
			break
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		var ae *APIError
		if errors.As(err, &ae) && ae.RetryAfter > wait {
			wait = min(ae.RetryAfter, p.opts.MaxBackoff)
		}
		backoff = min(2*backoff, p.opts.MaxBackoff)
		p.retries.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
		}
	}
	j.out.FirstOffset, j.out.LastOffset = res.FirstOffset, res.LastOffset
	if err == nil && res.Count != len(good) {
		err = fmt.Errorf("%w: the server acknowledged %d records of %d", errUnreadableAck, res.Count, len(good))
	}
	p.report(j, good, attempts, err)
}

// report counts an outcome and hands it to OnBatch.
func (p *Producer) report(j *job, recs []Record, attempts int, err error) {
	if err == nil {
		p.persisted.Add(uint64(len(recs)))
		p.batches.Add(1)
	} else {
		p.failed.Add(uint64(len(recs)))
	}
	if p.opts.OnBatch == nil {
		return
	}
	j.out.Stream, j.out.Records, j.out.Count, j.out.Attempts, j.out.Err = j.st.name, recs, len(recs), attempts, err
	if err != nil {
		j.out.FirstOffset, j.out.LastOffset = 0, 0
	}
	p.opts.OnBatch(&j.out)
	j.out = Outcome{}
}

// Retryable reports whether an append that failed with err may succeed if
// sent again: backpressure and gateway answers (408, 429, 502, 503, 504),
// network errors, and a 2xx whose answer was unreadable from a server that
// echoed the append's Idempotence. Only an append with Idempotence is safe
// to retry after a network error: the server answers a retry of a batch it
// already holds with its offsets. (A server too old for the headers would
// store it twice; one that does not echo them gets no retry after a 2xx.)
func Retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return !errors.Is(err, errUnreadableAck)
}

// streamState is the dispatcher's view of one stream with records held.
type streamState struct {
	name     string
	gen      uint64   // bumped on reuse, so stale linger entries are ignored
	pending  []Record // pending[head:] wait for a batch, oldest first
	head     int
	bytes    int       // size of pending[head:] as BatchBytes counts it
	since    time.Time // when the oldest pending record arrived (or earlier)
	state    int       // idle, ready or busy
	accepted uint64    // records ever queued for the stream
	sent     uint64    // records ever cut into a batch
	resolved uint64    // records ever reported
	flushTo  uint64    // records up to this count go without lingering
	waiters  []flushWait
}

const (
	idle  = iota // no batch in flight or queued for a worker
	ready        // in the ready queue
	busy         // its batch is prepared or in flight
)

type flushWait struct {
	req    *flushReq
	target uint64
}

func (s *streamState) queued() int { return len(s.pending) - s.head }

// recordSize is what a record counts towards BatchBytes.
func recordSize(r *Record) int {
	n := 16 + len(r.Key) + len(r.Value) + len(r.ValueB64)
	for _, t := range r.Tags {
		n += 1 + len(t)
	}
	return n
}
