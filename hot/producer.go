package hot

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

// producerEntry is a producer's last batch in a stream. ticket is nil once
// the batch is known durable (seeded from the WAL at open).
type producerEntry struct {
	seq, first, count uint64
	ticket            *wal.Ticket
	at                time.Time
	// prev is the entry this one replaced, while this one's batch may
	// still be refused by the log (then prev is the last batch again).
	prev *producerEntry
}

// answerRetry answers a retry of e's batch once the batch is durable, and
// makes it readable first: the original request, which publishes it, may
// not have come back yet (or gave up waiting). Publishing here is safe: the
// WAL completes tickets in order, so every record of the stream below the
// batch's end is durable too. A non-nil err (an out of sequence batch) is
// returned as is.
func (s *stream) answerRetry(ctx context.Context, e producerEntry, err error) (uint64, bool, error) {
	if err != nil {
		return 0, false, err
	}
	if e.ticket != nil {
		if err := e.ticket.Wait(ctx); err != nil {
			return 0, false, err
		}
	}
	s.publish(e.first + e.count)
	return e.first, true, nil
}

// lastOfLocked checks p against the producer's last batch: ok when p is a
// retry of it (its entry returned), an error when p is older or a retry
// with another record count, neither when p is new. s.mu held.
func (s *stream) lastOfLocked(p tiers.Producer, count int) (producerEntry, bool, error) {
	e := s.mu.producers[p.ID]
	switch {
	case e == nil || p.Seq > e.seq:
		return producerEntry{}, false, nil
	case p.Seq < e.seq:
		return producerEntry{}, false, fmt.Errorf("%w: producer %s sent batch %d to stream %s after batch %d", tiers.ErrProducerSequence, p.ID, p.Seq, s.name, e.seq)
	case uint64(count) != e.count:
		return producerEntry{}, false, fmt.Errorf("%w: producer %s retried batch %d of stream %s with %d records; it had %d", tiers.ErrProducerSequence, p.ID, p.Seq, s.name, count, e.count)
	}
	return *e, true, nil
}

// noteLocked records p's batch as the producer's last. s.mu held.
func (s *stream) noteLocked(p tiers.Producer, first uint64, count int, ticket *wal.Ticket, now time.Time) {
	if s.mu.producers == nil {
		s.mu.producers = map[tiers.ProducerID]*producerEntry{}
	}
	if _, known := s.mu.producers[p.ID]; !known && len(s.mu.producers) >= wal.MaxProducers {
		s.forgetOldestLocked()
	}
	prev := s.mu.producers[p.ID]
	if prev != nil {
		prev.prev = nil // one step back is enough: a producer has one batch in flight
	}
	s.mu.producers[p.ID] = &producerEntry{seq: p.Seq, first: first, count: uint64(count), ticket: ticket, at: now, prev: prev}
}

// revertProducersLocked undoes the entries of batches at or past offset
// from, which the log refused: each producer's last batch is the one
// before again, or unknown if that one was refused too (a producer that
// sent its next batch before the previous was answered). s.mu held.
func (s *stream) revertProducersLocked(from uint64) {
	for id, e := range s.mu.producers {
		if e.first < from {
			continue
		}
		if p := e.prev; p != nil && p.first < from {
			s.mu.producers[id] = p
		} else {
			delete(s.mu.producers, id)
		}
	}
}

// forgetOldestLocked drops the older half of the stream's producers, as the
// WAL's table forgets the least recently logged past wal.MaxProducers
// (amortised: once per half). A producer whose last batch is still in
// flight is kept whatever its age. s.mu held.
func (s *stream) forgetOldestLocked() {
	type aged struct {
		id tiers.ProducerID
		at time.Time
	}
	all := make([]aged, 0, len(s.mu.producers))
	for id, e := range s.mu.producers {
		if e.ticket == nil || e.ticket.Done() {
			all = append(all, aged{id, e.at})
		}
	}
	slices.SortFunc(all, func(a, b aged) int { return a.at.Compare(b.at) })
	for _, a := range all[:len(all)/2] {
		delete(s.mu.producers, a.id)
	}
}

// seedProducers loads the WAL's durable producer table after replay.
func (t *Tier) seedProducers(states []wal.ProducerState) {
	for _, st := range states {
		s := t.mu.streams[st.Stream]
		if s == nil {
			continue // not a stream the tier knows: nothing to deduplicate against
		}
		if s.mu.producers == nil {
			s.mu.producers = map[tiers.ProducerID]*producerEntry{}
		}
		s.mu.producers[st.Producer] = &producerEntry{seq: st.Seq, first: st.First, count: st.Count, at: time.Unix(0, st.At)}
	}
}

// pruneProducersLocked forgets producers idle since before cutoff, as the
// WAL's snapshots do. s.mu held.
func (s *stream) pruneProducersLocked(cutoff time.Time) {
	for id, e := range s.mu.producers {
		if e.at.Before(cutoff) {
			delete(s.mu.producers, id)
		}
	}
}
