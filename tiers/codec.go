package tiers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The record encoding is shared by the WAL, the memtable and warm segments
// (docs/format/record.md):
//
//	offset  uvarint
//	ts      8 bytes, little-endian int64
//	key     uvarint length + bytes
//	ntags   uvarint, then each tag as uvarint length + bytes
//	value   uvarint length + bytes
//
// It has no framing of its own: containers add length and CRC32C.

// ErrShortRecord reports an encoded record that ends before its last field.
var ErrShortRecord = errors.New("tiers: truncated record encoding")

// maxTags bounds the tag count a decoder accepts, so a corrupt count cannot
// make it allocate without bound.
const maxTags = 1 << 16

// AppendRecord appends the encoding of r to dst and returns the result.
func AppendRecord(dst []byte, r *Record) []byte {
	dst = binary.AppendUvarint(dst, r.Offset)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.TS))
	dst = binary.AppendUvarint(dst, uint64(len(r.Key)))
	dst = append(dst, r.Key...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Tags)))
	for _, t := range r.Tags {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Value)))
	dst = append(dst, r.Value...)
	return dst
}

// EncodedLen returns len(AppendRecord(nil, r)) without encoding.
func EncodedLen(r *Record) int {
	n := uvarintLen(r.Offset) + 8 + uvarintLen(uint64(len(r.Key))) + len(r.Key) + uvarintLen(uint64(len(r.Tags)))
	for _, t := range r.Tags {
		n += uvarintLen(uint64(len(t))) + len(t)
	}
	return n + uvarintLen(uint64(len(r.Value))) + len(r.Value)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// DecodeRecord decodes one record from the start of b and returns it with the
// number of bytes used. Value aliases b (no copy); Key and Tags are copied into
// strings. Errors wrap ErrShortRecord or ErrInvalidRecord.
func DecodeRecord(b []byte) (Record, int, error) {
	var r Record
	d := decoder{b: b}
	r.Offset = d.uvarint()
	r.TS = int64(d.u64())
	r.Key = string(d.bytes())
	nt := d.uvarint()
	if d.err == nil && nt > 0 {
		if nt > maxTags || nt > uint64(len(d.b)-d.off) {
			return Record{}, 0, fmt.Errorf("%w: tag count %d", ErrInvalidRecord, nt)
		}
		r.Tags = make([]string, nt)
		for i := range r.Tags {
			r.Tags[i] = string(d.bytes())
		}
	}
	r.Value = d.bytes()
	if d.err != nil {
		return Record{}, 0, d.err
	}
	return r, d.off, nil
}

type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		if n == 0 {
			d.err = ErrShortRecord
		} else {
			d.err = fmt.Errorf("%w: varint overflow at byte %d", ErrInvalidRecord, d.off)
		}
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) u64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.off < 8 {
		d.err = ErrShortRecord
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > math.MaxInt32 || n > uint64(len(d.b)-d.off) {
		d.err = ErrShortRecord
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	if n == 0 {
		return nil
	}
	return v
}
