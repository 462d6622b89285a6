package journal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// FuzzDecodeBlock: any bytes decode to a *tiers.CorruptionError or to a
// block that re-encodes to exactly those bytes (one encoding per block, so
// nothing was misread) and that the writer would have accepted. With fix,
// the length field and checksum are recomputed first, so mutations reach
// the parser behind the CRC.
func FuzzDecodeBlock(f *testing.F) {
	obj, refs := buildObject(f, sampleBatches())
	for _, ref := range refs {
		f.Add(blockBytes(obj, ref), false)
		f.Add(blockBytes(obj, ref), true)
	}
	f.Add([]byte("TJBK"), true)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix && len(b) >= blockHeaderLen+blockTrailerLen {
			b = reseal(bytes.Clone(b)) // the fuzzer's input is not ours to change
		}
		blk, err := DecodeBlock(b, BlockCheck{Key: testKey})
		if err != nil {
			isCorruption(t, err, "fuzzed block")
			return
		}
		var ref BlockRef
		n, err := blockLen(blk.Stream, blk.Producer, blk.Records, &ref)
		if err != nil || n != len(b) {
			t.Fatalf("decoded block of %d bytes: the writer says %d, %v", len(b), n, err)
		}
		if again := appendBlock(nil, uint64(blk.Ref.Pos), blk.Stream, blk.Producer, blk.Records); !bytes.Equal(again, b) {
			t.Fatalf("block re-encodes differently:\n got % x\nwant % x", again, b)
		}
		if ref.MinTS != blk.Ref.MinTS || ref.MaxTS != blk.Ref.MaxTS || blk.Ref.Records != len(blk.Records) || blk.Ref.Len != int64(len(b)) {
			t.Fatalf("ref %+v for %d records, ts [%d, %d]", blk.Ref, len(blk.Records), ref.MinTS, ref.MaxTS)
		}
		want := BlockCheck{Key: testKey, Pos: blk.Ref.Pos, Stream: blk.Stream, Records: len(blk.Records), First: 5}
		again, err := DecodeBlock(b, want)
		if err != nil || len(again.Records) != len(blk.Records) || again.Records[0].Offset != 5 {
			t.Fatalf("with the catalog's own facts: %v", err)
		}
	})
}

// resealObject recomputes the header's and the footer's checksums (and the
// footer's position) where the bytes are long enough to hold them.
func resealObject(b []byte) {
	if len(b) >= headerFixedLen {
		if n := int(binary.LittleEndian.Uint16(b[6:])); n >= headerFixedLen && n <= len(b) {
			binary.LittleEndian.PutUint32(b[n-4:], crc32.Checksum(b[:n-4], castagnoli))
		}
	}
	if len(b) >= FooterLen {
		f := b[len(b)-FooterLen:]
		binary.LittleEndian.PutUint64(f[8:], uint64(len(b)-FooterLen))
		binary.LittleEndian.PutUint32(f[20:], crc32.Checksum(f[:20], castagnoli))
	}
}

// FuzzDecodeObject: any bytes walk to a *tiers.CorruptionError or to an
// object whose every block decodes at its range and which the Writer
// rebuilds byte for byte.
func FuzzDecodeObject(f *testing.F) {
	obj, _ := buildObject(f, sampleBatches())
	f.Add(obj, false)
	f.Add(bytes.Clone(obj), true)
	empty, _ := buildObject(f, nil)
	f.Add(empty, true)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = bytes.Clone(b) // the fuzzer's input is not ours to change
			resealObject(b)
		}
		o, err := DecodeObject(b, testKey)
		if err != nil {
			isCorruption(t, err, "fuzzed object")
			return
		}
		w, err := NewWriter(o.Header)
		if err != nil {
			t.Fatalf("decoded header %+v refused by the writer: %v", o.Header, err)
		}
		for i, info := range o.Blocks {
			want := BlockCheck{Key: testKey, Pos: info.Ref.Pos, Stream: info.Stream, Records: info.Ref.Records}
			blk, err := DecodeBlock(b[info.Ref.Pos:info.Ref.Pos+info.Ref.Len], want)
			if err != nil {
				t.Fatalf("block %d walked but does not decode: %v", i, err)
			}
			ref, err := w.Add(blk.Stream, blk.Producer, blk.Records)
			if err != nil || ref != info.Ref {
				t.Fatalf("block %d: re-added as %+v, %v; walked as %+v", i, ref, err, info.Ref)
			}
		}
		if again := w.Finish(); !bytes.Equal(again, b) {
			t.Fatal("object re-encodes differently")
		}
	})
}
