package warm

import (
	"bytes"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"runtime/debug"
	"sync/atomic"

	"github.com/tierd/tierd/tiers"
)

// segment is one mapped file, shared by every Reader of it.
type segment struct {
	layout
	key  segKey
	path string
	data []byte // the read-only mapping; nil once unmapped
	// mapped is set when data is an mmap (vfs.Map of an OS file), clear
	// when it is a heap copy (a file of another vfs.FS): only a mapping's
	// pages are given back, and only a copy is charged by its size.
	mapped bool
	// foot is a heap copy of the file from the footer's start to its end,
	// taken once the footer checked out: reads consult the block table and
	// the key filter there, so that no page of the mapping needs to stay
	// resident between reads (pages.go). footLayout locates the tables in
	// it (its offsets are relative to the footer's start).
	foot       []byte
	footLayout layout
	meta       tiers.SegmentMeta

	// blocksRead counts index blocks whose frames Scan decoded, so tests can
	// see pruning work.
	blocksRead atomic.Int64

	// charge is the resident memory the reader cache counts for it.
	charge int64

	// Guarded by Store.mu.
	refs   int
	cached bool
	elem   *list.Element
}

// parse checks the mapped file's header and footer and fills in the layout
// and meta. A fault while doing so (the file shrank) is a CorruptionError.
func (sg *segment) parse() (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer sg.recoverFault(&err)
	l, err := parseLayout(sg.path, sg.data)
	if err != nil {
		return err
	}
	sg.layout = *l
	sg.foot = bytes.Clone(sg.data[l.footerStart:])
	sg.footLayout = *l
	sg.footLayout.blocksOff -= l.footerStart
	sg.footLayout.bloomOff -= l.footerStart
	sg.meta = tiers.SegmentMeta{
		Stream: l.stream, Base: l.base, Last: l.last, Count: l.count,
		Bytes: int64(len(sg.data)), MinTS: l.minTS, MaxTS: l.maxTS,
		Digest: l.digest, Placements: tiers.Of(tiers.Warm),
		SealedAt: sealedTime(l.sealedAt),
	}
	return nil
}

// recoverFault turns the panic of a memory fault on the mapping (enabled by
// debug.SetPanicOnFault in the caller) into a CorruptionError. Other panics
// are bugs and propagate.
func (sg *segment) recoverFault(err *error) {
	if e := recover(); e != nil {
		if _, ok := e.(interface{ Addr() uintptr }); !ok {
			panic(e)
		}
		*err = &tiers.CorruptionError{Path: sg.path, Offset: -1, Err: fmt.Errorf("%w: %v", ErrFault, e)}
	}
}

func (sg *segment) corrupt(pos int, cause error, format string, args ...any) error {
	return &tiers.CorruptionError{Path: sg.path, Offset: int64(pos), Err: fmt.Errorf("%w: "+format, append([]any{cause}, args...)...)}
}

// frameAt bounds-checks the frame at pos, which must end by end, and returns
// its payload (aliasing the mapping) and the next frame's position. It does
// not check the CRC.
func (sg *segment) frameAt(pos, end int) ([]byte, int, error) {
	if end-pos < frameHeaderLen {
		return nil, 0, sg.corrupt(pos, ErrBadFrame, "frame header runs past byte %d", end)
	}
	n := binary.LittleEndian.Uint32(sg.data[pos:])
	if sg.version >= formatVersion {
		n &^= frameJSON // the JSON hint; in older files the bit is damage
	}
	if n < minPayloadLen || n > maxPayloadLen || int(n) > end-pos-frameHeaderLen {
		return nil, 0, sg.corrupt(pos, ErrBadFrame, "frame length %d does not fit [%d, %d)", n, pos+frameHeaderLen, end)
	}
	next := pos + frameHeaderLen + int(n)
	return sg.data[pos+frameHeaderLen : next : next], next, nil
}

