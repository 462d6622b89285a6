package client

import "time"

// dispatcher is the Producer's single goroutine that owns all batching
// state: it drains the queue into per-stream pending lists, cuts batches
// when they are full, old or flushed, hands them to workers one per stream
// at a time, and settles them when a worker is done. Nothing here is
// shared, so nothing here is locked.
type dispatcher struct {
	p       *Producer
	streams map[string]*streamState
	ready   []*streamState // FIFO of streams with a batch to cut
	rhead   int
	next    *job // cut and waiting for a free worker
	lingers lingerHeap
	timer   *time.Timer
	timerAt time.Time // zero when the timer is not armed
	free    []*streamState
	jobs    []*job
	// seq numbers the batches for idempotence. One counter for all
	// streams: the numbers of a stream's batches still increase (the
	// server allows gaps), and no state outlives a recycled stream.
	seq uint64
}

// drainBurst is how many queued entries the dispatcher takes per wakeup
// before it looks at the other channels again.
const drainBurst = 512

// maxFree bounds the recycled stream states and jobs kept for reuse.
const maxFree = 1024

func newDispatcher(p *Producer) *dispatcher {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &dispatcher{p: p, streams: map[string]*streamState{}, timer: t}
}

func (d *dispatcher) run() {
	p := d.p
	defer close(p.work)
	defer d.timer.Stop()
	for {
		if d.next == nil {
			d.prepare()
		}
		var work chan *job
		if d.next != nil {
			work = p.work
		}
		select {
		case e := <-p.in:
			d.take(e)
			for range drainBurst {
				select {
				case e := <-p.in:
					d.take(e)
					continue
				default:
				}
				break
			}
		case j := <-p.done:
			d.settle(j)
		case work <- d.next:
			d.next = nil
		case now := <-d.timer.C:
			d.timerAt = time.Time{}
			d.expire(now)
		case <-p.quit:
			return
		}
	}
}

// take handles one queue entry.
func (d *dispatcher) take(e entry) {
	if e.flush != nil {
		d.mark(e.flush)
		<-d.p.flushSem
		return
	}
	st := d.streams[e.stream]
	if st == nil {
		st = d.newStream(e.stream)
	}
	if st.queued() == 0 {
		st.since = time.Now()
		d.linger(st, st.since.Add(d.p.opts.Linger))
	}
	st.pending = append(st.pending, e.rec)
	st.bytes += recordSize(&e.rec)
	st.accepted++
	d.consider(st, time.Time{})
}

func (d *dispatcher) newStream(name string) *streamState {
	var st *streamState
	if n := len(d.free); n > 0 {
		st, d.free = d.free[n-1], d.free[:n-1]
		*st = streamState{name: name, gen: st.gen + 1, pending: st.pending[:0]}
	} else {
		st = &streamState{name: name}
	}
	d.streams[name] = st
	return st
}

// consider queues st for a batch if it is idle and its records should go
// now: a full batch, the oldest record waited Linger (checked when now is
// given), a Flush covering them, or a closing producer.
func (d *dispatcher) consider(st *streamState, now time.Time) {
	if st.state != idle || st.queued() == 0 {
		return
	}
	o := &d.p.opts
	if st.queued() >= o.BatchRecords || st.bytes >= o.BatchBytes || st.sent < st.flushTo ||
		(!now.IsZero() && now.Sub(st.since) >= o.Linger) || d.p.closed.Load() {
		st.state = ready
		d.ready = append(d.ready, st)
	}
}

// prepare cuts the next batch from the first ready stream.
func (d *dispatcher) prepare() {
	if d.rhead == len(d.ready) {
		return
	}
	st := d.ready[d.rhead]
	d.ready[d.rhead] = nil
	d.rhead++
	if d.rhead == len(d.ready) {
		d.ready, d.rhead = d.ready[:0], 0
	}
	o := &d.p.opts
	j := d.newJob()
	size := 0
	n := 0
	for _, r := range st.pending[st.head:] {
		rs := recordSize(&r)
		if n == o.BatchRecords || (n > 0 && size+rs > o.BatchBytes) {
			break
		}
		size += rs
		n++
	}
	j.st = st
	d.seq++
	j.seq = d.seq
	j.recs = append(j.recs, st.pending[st.head:st.head+n]...)
	clear(st.pending[st.head : st.head+n]) // the job holds them now
	st.head += n
	st.bytes -= size
	st.sent += uint64(n)
	st.state = busy
	switch q := st.queued(); {
	case q == 0:
		st.pending, st.head = st.pending[:0], 0
	case st.head > q:
		// Slide the rest to the front once it is shorter than the gap,
		// so the list neither creeps along its array nor is copied per
		// batch.
		copy(st.pending, st.pending[st.head:])
		clear(st.pending[q:])
		st.pending, st.head = st.pending[:q], 0
	}
	d.next = j
}

