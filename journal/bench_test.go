package journal

import (
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// benchBatches is one flush of a busy node: 64 batches of 100 records,
// each a 16-byte key, one tag and a 200-byte value (about 1.5 MiB).
func benchBatches() []batch {
	batches := make([]batch, 64)
	for i := range batches {
		recs := make([]tiers.Record, 100)
		for j := range recs {
			v := make([]byte, 200)
			for k := range v {
				v[k] = byte(i + j + k)
			}
			recs[j] = tiers.Record{TS: int64(i*1000 + j), Key: fmt.Sprintf("account-%08d", j), Tags: []string{"eu"}, Value: v}
		}
		batches[i] = batch{stream: fmt.Sprintf("stream-%d", i%8), producer: producer(byte(i), uint64(i+1)), recs: recs}
	}
	return batches
}

// BenchmarkEncode builds the flush's object with one reused Writer; beside
// BenchmarkBaselineCRC32C/object it shows what the encoding costs over the
// checksum any format pays.
func BenchmarkEncode(b *testing.B) {
	batches := benchBatches()
	obj, _ := buildObject(b, batches)
	w, _ := NewWriter(testHeader)
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Reset(testHeader); err != nil {
			b.Fatal(err)
		}
		for _, x := range batches {
			if _, err := w.Add(x.stream, x.producer, x.recs); err != nil {
				b.Fatal(err)
			}
		}
		w.Finish()
	}
}

// BenchmarkDecodeBlock decodes one block of 1 000 records, as a read of a
// catalog range does after its ranged GET.
func BenchmarkDecodeBlock(b *testing.B) {
	blk, want := benchBlock(b)
	b.SetBytes(int64(len(blk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBlock(blk, want); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeObject walks the flush's object as verify and GC do.
func BenchmarkDecodeObject(b *testing.B) {
	obj, _ := buildObject(b, benchBatches())
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeObject(obj, testKey); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBlock(b *testing.B) ([]byte, BlockCheck) {
	var recs []tiers.Record
	for _, x := range benchBatches()[:10] {
		recs = append(recs, x.recs...)
	}
	x := batch{"stream-0", producer(1, 1), recs}
	obj, refs := buildObject(b, []batch{x})
	return blockBytes(obj, refs[0]), checkFor(x, refs[0], 0)
}

// BenchmarkBaselineCRC32C is the floor: CRC32C alone over the same bytes
// as BenchmarkEncode (object) and BenchmarkDecodeBlock (block).
func BenchmarkBaselineCRC32C(b *testing.B) {
	obj, _ := buildObject(b, benchBatches())
	blk, _ := benchBlock(b)
	for name, data := range map[string][]byte{"object": obj, "block": blk} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				crc32.Checksum(data, castagnoli)
			}
		})
	}
}