// decodeFrame checks the CRC of the frame at pos and decodes its payload,
// which must hold record want in canonical encoding (so the digest over
// stored payloads equals the digest over the records), with its JSON hint
// (version 3). Value aliases the mapping.
func (sg *segment) decodeFrame(pos int, payload []byte, want uint64) (tiers.Record, error) {
	stored := binary.LittleEndian.Uint32(sg.data[pos+4:])
	if got := frameCRC(sg.data[pos:pos+4], payload); got != stored {
		return tiers.Record{}, sg.corrupt(pos, ErrChecksum, "frame of offset %d: crc %08x, computed %08x", want, stored, got)
	}
	rec, n, err := tiers.DecodeRecord(payload)
	if err != nil {
		return tiers.Record{}, sg.corrupt(pos, ErrBadFrame, "offset %d: %w", want, err)
	}
	if n != len(payload) || tiers.EncodedLen(&rec) != n {
		return tiers.Record{}, sg.corrupt(pos, ErrBadFrame, "offset %d: %d-byte payload is not one canonical record", want, len(payload))
	}
	if rec.Offset != want {
		return tiers.Record{}, sg.corrupt(pos, ErrBadFrame, "frame holds offset %d, want %d", rec.Offset, want)
	}
	rec.JSON = sg.version >= formatVersion && binary.LittleEndian.Uint32(sg.data[pos:])&frameJSON != 0
	return rec, nil
}

// skipTo walks block b from its start to the frame of offset want without
// checksumming the frames it passes: it checks only each frame's bounds and
// the offset its payload starts with, which catches a chain gone astray.
// It returns the frame's position, the block's end, and the position of the
// frame before it (-1 if none) so a later failure can be blamed correctly.
func (sg *segment) skipTo(b int, want uint64) (pos, end, prev int, err error) {
	e := sg.blockAt(b)
	pos, end, prev = int(e.pos), sg.blockEndAt(b), -1
	for o := e.first; o < want; o++ {
		payload, next, err := sg.frameAt(pos, end)
		if err == nil {
			if v, n := binary.Uvarint(payload); n <= 0 || v != o {
				err = sg.corrupt(pos, ErrBadFrame, "frame holds offset %d, want %d", v, o)
			}
		}
		if err != nil {
			return 0, 0, 0, sg.blame(prev, err)
		}
		prev, pos = pos, next
	}
	return pos, end, prev, nil
}

// blame attributes err, found at one frame, to the frame before it when that
// frame fails its CRC: a damaged length sends the walk to a bogus position,
// and the error must name the frame that is actually damaged.
func (sg *segment) blame(prev int, err error) error {
	if prev < 0 {
		return err
	}
	payload, _, ferr := sg.frameAt(prev, len(sg.data))
	if ferr != nil {
		return err
	}
	stored := binary.LittleEndian.Uint32(sg.data[prev+4:])
	if got := frameCRC(sg.data[prev:prev+4], payload); got != stored {
		return sg.corrupt(prev, ErrChecksum, "frame crc %08x, computed %08x", stored, got)
	}
	return err
}

// readBlock decodes block b's records with offsets in [from, to] that match
// q, appending copies (owning their bytes) to out. It returns the position
// up to which it read the file (to give those pages back). On damage it
// returns the records decoded before it along with the error.
func (sg *segment) readBlock(b int, from, to uint64, q *tiers.Query, out []tiers.Record) (_ []tiers.Record, hi int, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer sg.recoverFault(&err)
	sg.blocksRead.Add(1)
	e := sg.blockAt(b)
	hi = int(e.pos)
	from = max(from, e.first)
	to = min(to, sg.blockLast(e))
	if from > to {
		return out, hi, nil
	}
	pos, end, prev, err := sg.skipTo(b, from)
	hi = end // a failed walk may have read up to the block's end
	if err != nil {
		return out, hi, err
	}
	for i := uint64(0); i <= to-from; i++ {
		o := from + i
		payload, next, err := sg.frameAt(pos, end)
		var rec tiers.Record
		if err == nil {
			rec, err = sg.decodeFrame(pos, payload, o)
		}
		if err != nil {
			return out, hi, sg.blame(prev, err)
		}
		if q.Match(&rec) {
			rec.Value = bytes.Clone(rec.Value)
			out = append(out, rec)
		}
		prev, pos = pos, next
	}
	return out, pos, nil
}

