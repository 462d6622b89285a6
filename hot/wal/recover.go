package wal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tierd/tierd/tiers"
)

const (
	segmentSuffix = ".wal"
	tmpSuffix     = ".tmp" // a file being created; never holds acknowledged frames
	seqDigits     = 20
)

func segmentName(seq uint64) string { return fmt.Sprintf("%0*d%s", seqDigits, seq, segmentSuffix) }

// parseSegmentName returns the sequence number of a WAL file name.
func parseSegmentName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(base) != seqDigits || strings.Trim(base, "0123456789") != "" {
		return 0, false
	}
	seq, err := strconv.ParseUint(base, 10, 64)
	return seq, err == nil
}

// recover replays every file in sequence order and returns their
// bookkeeping. Only the newest file may have a torn tail: rotation syncs a
// file before the next one exists, so damage anywhere else is corruption.
func (w *WAL) recover(ctx context.Context, replay func(Batch) error) ([]*segment, error) {
	entries, err := w.opts.FS.ReadDir(w.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if base, ok := strings.CutSuffix(name, tmpSuffix); ok {
			if _, ok := parseSegmentName(base); ok {
				// A crash during createSegment: the file never got its
				// final name, so nothing was written to it.
				if err := w.opts.FS.Remove(filepath.Join(w.opts.Dir, name)); err != nil {
					return nil, fmt.Errorf("wal: remove leftover %s: %w", name, err)
				}
				w.log.Info("wal: removed leftover temporary file", "file", name)
			}
			continue
		}
		if seq, ok := parseSegmentName(name); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			return nil, fmt.Errorf("wal: %w", &tiers.CorruptionError{
				Path:   filepath.Join(w.opts.Dir, segmentName(seqs[i-1]+1)),
				Offset: -1,
				Err:    fmt.Errorf("%w: %s is followed by %s", ErrMissingFile, segmentName(seqs[i-1]), segmentName(seqs[i])),
			})
		}
	}
	segs := make([]*segment, 0, len(seqs)+1)
	var buf []byte
	for i, seq := range seqs {
		var seg *segment
		seg, buf, err = w.replayFile(ctx, seq, i == len(seqs)-1, buf, replay)
		if err != nil {
			return nil, err
		}
		segs = append(segs, seg)
	}
	// What was replayed may have been read from the page cache only: the
	// process died after writing the newest file's frames and before their
	// fsync (or never fsyncs them, under sync interval and none). Make
	// them durable before anything builds on them: memory serves them,
	// their offsets are taken, and the next file's producer snapshot
	// answers retries with them. Older files were synced at rotation.
	if len(segs) > 0 {
		if err := w.syncFile(segs[len(segs)-1].path); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// syncFile fsyncs a file that is not open.
func (w *WAL) syncFile(path string) error {
	f, err := w.opts.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: sync %s: %w", path, err)
	}
	err = w.timedSync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: sync %s: %w", path, err)
	}
	return nil
}

