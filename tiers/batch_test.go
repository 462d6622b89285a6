package tiers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// seal replaces (or adds, when trailer is false) the checksum of a body, so
// a test can hand the decoder a damaged body whose damage is past the CRC.
func seal(b []byte, trailer bool) []byte {
	if trailer {
		b = b[:len(b)-batchTrailerLen]
	}
	out := bytes.Clone(b)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, crc32.MakeTable(crc32.Castagnoli)))
}

func sampleBatch() []Record {
	return []Record{
		{TS: 1_700_000_000_123_456_789, Key: "IF2406", Tags: []string{"fill", ""}, Value: []byte(`{"px":3521.4}`)},
		{TS: -1, Value: []byte{0, 1, 0xfe, 0xff, '\n'}},
		{TS: 0},
		{TS: 7, Key: strings.Repeat("k", MaxKeyBytes), Tags: []string{strings.Repeat("t", MaxKeyBytes)}, Value: make([]byte, 70000)},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []Record
	}{
		{"empty", nil},
		{"one", sampleBatch()[:1]},
		{"mixed", sampleBatch()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := AppendBatch([]byte("prefix"), tc.recs)
			if string(body[:6]) != "prefix" {
				t.Fatalf("AppendBatch overwrote dst: %q", body[:6])
			}
			body = body[6:]
			got, err := DecodeBatch(body, BatchOptions{IngestTS: 99})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.recs) {
				t.Fatalf("decoded %d records, want %d", len(got), len(tc.recs))
			}
			for i := range got {
				if !got[i].Equal(&tc.recs[i]) {
					t.Errorf("record %d: got %+v, want %+v", i, got[i], tc.recs[i])
				}
			}
			for cut := 0; cut < len(body); cut++ {
				if _, err := DecodeBatch(body[:cut], BatchOptions{}); !errors.Is(err, ErrInvalidBatch) {
					t.Fatalf("cut at %d of %d: err %v, want ErrInvalidBatch", cut, len(body), err)
				}
			}
		})
	}
}

func TestBatchEncoderTSAndReuse(t *testing.T) {
	var e BatchEncoder
	e.Add(&Record{TS: 5, Key: "a"}, true)
	e.Add(&Record{TS: 5, Key: "b"}, false) // ingest time
	if e.Count() != 2 || e.Len() != len(e.Finish()) {
		t.Fatalf("Count %d, Len %d, Finish %d bytes", e.Count(), e.Len(), len(e.Finish()))
	}
	got, err := DecodeBatch(e.Finish(), BatchOptions{IngestTS: 1234})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].TS != 5 || got[1].TS != 1234 || got[0].Key != "a" || got[1].Key != "b" {
		t.Fatalf("got %+v", got)
	}
	e.Reset()
	e.Add(&Record{Key: "c"}, true)
	got, err = DecodeBatch(e.Finish(), BatchOptions{IngestTS: 1234})
	if err != nil || len(got) != 1 || got[0].Key != "c" || got[0].TS != 0 {
		t.Fatalf("after Reset: %+v, %v", got, err)
	}
	var empty BatchEncoder
	if b := empty.Finish(); len(b) != BatchOverhead || empty.Len() != BatchOverhead {
		t.Fatalf("empty batch is %d bytes (Len %d), want %d", len(b), empty.Len(), BatchOverhead)
	}
}

// Every single-bit flip anywhere in a body must be caught: the checksum
// covers everything but itself, and a flip in the checksum mismatches too.
func TestBatchEveryBitFlipRejected(t *testing.T) {
	body := AppendBatch(nil, sampleBatch()[:3])
	for i := range body {
		for bit := range 8 {
			bad := bytes.Clone(body)
			bad[i] ^= 1 << bit
			if _, err := DecodeBatch(bad, BatchOptions{}); !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("flip of byte %d bit %d: err %v, want ErrInvalidBatch", i, bit, err)
			}
		}
	}
}

