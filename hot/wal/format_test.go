package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/tierd/tierd/tiers"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Batch
	}{
		{"one empty record", Batch{Stream: "s", Records: []tiers.Record{{}}}},
		{"every field", Batch{Stream: "IF2406.x_y-z", Records: []tiers.Record{
			{Offset: 1 << 40, TS: -5, Key: "k", Tags: []string{"a", "", "ccc"}, Value: []byte("hello")},
			{Offset: 1<<40 + 1, TS: 1_700_000_000_123_456_789, Value: make([]byte, 70000)},
		}}},
		{"longest stream name", Batch{Stream: strings.Repeat("n", tiers.MaxStreamNameLen), Records: []tiers.Record{{Offset: 3}}}},
		{"many records", genBatches(1, 1, 500, 3)[0]},
		{"a producer's batch", Batch{Stream: "s", Producer: tiers.ProducerID{1, 2, 3, 15: 0xff}, Seq: 1 << 33, Records: []tiers.Record{{Offset: 7, Value: []byte("v")}, {Offset: 8}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame, err := AppendFrame([]byte("prefix"), &tc.b)
			if err != nil {
				t.Fatal(err)
			}
			frame = frame[len("prefix"):]
			if l := binary.LittleEndian.Uint32(frame); int(l) != len(frame)-frameHeaderLen {
				t.Fatalf("length field %d, payload %d", l, len(frame)-frameHeaderLen)
			}
			if want := crc32.Checksum(frame[frameHeaderLen:], crc32.MakeTable(crc32.Castagnoli)); binary.LittleEndian.Uint32(frame[4:]) != want {
				t.Fatalf("crc field is not the CRC32C of type+body")
			}
			got, n, err := DecodeFrame(append(frame, "trailing"...))
			if err != nil || n != len(frame) || got.IsSnapshot {
				t.Fatalf("DecodeFrame: n=%d (want %d), err=%v", n, len(frame), err)
			}
			if err := batchesEqual([]Batch{got.Batch}, []Batch{tc.b}); err != nil {
				t.Fatal(err)
			}
			if got.Batch.Producer != tc.b.Producer || got.Batch.Seq != tc.b.Seq {
				t.Fatalf("producer %s seq %d, want %s %d", got.Batch.Producer, got.Batch.Seq, tc.b.Producer, tc.b.Seq)
			}
			for cut := range len(frame) {
				if _, _, err := DecodeFrame(frame[:cut]); !errors.Is(err, ErrTruncated) {
					t.Fatalf("frame cut at %d: err = %v, want ErrTruncated", cut, err)
				}
			}
			for i := 0; i < len(frame); i++ {
				if i > 256 && i < len(frame)-256 {
					i = min(i+997, len(frame)-256) // a sample of a long value; every byte of the rest
				}
				bad := bytes.Clone(frame)
				bad[i] ^= 0x20
				if _, _, err := DecodeFrame(bad); err == nil {
					t.Fatalf("bit flipped at byte %d decoded without error", i)
				}
			}
		})
	}
}

// payloadFrame wraps payload (type + body) in a frame with a correct length
// and CRC, to reach the batch decoder past the checksum.
func payloadFrame(payload []byte) []byte {
	f := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	f = binary.LittleEndian.AppendUint32(f, crc32.Checksum(payload, castagnoli))
	return append(f, payload...)
}

func TestDecodeRejectsMalformedBatches(t *testing.T) {
	rec := func(r tiers.Record) []byte {
		enc := tiers.AppendRecord(nil, &r)
		return append(binary.AppendUvarint(nil, uint64(len(enc))), enc...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"unknown type", cat([]byte{2, 1, 's', 1}, rec(tiers.Record{}))},
		{"empty stream name", cat([]byte{typeBatch, 0, 1}, rec(tiers.Record{}))},
		{"stream name too long", cat([]byte{typeBatch}, binary.AppendUvarint(nil, 201), bytes.Repeat([]byte("s"), 201), []byte{1}, rec(tiers.Record{}))},
		{"no records", []byte{typeBatch, 1, 's', 0}},
		{"count larger than the bytes", cat([]byte{typeBatch, 1, 's', 0xff, 0xff, 0xff, 0xff, 0x0f}, rec(tiers.Record{}))},
		{"count larger than the records", cat([]byte{typeBatch, 1, 's', 2}, rec(tiers.Record{}), make([]byte, 20))},
		{"offsets not dense", cat([]byte{typeBatch, 1, 's', 2}, rec(tiers.Record{Offset: 5}), rec(tiers.Record{Offset: 7}))},
		{"offsets wrap", cat([]byte{typeBatch, 1, 's', 2}, rec(tiers.Record{Offset: 1<<64 - 1}), rec(tiers.Record{Offset: 0}))},
		{"trailing bytes", cat([]byte{typeBatch, 1, 's', 1}, rec(tiers.Record{}), []byte{0})},
		{"record length past end", cat([]byte{typeBatch, 1, 's', 1, 0x7f}, tiers.AppendRecord(nil, &tiers.Record{}))},
		{"record shorter than its length", cat([]byte{typeBatch, 1, 's', 1, 13}, tiers.AppendRecord(nil, &tiers.Record{}), []byte{0})},
		{"non-canonical varint", cat([]byte{typeBatch, 0x81, 0x00, 's', 1}, rec(tiers.Record{}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeFrame(payloadFrame(tc.payload))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder and, wrapped in
// a valid length and CRC, to the batch decoder: each must fail or return a
// batch that re-encodes to exactly the bytes it came from.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range genBatches(2, 3, 3, 5) {
		frame := appendFrame(nil, &b)
		f.Add(frame)
		f.Add(frame[frameHeaderLen:])
	}
	f.Add([]byte{typeBatch, 1, 's', 1, 12, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0})
	pb := Batch{Stream: "p", Producer: tiers.ProducerID{9, 15: 1}, Seq: 3, Records: []tiers.Record{{Offset: 5, Value: []byte("x")}}}
	f.Add(appendFrame(nil, &pb))
	f.Add(appendSnapshotFrame(nil, []ProducerState{
		{Stream: "a", Producer: tiers.ProducerID{1}, Seq: 2, First: 10, Count: 3, At: 1_700_000_000_000_000_000},
		{Stream: "a", Producer: tiers.ProducerID{2}, Seq: 1, First: 0, Count: 1, At: -1},
	}))
	f.Add(appendSnapshotFrame(nil, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(in []byte) {
			fr, n, err := DecodeFrame(in)
			if err != nil {
				return
			}
			if n > len(in) {
				t.Fatalf("used %d of %d bytes", n, len(in))
			}
			var again []byte
			if fr.IsSnapshot {
				again = appendSnapshotFrame(nil, fr.Snapshot)
			} else if again, err = AppendFrame(nil, &fr.Batch); err != nil {
				t.Fatalf("decoded batch does not re-encode: %v", err)
			}
			if !bytes.Equal(again, in[:n]) {
				t.Fatalf("re-encoding differs:\n in  %x\n out %x", in[:n], again)
			}
			if !plausibleFrameAt(in) {
				t.Fatalf("a frame DecodeFrame accepts is not recognised by the recovery scan")
			}
		}
		check(b)
		if len(b) > 0 && len(b) <= MaxFrameBytes {
			check(payloadFrame(b))
		}
	})
}