// replayFile validates and replays one file, repairing it if it is the
// newest and its tail is torn. buf is reused across files.
func (w *WAL) replayFile(ctx context.Context, seq uint64, newest bool, buf []byte, replay func(Batch) error) (*segment, []byte, error) {
	path := filepath.Join(w.opts.Dir, segmentName(seq))
	data, err := w.readFile(path, buf)
	if err != nil {
		return nil, buf, fmt.Errorf("wal: read %s: %w", path, err)
	}
	buf = data
	seg := &segment{seq: seq, path: path, size: int64(len(data)), streams: map[string]uint64{}}
	corrupt := func(off int, err error) error {
		return fmt.Errorf("wal: %w", &tiers.CorruptionError{Path: path, Offset: int64(off), Err: err})
	}

	var herr error
	if len(data) < headerLen {
		herr = fmt.Errorf("%w: file is %d bytes, the header %d", ErrTruncated, len(data), headerLen)
	} else {
		herr = checkHeader(data)
	}
	if herr != nil {
		if !newest || !tornHeader(data) {
			return nil, buf, corrupt(0, herr)
		}
		if err := w.rewriteHeader(path); err != nil {
			return nil, buf, err
		}
		w.log.Warn("wal: rewrote torn header of newest file", "file", path, "offset", 0, "dropped_bytes", len(data), "cause", herr)
		w.metrics.tornRepairs.Inc()
		seg.size = headerLen
		return seg, buf, nil
	}

	version := data[4]
	off := headerLen
	for off < len(data) {
		if err := ctx.Err(); err != nil {
			return nil, buf, err
		}
		payload, n, err := framePayload(data[off:])
		if err != nil {
			// A torn write leaves nothing whole after the damage; anything
			// valid there was written later, so the damage is not a tail.
			// The head of a version-2 file (its snapshot) was written and
			// synced before the file got its name: never torn.
			if !newest || validFrameAfter(data, off+1) || version >= 2 && off == headerLen {
				return nil, buf, corrupt(off, err)
			}
			if err := w.truncateFile(path, int64(off)); err != nil {
				return nil, buf, err
			}
			w.log.Warn("wal: truncated torn tail of newest file", "file", path, "offset", off, "dropped_bytes", len(data)-off, "cause", err)
			w.metrics.tornRepairs.Inc()
			seg.size = int64(off)
			break
		}
		if replay != nil {
			// The batch is the caller's to keep: its values alias a copy,
			// not buf.
			payload = bytes.Clone(payload)
		}
		fr, err := decodePayload(payload)
		if err == nil {
			err = checkPlacement(version, off, payload[0])
		}
		if err != nil {
			return nil, buf, corrupt(off, err)
		}
		if fr.IsSnapshot {
			// The table as of this file's first byte: it replaces what the
			// older files said (which it holds, but for expired entries).
			w.producers.table = producerTable{}
			for _, st := range fr.Snapshot {
				w.producers.table[ProducerKey{st.Stream, st.Producer}] = st
			}
			off += n
			continue
		}
		batch := fr.Batch
		w.producers.table.note(&batch)
		seg.note(batch.Stream, batch.Records[len(batch.Records)-1].Offset)
		if replay != nil {
			if err := replay(batch); err != nil {
				return nil, buf, fmt.Errorf("wal: replay %s at byte %d: %w", path, off, err)
			}
		}
		off += n
	}
	return seg, buf, nil
}

// tornHeader reports whether a bad header is what a crash while creating the
// file could leave: a prefix of a header, or zeros. Anything else may be a
// file that is not ours, and is not overwritten.
func tornHeader(data []byte) bool {
	if len(data) < headerLen && bytes.HasPrefix(appendHeader(nil), data) {
		return true
	}
	return !slices.ContainsFunc(data, func(b byte) bool { return b != 0 })
}

// validFrameAfter reports whether a whole, checksummed frame starts anywhere
// in data[from:].
func validFrameAfter(data []byte, from int) bool {
	for p := from; p+frameHeaderLen < len(data); p++ {
		if plausibleFrameAt(data[p:]) {
			return true
		}
	}
	return false
}

// readFile reads a whole file through the OpenFile seam into buf.
func (w *WAL) readFile(path string, buf []byte) ([]byte, error) {
	f, err := w.opts.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return buf, err
	}
	size := int(st.Size())
	buf = slices.Grow(buf[:0], size)[:size]
	if _, err := io.ReadFull(f, buf); err != nil {
		return buf, err
	}
	return buf, nil
}

// truncateFile cuts path at off and syncs it, so that the repair itself
// survives a crash.
func (w *WAL) truncateFile(path string, off int64) error {
	f, err := w.opts.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: repair %s: %w", path, err)
	}
	err = f.Truncate(off)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: repair %s: truncate at %d: %w", path, off, err)
	}
	return nil
}

// rewriteHeader replaces a torn header (the file holds no frames).
func (w *WAL) rewriteHeader(path string) error {
	f, err := w.opts.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: repair %s: %w", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		err = writeFull(f, appendHeader(nil))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: repair %s: rewrite header: %w", path, err)
	}
	return nil
}

// checkPlacement enforces where frame types may appear: a version-1 file
// holds only batches; a version-2 file opens with its snapshot and has no
// other.
func checkPlacement(version byte, off int, typ byte) error {
	switch {
	case version < 2 && typ != typeBatch:
		return fmt.Errorf("%w: frame type %d in a version %d file", ErrMalformed, typ, version)
	case version >= 2 && off == headerLen && typ != typeSnapshot:
		return fmt.Errorf("%w: a version %d file opens with frame type %d, not its producer snapshot", ErrMalformed, version, typ)
	case off > headerLen && typ == typeSnapshot:
		return fmt.Errorf("%w: a producer snapshot after the first frame", ErrMalformed)
	}
	return nil
}