// Bodies with a valid checksum but a bad structure or content, each with
// the sentinel it must wrap.
func TestBatchDecodeRejects(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	header := func(count uint32) []byte { return append([]byte("TDB1\x01\x00"), u32(count)...) }
	rec := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	lenB := func(n uint64) []byte { return binary.AppendUvarint(nil, n) }
	good := rec([]byte{0}, lenB(0), lenB(0), lenB(1), []byte("v"))
	cases := []struct {
		name string
		body []byte // without trailer
		opts BatchOptions
		want error
	}{
		{"bad magic", append([]byte("TDB2\x01\x00"), u32(0)...), BatchOptions{}, ErrInvalidBatch},
		{"bad version", append([]byte("TDB1\x02\x00"), u32(0)...), BatchOptions{}, ErrInvalidBatch},
		{"header flags", append([]byte("TDB1\x01\x80"), u32(0)...), BatchOptions{}, ErrInvalidBatch},
		{"count past the body", append(header(3), good...), BatchOptions{}, ErrInvalidBatch},
		{"huge count", header(1 << 31), BatchOptions{}, ErrInvalidBatch},
		{"too many records", append(append(header(2), good...), good...), BatchOptions{MaxRecords: 1}, ErrBatchTooLarge},
		{"trailing bytes", append(append(header(1), good...), 0), BatchOptions{}, ErrInvalidBatch},
		{"record flags", append(header(1), rec([]byte{2}, lenB(0), lenB(0), lenB(0))...), BatchOptions{}, ErrInvalidBatch},
		{"short ts", append(header(1), 1, 0, 0, 0), BatchOptions{}, ErrInvalidBatch},
		{"varint overflow", append(header(1), rec([]byte{0}, bytes.Repeat([]byte{0xff}, 11))...), BatchOptions{}, ErrInvalidBatch},
		{"key past the end", append(header(1), rec([]byte{0}, lenB(50), []byte("abc"))...), BatchOptions{}, ErrInvalidBatch},
		{"key too large", append(header(1), rec([]byte{0}, lenB(MaxKeyBytes+1), make([]byte, MaxKeyBytes+1), lenB(0), lenB(0))...), BatchOptions{}, ErrKeyTooLarge},
		{"key not UTF-8", append(header(1), rec([]byte{0}, lenB(1), []byte{0xff}, lenB(0), lenB(0))...), BatchOptions{}, ErrInvalidRecord},
		{"tag not UTF-8", append(header(1), rec([]byte{0}, lenB(0), lenB(1), lenB(1), []byte{0xc3}, lenB(0))...), BatchOptions{}, ErrInvalidRecord},
		{"tag too large", append(header(1), rec([]byte{0}, lenB(0), lenB(1), lenB(MaxKeyBytes+1), make([]byte, MaxKeyBytes+1), lenB(0))...), BatchOptions{}, ErrInvalidRecord},
		{"tag count past the end", append(header(1), rec([]byte{0}, lenB(0), lenB(1<<40))...), BatchOptions{}, ErrInvalidBatch},
		{"value too large", append(header(1), rec([]byte{0}, lenB(0), lenB(0), lenB(11), make([]byte, 11))...), BatchOptions{MaxValueBytes: 10}, ErrRecordTooLarge},
		{"value length absurd", append(header(1), rec([]byte{0}, lenB(0), lenB(0), lenB(1<<62))...), BatchOptions{}, ErrRecordTooLarge},
		{"value past the end", append(header(1), rec([]byte{0}, lenB(0), lenB(0), lenB(5), []byte("ab"))...), BatchOptions{}, ErrInvalidBatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := DecodeBatch(seal(tc.body, false), tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			var be *BatchError
			if !errors.As(err, &be) {
				t.Fatalf("err %T is not a *BatchError", err)
			}
			if recs != nil {
				t.Fatalf("returned %d records with an error", len(recs))
			}
		})
	}
	// The same bodies with a wrong checksum fail as invalid, whatever else is wrong.
	for _, tc := range cases {
		if _, err := DecodeBatch(append(bytes.Clone(tc.body), 0, 0, 0, 0), tc.opts); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("%s without a valid checksum: %v", tc.name, err)
		}
	}
}

func TestBatchDecodeAliasesValues(t *testing.T) {
	body := AppendBatch(nil, []Record{{TS: 1, Value: []byte("hello")}})
	got, err := DecodeBatch(body, BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cap(got[0].Value) != len(got[0].Value) {
		t.Fatalf("value slice has spare capacity %d: an append to it would overwrite the body", cap(got[0].Value))
	}
}

// FuzzDecodeBatch feeds the decoder arbitrary bodies, and the same bytes
// with a valid checksum appended so the fuzzer gets past the CRC into the
// record decoding. It must never panic; what it accepts must respect every
// limit and survive a re-encode unchanged.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(AppendBatch(nil, sampleBatch()[:3]))
	f.Add([]byte("TDB1\x01\x00\x01\x00\x00\x00\x00\x00\x00\x01v"))
	f.Add([]byte("TDB1\x01\x00\x02\x00\x00\x00\x01\x01\x02\x03\x04\x05\x06\x07\x08\x01k\x02\x01a\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		opts := BatchOptions{MaxRecords: 1000, MaxValueBytes: 4096, IngestTS: 42}
		for _, body := range [][]byte{b, seal(b, false)} {
			recs, err := DecodeBatch(body, opts)
			if err != nil {
				var be *BatchError
				if !errors.As(err, &be) {
					t.Fatalf("error %T is not a *BatchError: %v", err, err)
				}
				if !errors.Is(err, ErrInvalidBatch) && !errors.Is(err, ErrBatchTooLarge) && !errors.Is(err, ErrInvalidRecord) &&
					!errors.Is(err, ErrKeyTooLarge) && !errors.Is(err, ErrRecordTooLarge) {
					t.Fatalf("error wraps no sentinel: %v", err)
				}
				continue
			}
			if len(recs) > opts.MaxRecords || len(recs) > len(body)/batchMinRecord {
				t.Fatalf("%d records from %d bytes", len(recs), len(body))
			}
			for i := range recs {
				if err := recs[i].Validate(opts.MaxValueBytes); err != nil {
					t.Fatalf("record %d accepted but invalid: %v", i, err)
				}
			}
			again, err := DecodeBatch(AppendBatch(nil, recs), opts)
			if err != nil || len(again) != len(recs) {
				t.Fatalf("re-encoded batch: %d records, %v", len(again), err)
			}
			for i := range recs {
				if !again[i].Equal(&recs[i]) {
					t.Fatalf("record %d changed in a re-encode: %+v → %+v", i, recs[i], again[i])
				}
			}
		}
	})
}

// The example in docs/format/batch.md, byte for byte.
func TestBatchDocumentedExample(t *testing.T) {
	want := []byte{
		0x54, 0x44, 0x42, 0x31, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x01, 0x6b,
		0x00,
		0x01, 0x76,
	}
	want = seal(want, false)
	got := AppendBatch(nil, []Record{{TS: 1, Key: "k", Value: []byte("v")}})
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n% x\nwant\n% x", got, want)
	}
}