// Reader is one holder's handle on a mapped segment. Its methods are safe
// for concurrent use until Release; using it after Release returns
// ErrReleased rather than touching unmapped memory.
type Reader struct {
	s        *Store
	sg       *segment
	released atomic.Bool
}

// Release gives up this handle. The mapping goes away when the last holder
// releases it and the store no longer caches it (the file was removed or
// replaced, evicted, or the store closed). A second Release is a no-op.
func (r *Reader) Release() {
	if r.released.Swap(true) {
		return
	}
	r.s.release(r.sg)
}

// Meta describes the segment as its footer records it. Bytes is the file
// size; SealedAt is the footer's seal time (format version 2), zero when the
// file does not know it (version 1).
func (r *Reader) Meta() tiers.SegmentMeta { return r.sg.meta }

// MayContainKey reports whether a record with key may be in the segment:
// false is certain, true may be a false positive (about 1%). Records without
// a key are filed under "". A released reader answers true.
func (r *Reader) MayContainKey(key string) (ok bool) {
	if r.released.Load() {
		return true
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil { // a fault: the filter is unreadable, so be safe
			ok = true
		}
	}()
	sg := r.sg
	off := sg.footLayout.bloomOff
	return bloomMayContain(sg.foot[off:off+int(sg.bloomWords)*8], sg.bloomK, key)
}

// Get returns the record at offset, with a Value the caller owns. It walks
// at most one index block from the sparse index and checksums the frame it
// returns.
func (r *Reader) Get(offset uint64) (rec tiers.Record, err error) {
	if r.released.Load() {
		return tiers.Record{}, ErrReleased
	}
	sg := r.sg
	if offset < sg.base || offset > sg.last {
		return tiers.Record{}, fmt.Errorf("%w: %d not in [%d, %d] of %s", ErrOffsetOutOfRange, offset, sg.base, sg.last, sg.path)
	}
	defer r.s.countCorruption("get", &err)
	t := touched{s: r.s, sg: sg}
	defer t.flush() // after the fault handling below: it takes the store's lock
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer sg.recoverFault(&err)
	b := int((offset - sg.base) / uint64(sg.interval))
	t.add(int(sg.blockAt(b).pos), sg.blockEndAt(b)) // given back on return
	pos, end, prev, err := sg.skipTo(b, offset)
	if err != nil {
		return tiers.Record{}, err
	}
	payload, _, err := sg.frameAt(pos, end)
	if err == nil {
		rec, err = sg.decodeFrame(pos, payload, offset)
	}
	if err != nil {
		return tiers.Record{}, sg.blame(prev, err)
	}
	rec.Value = bytes.Clone(rec.Value)
	return rec, nil
}

// Scan yields the records matching q in offset order. It starts at q.From
// through the sparse index, skips index blocks whose ts range misses
// [q.Since, q.Until), and yields nothing when the key filter rules out
// q.Key. q.Limit is ignored: the caller stops iterating. Yielded records own
// their bytes and stay valid after Release. Damage is yielded as a
// *tiers.CorruptionError after the records before it, and ends the scan.
func (r *Reader) Scan(q tiers.Query) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		sg := r.sg
		if r.released.Load() {
			yield(tiers.Record{}, ErrReleased)
			return
		}
		if !q.OverlapsOffsets(sg.base, sg.last) || !q.OverlapsTime(sg.minTS, sg.maxTS) {
			return
		}
		if q.HasKey && !r.MayContainKey(q.Key) {
			return
		}
		from, to := max(q.From, sg.base), min(q.To, sg.last)
		var buf []tiers.Record
		// The pages read are given back as the scan goes and when it ends,
		// however it ends (the caller may stop iterating).
		t := touched{s: r.s, sg: sg}
		defer t.flush()
		for b := int((from - sg.base) / uint64(sg.interval)); b <= int((to-sg.base)/uint64(sg.interval)); b++ {
			if r.released.Load() {
				yield(tiers.Record{}, ErrReleased)
				return
			}
			buf = buf[:0]
			e, err := sg.blockSafe(b)
			if err == nil {
				if !q.OverlapsTime(e.minTS, e.maxTS) {
					continue
				}
				var hi int
				buf, hi, err = sg.readBlock(b, from, to, &q, buf)
				t.add(int(e.pos), hi)
			}
			for _, rec := range buf {
				if !yield(rec, nil) {
					return
				}
			}
			if err != nil {
				r.s.countCorruption("scan", &err)
				yield(tiers.Record{}, err)
				return
			}
		}
	}
}