func (d *dispatcher) newJob() *job {
	if n := len(d.jobs); n > 0 {
		j := d.jobs[n-1]
		d.jobs = d.jobs[:n-1]
		return j
	}
	return &job{recs: make([]Record, 0, d.p.opts.BatchRecords)}
}

// settle records a finished batch: its records are resolved, their room
// returns to Send, Flushes waiting for them may complete, and the stream's
// next batch may go.
func (d *dispatcher) settle(j *job) {
	st := j.st
	n := len(j.recs)
	clear(j.recs)
	j.recs, j.st = j.recs[:0], nil
	if len(d.jobs) < maxFree {
		d.jobs = append(d.jobs, j)
	}
	st.resolved += uint64(n)
	st.state = idle
	d.p.release(n)
	kept := st.waiters[:0]
	for _, w := range st.waiters {
		if st.resolved < w.target {
			kept = append(kept, w)
			continue
		}
		if w.req.remaining--; w.req.remaining == 0 {
			close(w.req.done)
		}
	}
	clear(st.waiters[len(kept):])
	st.waiters = kept
	if st.queued() > 0 {
		now := time.Now()
		d.consider(st, now)
		if st.state == idle {
			d.linger(st, st.since.Add(d.p.opts.Linger))
		}
		return
	}
	// Nothing held for the stream: forget it, so a producer that has
	// seen millions of streams keeps state only for the active ones.
	delete(d.streams, st.name)
	if len(d.free) < maxFree && cap(st.pending) <= 4*d.p.opts.BatchRecords {
		st.gen++
		d.free = append(d.free, st)
	}
}

// mark registers a Flush: it completes once every stream has resolved
// the records it had accepted by now, and those records go without
// lingering.
func (d *dispatcher) mark(req *flushReq) {
	for _, st := range d.streams {
		if st.resolved == st.accepted {
			continue
		}
		req.remaining++
		st.waiters = append(st.waiters, flushWait{req: req, target: st.accepted})
		st.flushTo = max(st.flushTo, st.accepted)
		d.consider(st, time.Time{})
	}
	if req.remaining == 0 {
		close(req.done)
	}
}

// linger schedules a look at st at the given time.
func (d *dispatcher) linger(st *streamState, at time.Time) {
	d.lingers.push(lingerItem{st: st, gen: st.gen, at: at})
	if d.timerAt.IsZero() || at.Before(d.timerAt) {
		d.timerAt = at
		d.timer.Reset(time.Until(at))
	}
}

// expire sends the streams whose oldest record has lingered long enough.
func (d *dispatcher) expire(now time.Time) {
	for len(d.lingers) > 0 && !d.lingers[0].at.After(now) {
		it := d.lingers.pop()
		if it.st.gen == it.gen && d.streams[it.st.name] == it.st {
			d.consider(it.st, now)
		}
	}
	if len(d.lingers) > 0 {
		d.timerAt = d.lingers[0].at
		d.timer.Reset(time.Until(d.timerAt))
	}
}

// lingerItem is a stream to look at when its oldest record is due.
type lingerItem struct {
	st  *streamState
	gen uint64
	at  time.Time
}

// lingerHeap is a binary min-heap of lingerItems by time. It is written
// out rather than used through container/heap, whose interface boxes every
// pushed item in an allocation.
type lingerHeap []lingerItem

func (h *lingerHeap) push(it lingerItem) {
	*h = append(*h, it)
	a := *h
	for i := len(a) - 1; i > 0; {
		parent := (i - 1) / 2
		if !a[i].at.Before(a[parent].at) {
			break
		}
		a[i], a[parent] = a[parent], a[i]
		i = parent
	}
}

func (h *lingerHeap) pop() lingerItem {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a[last] = lingerItem{}
	a = a[:last]
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(a) && a[l].at.Before(a[least].at) {
			least = l
		}
		if r < len(a) && a[r].at.Before(a[least].at) {
			least = r
		}
		if least == i {
			break
		}
		a[i], a[least] = a[least], a[i]
		i = least
	}
	*h = a
	return top
}
