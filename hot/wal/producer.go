package wal

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/tierd/tierd/tiers"
)

// Idempotent producers. A producer numbers its batches per stream (1, 2,
// 3, …) and the log remembers, per stream and producer, the last batch it
// holds: its sequence number and offsets. A retried batch (the same
// sequence number) is then answered with the offsets it already got instead
// of being appended twice. The table survives checkpoints: every file opens
// with a snapshot frame holding it as of the file's first byte, and replay
// applies the frames after it, so deleting older files loses nothing.

// ProducerState is the last batch of one producer in one stream that the
// log holds.
type ProducerState struct {
	Stream   string
	Producer tiers.ProducerID
	Seq      uint64 // the batch's sequence number, ≥ 1
	First    uint64 // the offset of its first record
	Count    uint64 // its records, ≥ 1
	At       int64  // when it was written, Unix ns (entries expire by it)
}

// ProducerKey is the table's key.
type ProducerKey struct {
	Stream   string
	Producer tiers.ProducerID
}

// minSnapshotEntry is the fewest bytes one snapshot entry takes: stream
// length and 1 byte of name, the ID, three 1-byte uvarints and the time.
const minSnapshotEntry = 1 + 1 + 16 + 3 + 8

// appendSnapshotFrame appends a snapshot frame of states, sorted so that
// the same table always encodes to the same bytes.
func appendSnapshotFrame(dst []byte, states []ProducerState) []byte {
	states = slices.Clone(states)
	slices.SortFunc(states, func(a, b ProducerState) int {
		if c := strings.Compare(a.Stream, b.Stream); c != 0 {
			return c
		}
		return slices.Compare(a.Producer[:], b.Producer[:])
	})
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, typeSnapshot)
	dst = binary.AppendUvarint(dst, uint64(len(states)))
	for _, st := range states {
		dst = binary.AppendUvarint(dst, uint64(len(st.Stream)))
		dst = append(dst, st.Stream...)
		dst = append(dst, st.Producer[:]...)
		dst = binary.AppendUvarint(dst, st.Seq)
		dst = binary.AppendUvarint(dst, st.First)
		dst = binary.AppendUvarint(dst, st.Count)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(st.At))
	}
	payload := dst[start+frameHeaderLen:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst
}

// decodeSnapshot decodes a snapshot body from d.off to the end of d.b:
// entries in strictly increasing (stream, producer) order, each valid.
func decodeSnapshot(d *walker) ([]ProducerState, error) {
	n := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	if n > uint64(len(d.b)-d.off)/minSnapshotEntry {
		return nil, fmt.Errorf("%w: snapshot of %d entries in %d bytes", ErrMalformed, n, len(d.b)-d.off)
	}
	out := make([]ProducerState, 0, n)
	for i := range n {
		var st ProducerState
		nameLen := d.uvarint()
		if d.err == nil && (nameLen == 0 || nameLen > tiers.MaxStreamNameLen) {
			return nil, fmt.Errorf("%w: snapshot entry %d: stream name length %d", ErrMalformed, i, nameLen)
		}
		st.Stream = string(d.bytes(nameLen))
		copy(st.Producer[:], d.bytes(uint64(len(st.Producer))))
		st.Seq, st.First, st.Count = d.uvarint(), d.uvarint(), d.uvarint()
		at := d.bytes(8)
		if d.err != nil {
			return nil, fmt.Errorf("snapshot entry %d: %w", i, d.err)
		}
		st.At = int64(binary.LittleEndian.Uint64(at))
		if st.Producer.IsZero() || st.Seq == 0 || st.Count == 0 || st.First+st.Count-1 < st.First {
			return nil, fmt.Errorf("%w: snapshot entry %d: %+v", ErrMalformed, i, st)
		}
		if i > 0 {
			prev := out[i-1]
			c := strings.Compare(prev.Stream, st.Stream)
			if c > 0 || c == 0 && slices.Compare(prev.Producer[:], st.Producer[:]) >= 0 {
				return nil, fmt.Errorf("%w: snapshot entry %d out of order", ErrMalformed, i)
			}
		}
		out = append(out, st)
	}
	if d.off != len(d.b) {
		return nil, fmt.Errorf("%w: %d bytes after the last snapshot entry", ErrMalformed, len(d.b)-d.off)
	}
	return out, nil
}

// producerTable is the log's durable table: what the frames written so
// far say.
type producerTable map[ProducerKey]ProducerState

// note records a replayed producer batch.
func (t producerTable) note(b *Batch) {
	if b.Producer.IsZero() {
		return
	}
	t[ProducerKey{b.Stream, b.Producer}] = ProducerState{
		Stream: b.Stream, Producer: b.Producer, Seq: b.Seq,
		First: b.Records[0].Offset, Count: uint64(len(b.Records)), At: b.At,
	}
}

// MaxProducers bounds the producer table: past it, the producers idle the
// longest are forgotten first. It keeps a client that makes a new producer
// per request from growing the table (and every file's snapshot) without
// bound.
const MaxProducers = 100_000

// live returns the entries written at or after since, at most MaxProducers
// of them, the newest; it drops the rest from the table.
func (t producerTable) live(since int64) []ProducerState {
	out := make([]ProducerState, 0, len(t))
	for k, st := range t {
		if st.At < since {
			delete(t, k)
			continue
		}
		out = append(out, st)
	}
	if len(out) > MaxProducers {
		slices.SortFunc(out, func(a, b ProducerState) int { return cmp.Compare(b.At, a.At) })
		for _, st := range out[MaxProducers:] {
			delete(t, ProducerKey{st.Stream, st.Producer})
		}
		out = out[:MaxProducers]
	}
	return out
}