// blockLast is the offset of block e's last record (written so that a base
// near the top of the offset space cannot overflow).
func (sg *segment) blockLast(e blockEntry) uint64 {
	return e.first + min(uint64(sg.interval)-1, sg.last-e.first)
}

// blockSafe reads a block table entry. (The table is read from the heap
// copy of the footer, so it cannot fault; the error is for symmetry with
// the reads of the mapping.)
func (sg *segment) blockSafe(b int) (blockEntry, error) {
	return sg.blockAt(b), nil
}

// blockAt decodes entry i of the block table from the footer copy.
func (sg *segment) blockAt(i int) blockEntry { return sg.footLayout.block(sg.foot, i) }

// blockEndAt is where block i's frames end: the next block's start, or the
// footer.
func (sg *segment) blockEndAt(i int) int {
	if i+1 < int(sg.blocks) {
		return int(sg.blockAt(i + 1).pos)
	}
	return sg.footerStart
}

// Verify checks the whole file: header and footer checksums and invariants,
// every frame's CRC, encoding and offset, that the index blocks sit where
// the frames are and carry their true ts ranges, that the key filter holds
// every key, and that the records hash to the footer's digest. It reads
// every byte, so it costs a full sequential pass.
func (r *Reader) Verify() (err error) {
	if r.released.Load() {
		return ErrReleased
	}
	sg := r.sg
	defer r.s.countCorruption("verify", &err)
	t := touched{s: r.s, sg: sg} // the frames, given back as the pass goes
	// Header and footer pages go when it ends, after the fault handling
	// below (it takes the store's lock).
	defer r.s.dropPages(sg, 0, len(sg.data))
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer sg.recoverFault(&err)
	if _, err := parseLayout(sg.path, sg.data); err != nil {
		return err
	}
	d := tiers.NewDigester()
	bloom := sg.data[sg.bloomOff : sg.bloomOff+int(sg.bloomWords)*8]
	for b := 0; b < int(sg.blocks); b++ {
		e := sg.block(sg.data, b)
		pos, end := int(e.pos), sg.blockEnd(sg.data, b)
		minTS, maxTS := int64(0), int64(0)
		n := sg.blockLast(e) - e.first + 1
		for i := uint64(0); i < n; i++ {
			o := e.first + i
			payload, next, err := sg.frameAt(pos, end)
			if err != nil {
				return err
			}
			rec, err := sg.decodeFrame(pos, payload, o)
			if err != nil {
				return err
			}
			if o == e.first {
				minTS, maxTS = rec.TS, rec.TS
			}
			minTS, maxTS = min(minTS, rec.TS), max(maxTS, rec.TS)
			if !bloomMayContain(bloom, sg.bloomK, rec.Key) {
				return sg.corrupt(sg.bloomOff, ErrBadFooter, "key filter lacks the key of offset %d", o)
			}
			d.AddEncoded(payload)
			pos = next
		}
		t.add(int(e.pos), end)
		if pos != end {
			return sg.corrupt(pos, ErrBadFrame, "%d stray bytes after the last frame of block %d", end-pos, b)
		}
		if minTS != e.minTS || maxTS != e.maxTS {
			return sg.corrupt(sg.blocksOff+b*blockEntryLen, ErrBadFooter, "block %d ts range [%d, %d], records span [%d, %d]", b, e.minTS, e.maxTS, minTS, maxTS)
		}
	}
	if got := d.Sum(); got != sg.digest {
		return sg.corrupt(sg.footerStart, ErrDigestMismatch, "footer %s, records %s", sg.digest, got)
	}
	return nil
}

// countCorruption counts a CorruptionError in *err by the operation that
// found it.
func (s *Store) countCorruption(op string, err *error) {
	var ce *tiers.CorruptionError
	if *err != nil && errors.As(*err, &ce) {
		s.met.corruptions.WithLabelValues(op).Inc()
	}
}
