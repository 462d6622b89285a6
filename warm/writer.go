package warm

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"time"

	"github.com/tierd/tierd/internal/vfs"
	"github.com/tierd/tierd/tiers"
)

// Writer writes one segment file. Records go to a temp file in the stream's
// directory; only Commit makes the file visible, so a crash at any point
// before Commit's rename leaves no .seg file. A Writer is not safe for
// concurrent use.
type Writer struct {
	s      *Store
	stream string
	base   uint64
	tmp    string
	f      vfs.File
	bw     *bufio.Writer

	next     uint64 // offset the next Append must carry
	count    uint64
	pos      int64 // file position of the next frame
	minTS    int64
	maxTS    int64
	blocks   []blockEntry
	keys     []uint64 // key hashes for the filter
	digester *tiers.Digester
	buf      []byte

	synced int64 // file bytes handed to writeback (bytesPerSync)

	sealedAt time.Time // kept in the footer; zero: unknown

	err  error // sticky: after a failed write the file is unusable
	done bool
}

// bytesPerSync is how much a Writer lets accumulate in the page cache before
// it starts writeback of it (sync_file_range, as RocksDB's bytes_per_sync).
// Without it a 64 MiB segment reaches the disk in one burst at Commit's
// fsync and the WAL's fsyncs, on the same disk, queue behind it.
const bytesPerSync = 1 << 20

// Create starts writing the segment of stream whose first record has offset
// base. The caller must end it with Commit or Abort (deferring Abort after a
// successful Commit is harmless).
func (s *Store) Create(stream string, base uint64) (*Writer, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return nil, fmt.Errorf("warm: create: %w", err)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("warm: create: %w", tiers.ErrClosed)
	}
	if err := s.ensureStreamDir(stream); err != nil {
		return nil, fmt.Errorf("warm: create %s/%d: %w", stream, base, err)
	}
	// Committed segments are immutable; let operators' tools read them.
	f, err := s.fs.CreateTemp(filepath.Join(s.dir, stream), fmt.Sprintf("%020d%s*", base, tempMarker), 0o644)
	if err != nil {
		return nil, fmt.Errorf("warm: create %s/%d: %w", stream, base, err)
	}
	w := &Writer{
		s: s, stream: stream, base: base, tmp: f.Name(), f: f,
		bw:       bufio.NewWriterSize(f, 256<<10),
		next:     base,
		digester: tiers.NewDigester(),
	}
	hdr := appendHeader(nil, stream, base)
	if _, err := w.bw.Write(hdr); err != nil {
		w.Abort()
		return nil, fmt.Errorf("warm: create %s/%d: %w", stream, base, err)
	}
	w.pos = int64(len(hdr))
	return w, nil
}

// Append adds the next record. Offsets must be dense and start at the base:
// anything else is ErrOutOfOrder and leaves the writer usable. A write
// error is sticky; the caller should Abort.
func (w *Writer) Append(r *tiers.Record) error {
	if w.done {
		return ErrWriterDone
	}
	if w.err != nil {
		return w.err
	}
	if r.Offset != w.next || (w.count > 0 && w.next == 0) {
		return fmt.Errorf("%w: got offset %d, want %d", ErrOutOfOrder, r.Offset, w.next)
	}
	if n := tiers.EncodedLen(r); n > maxPayloadLen {
		return fmt.Errorf("warm: append offset %d: %w: %d encoded bytes, max %d", r.Offset, tiers.ErrRecordTooLarge, n, maxPayloadLen)
	}
	w.buf = append(w.buf[:0], make([]byte, frameHeaderLen)...)
	w.buf = tiers.AppendRecord(w.buf, r)
	payload := w.buf[frameHeaderLen:]
	lenField := uint32(len(payload)) // ≤ maxPayloadLen: bit 31 is free
	if r.JSON {
		lenField |= frameJSON
	}
	binary.LittleEndian.PutUint32(w.buf, lenField)
	binary.LittleEndian.PutUint32(w.buf[4:], frameCRC(w.buf[:4], payload))
	if _, err := w.bw.Write(w.buf); err != nil {
		w.err = fmt.Errorf("warm: write %s: %w", w.tmp, err)
		return w.err
	}

	if w.count%uint64(w.s.opts.IndexInterval) == 0 {
		w.blocks = append(w.blocks, blockEntry{first: r.Offset, pos: uint64(w.pos), minTS: r.TS, maxTS: r.TS})
	}
	b := &w.blocks[len(w.blocks)-1]
	b.minTS, b.maxTS = min(b.minTS, r.TS), max(b.maxTS, r.TS)
	if w.count == 0 {
		w.minTS, w.maxTS = r.TS, r.TS
	}
	w.minTS, w.maxTS = min(w.minTS, r.TS), max(w.maxTS, r.TS)
	w.digester.AddEncoded(payload)
	w.keys = append(w.keys, keyHash(r.Key))
	w.pos += int64(len(w.buf))
	w.count++
	w.next++
	if w.pos-w.synced >= bytesPerSync {
		w.startWriteback()
	}
	return nil
}

// SetSealedAt records when the segment was sealed, kept in the footer so
// that a catalog rebuilt from the file keeps the segment's age (its
// retention clock). A time before 1970 or beyond 2262 is stored as unknown.
func (w *Writer) SetSealedAt(t time.Time) { w.sealedAt = t }

