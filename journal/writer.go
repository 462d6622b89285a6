package journal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"

	"github.com/tierd/tierd/tiers"
)

// maxRetainedBytes is the largest buffer Reset keeps for the next object:
// one unusually large flush does not pin its memory for good.
const maxRetainedBytes = 64 << 20

// BlockRef locates a block in its object and sums it up: what the catalog
// row of a batch holds besides the offsets PostgreSQL assigns.
type BlockRef struct {
	// Pos and Len are the block's byte range in the object: a ranged GET
	// of bytes [Pos, Pos+Len) is the input of DecodeBlock.
	Pos int64
	Len int64
	// Records is the block's record count.
	Records int
	// MinTS and MaxTS are the smallest and largest record ts.
	MinTS, MaxTS int64
}

// Writer builds one journal object from batches of any streams. The zero
// value is not ready: NewWriter or Reset gives it a header. Reset starts
// the next object reusing the buffer, so a long-lived Writer does not
// allocate in the steady state. A Writer is not safe for concurrent use.
type Writer struct {
	buf      []byte
	blocks   uint32
	chain    uint32
	ready    bool
	finished bool
}

// NewWriter returns a Writer whose first object has header h.
func NewWriter(h Header) (*Writer, error) {
	w := &Writer{}
	if err := w.Reset(h); err != nil {
		return nil, err
	}
	return w, nil
}

// Reset discards the object under construction (whatever Finish returned
// is then overwritten) and starts a new one with header h. On error the
// Writer refuses Add until a Reset succeeds.
func (w *Writer) Reset(h Header) error {
	w.ready, w.finished, w.blocks = false, false, 0
	if err := h.validate(); err != nil {
		return err
	}
	if cap(w.buf) > maxRetainedBytes {
		w.buf = nil
	}
	w.buf = appendHeader(w.buf[:0], &h)
	w.chain = chainCRC(0, w.buf[len(w.buf)-4:])
	w.ready = true
	return nil
}

// Add appends one batch as a block and returns where it is. Offsets of
// recs are ignored (PostgreSQL assigns them after the PUT); p is the zero
// Producer for a plain append. A batch a reader would reject is refused
// with ErrInvalidBatch or ErrBatchTooLarge, and the object is left as it
// was. recs are not retained.
func (w *Writer) Add(stream string, p tiers.Producer, recs []tiers.Record) (BlockRef, error) {
	if !w.ready || w.finished {
		return BlockRef{}, ErrFinished
	}
	if w.blocks == math.MaxUint32 {
		return BlockRef{}, fmt.Errorf("%w: the object already holds %d blocks", ErrBatchTooLarge, w.blocks)
	}
	ref := BlockRef{Pos: int64(len(w.buf)), Records: len(recs)}
	n, err := blockLen(stream, p, recs, &ref)
	if err != nil {
		return BlockRef{}, err
	}
	ref.Len = int64(n)
	start := len(w.buf)
	w.buf = appendBlock(slices.Grow(w.buf, n), uint64(start), stream, p, recs)
	if len(w.buf)-start != n {
		// blockLen and the encoding disagree: a bug, never a wrong block.
		got := len(w.buf) - start
		w.buf = w.buf[:start]
		return BlockRef{}, fmt.Errorf("journal: block of %d bytes, %d computed", got, n)
	}
	w.chain = chainCRC(w.chain, w.buf[len(w.buf)-blockTrailerLen:])
	w.blocks++
	return ref, nil
}

// appendBlock appends the block of a batch that passed blockLen, written
// as being at byte pos of its object.
func appendBlock(dst []byte, pos uint64, stream string, p tiers.Producer, recs []tiers.Record) []byte {
	start := len(dst)
	var flags byte
	if !p.ID.IsZero() {
		flags = flagProducer
	}
	dst = append(dst, blockMagic[:]...)
	dst = append(dst, FormatVersion, flags, 0, 0, 0, 0, 0, 0) // length, filled in below
	dst = binary.LittleEndian.AppendUint64(dst, pos)
	dst = binary.AppendUvarint(dst, uint64(len(stream)))
	dst = append(dst, stream...)
	if flags&flagProducer != 0 {
		dst = append(dst, p.ID[:]...)
		dst = binary.AppendUvarint(dst, p.Seq)
	}
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	for i := range recs {
		r := recs[i] // a copy: the offset field is written as 0
		r.Offset = 0
		dst = tiers.AppendRecord(dst, &r)
	}
	binary.LittleEndian.PutUint32(dst[start+8:], uint32(len(dst)-start+blockTrailerLen))
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// blockLen checks a batch as the decoder will and returns its block's
// length; it fills ref's ts range.
func blockLen(stream string, p tiers.Producer, recs []tiers.Record, ref *BlockRef) (int, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	if p.ID.IsZero() != (p.Seq == 0) {
		return 0, fmt.Errorf("%w: producer %s with sequence %d", ErrInvalidBatch, p.ID, p.Seq)
	}
	if len(recs) == 0 {
		return 0, fmt.Errorf("%w: no records", ErrInvalidBatch)
	}
	if len(recs) > MaxBlockRecords {
		return 0, fmt.Errorf("%w: %d records, at most %d", ErrBatchTooLarge, len(recs), MaxBlockRecords)
	}
	n := blockHeaderLen + uvarintLen(uint64(len(stream))) + len(stream) + uvarintLen(uint64(len(recs))) + blockTrailerLen
	if !p.ID.IsZero() {
		n += len(p.ID) + uvarintLen(p.Seq)
	}
	ref.MinTS, ref.MaxTS = math.MaxInt64, math.MinInt64
	for i := range recs {
		r := &recs[i]
		if err := r.Validate(MaxBlockBytes); err != nil {
			return 0, fmt.Errorf("%w: record %d: %w", ErrInvalidBatch, i, err)
		}
		if len(r.Tags) > maxTags {
			return 0, fmt.Errorf("%w: record %d has %d tags, at most %d", ErrInvalidBatch, i, len(r.Tags), maxTags)
		}
		// The encoding with offset 0, whose uvarint is one byte.
		n += tiers.EncodedLen(r) - uvarintLen(r.Offset) + 1
		if n > MaxBlockBytes {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrBatchTooLarge, MaxBlockBytes)
		}
		ref.MinTS, ref.MaxTS = min(ref.MinTS, r.TS), max(ref.MaxTS, r.TS)
	}
	return n, nil
}

// Len is the size the object will have when finished.
func (w *Writer) Len() int {
	if w.finished {
		return len(w.buf)
	}
	return len(w.buf) + FooterLen
}

// Blocks is the number of blocks added since the last Reset.
func (w *Writer) Blocks() int { return int(w.blocks) }

// Finish appends the footer and returns the whole object, ready to PUT.
// The slice is the Writer's buffer: valid until the next Reset. Calling
// Finish again returns the same bytes; Add after Finish is refused.
func (w *Writer) Finish() []byte {
	if !w.ready {
		return nil
	}
	if !w.finished {
		w.buf = appendFooter(w.buf, footer{blocks: w.blocks, pos: uint64(len(w.buf)), chain: w.chain})
		w.finished = true
	}
	return w.buf
}