// startWriteback flushes the buffer and asks the kernel to start writing
// what it holds of the file, without waiting. It is only a hint: durability
// still comes from Commit's fsync, so errors are ignored here.
func (w *Writer) startWriteback() {
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("warm: write %s: %w", w.tmp, err)
		return
	}
	vfs.StartWriteback(w.f, w.synced, w.pos-w.synced)
	w.synced = w.pos
}

// Commit writes the footer, fsyncs the file, renames it into place and
// fsyncs the directory; the segment is durable and visible when it returns
// nil. It replaces an existing file of the same segment (readers holding
// the old one keep their bytes). Meta.SealedAt is what SetSealedAt said.
// On error nothing is committed (unless the final directory fsync failed
// after the rename) and the caller should Abort.
func (w *Writer) Commit(ctx context.Context) (tiers.SegmentMeta, error) {
	if w.done {
		return tiers.SegmentMeta{}, ErrWriterDone
	}
	if w.err != nil {
		return tiers.SegmentMeta{}, w.err
	}
	if w.count == 0 {
		return tiers.SegmentMeta{}, fmt.Errorf("warm: commit %s/%d: %w", w.stream, w.base, ErrEmptySegment)
	}
	if err := ctx.Err(); err != nil {
		return tiers.SegmentMeta{}, fmt.Errorf("warm: commit %s/%d: %w", w.stream, w.base, err)
	}
	if w.s.isClosed() {
		return tiers.SegmentMeta{}, fmt.Errorf("warm: commit %s/%d: %w", w.stream, w.base, tiers.ErrClosed)
	}
	bloom := buildBloom(w.keys)
	if _, ok := footerLen(len(w.blocks), len(bloom)); !ok {
		return tiers.SegmentMeta{}, fmt.Errorf("warm: commit %s/%d: footer of %d blocks exceeds the format's 4 GiB limit", w.stream, w.base, len(w.blocks))
	}
	meta := tiers.SegmentMeta{
		Stream: w.stream, Base: w.base, Last: w.next - 1, Count: w.count,
		MinTS: w.minTS, MaxTS: w.maxTS, Digest: w.digester.Sum(),
		Placements: tiers.Of(tiers.Warm),
	}
	f := footer{
		base: meta.Base, last: meta.Last, count: meta.Count,
		minTS: meta.MinTS, maxTS: meta.MaxTS, digest: meta.Digest,
		interval: uint32(w.s.opts.IndexInterval), bloomK: bloomK,
		sealedAt: sealedNanos(w.sealedAt),
	}
	meta.SealedAt = sealedTime(f.sealedAt)
	tail := appendFooter(nil, &f, w.blocks, bloom)
	meta.Bytes = w.pos + int64(len(tail))
	if err := w.fail(w.write(tail)); err != nil {
		return tiers.SegmentMeta{}, err
	}
	if err := w.fail(w.bw.Flush()); err != nil {
		return tiers.SegmentMeta{}, err
	}
	start := time.Now()
	err := w.f.Sync()
	w.s.met.fsync.WithLabelValues("file").Observe(time.Since(start).Seconds())
	if err := w.fail(err); err != nil {
		return tiers.SegmentMeta{}, err
	}
	err = w.f.Close()
	w.f = nil
	if err := w.fail(err); err != nil {
		return tiers.SegmentMeta{}, err
	}
	// The rename is the commit point, so a cancellation that arrived during
	// the fsync still stops the segment from becoming visible.
	if err := w.fail(ctx.Err()); err != nil {
		return tiers.SegmentMeta{}, err
	}
	final := w.s.Path(w.stream, w.base)
	if err := w.fail(w.s.fs.Rename(w.tmp, final)); err != nil {
		return tiers.SegmentMeta{}, err
	}
	w.done = true
	w.s.invalidate(segKey{w.stream, w.base})
	if err := w.s.syncDir(filepath.Dir(final)); err != nil {
		return tiers.SegmentMeta{}, fmt.Errorf("warm: commit %s/%d: fsync directory: %w", w.stream, w.base, err)
	}
	w.s.met.commits.Inc()
	w.s.met.commitBytes.Add(float64(meta.Bytes))
	return meta, nil
}

// sealedNanos is the footer's sealed_at of t: Unix ns, 0 for unknown (the
// zero time, or one Unix ns cannot hold).
func sealedNanos(t time.Time) int64 {
	if t.IsZero() || t.Before(time.Unix(0, 1)) || t.After(time.Unix(0, math.MaxInt64)) {
		return 0
	}
	return t.UnixNano()
}

// sealedTime is the inverse of sealedNanos, in UTC.
func sealedTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (w *Writer) write(b []byte) error {
	_, err := w.bw.Write(b)
	return err
}

// fail makes err sticky, naming the temp file.
func (w *Writer) fail(err error) error {
	if err != nil {
		w.err = fmt.Errorf("warm: commit %s/%d (%s): %w", w.stream, w.base, w.tmp, err)
	}
	return w.err
}

// Abort discards the segment: it closes and removes the temp file. After a
// successful Commit, or a second time, it does nothing.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	var errs []error
	if w.f != nil {
		errs = append(errs, w.f.Close())
		w.f = nil
	}
	if err := w.s.fs.Remove(w.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("warm: abort %s/%d: %w", w.stream, w.base, err)
	}
	return nil
}
