package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/tierd/tierd/tiers"
)

const testKey = "_journal/node-a/00000001.tjn"

var testHeader = Header{NodeID: "node-a", Epoch: 7, CreatedAt: 1_700_000_000_000_000_000}

// batch is one Add's arguments.
type batch struct {
	stream   string
	producer tiers.Producer
	recs     []tiers.Record
}

// sampleRecords returns n records of varied shape: with and without key,
// tags and value, negative and large ts, non-ASCII text, binary values.
func sampleRecords(n, seed int) []tiers.Record {
	recs := make([]tiers.Record, n)
	for i := range recs {
		r := &recs[i]
		j := seed*1000 + i
		r.Offset = uint64(99 + j) // ignored by the writer
		r.TS = int64(j)*1_000_003 - 5000
		if j%3 != 0 {
			r.Key = fmt.Sprintf("key-%d-é", j)
		}
		for t := range j % 4 {
			r.Tags = append(r.Tags, fmt.Sprintf("tag%d", t))
		}
		if j%5 != 0 {
			r.Value = bytes.Repeat([]byte{byte(j), 0, 0xff}, 1+j%40)
		}
	}
	if n > 1 {
		recs[n-1].TS = tiers.MaxTS
	}
	return recs
}

func producer(b byte, seq uint64) tiers.Producer {
	var p tiers.Producer
	p.ID[0], p.ID[15] = b, 0x42
	p.Seq = seq
	return p
}

func sampleBatches() []batch {
	return []batch{
		{"orders", tiers.Producer{}, sampleRecords(5, 1)},
		{"ticks.EURUSD", producer(1, 3), sampleRecords(1, 2)},
		{"orders", producer(2, 1), sampleRecords(17, 3)},
		{"a", tiers.Producer{}, []tiers.Record{{}}}, // the smallest record
		{strings.Repeat("z", tiers.MaxStreamNameLen), producer(3, math.MaxUint64), sampleRecords(3, 4)},
	}
}

// buildObject writes batches into one object and returns it and each
// block's ref.
func buildObject(t testing.TB, batches []batch) ([]byte, []BlockRef) {
	t.Helper()
	w, err := NewWriter(testHeader)
	if err != nil {
		t.Fatal(err)
	}
	var refs []BlockRef
	for _, b := range batches {
		ref, err := w.Add(b.stream, b.producer, b.recs)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	if w.Blocks() != len(batches) {
		t.Fatalf("Blocks() = %d, want %d", w.Blocks(), len(batches))
	}
	size := w.Len()
	obj := w.Finish()
	if len(obj) != size {
		t.Fatalf("Len() said %d before Finish, object is %d bytes", size, len(obj))
	}
	return bytes.Clone(obj), refs
}

func blockBytes(obj []byte, ref BlockRef) []byte {
	return bytes.Clone(obj[ref.Pos : ref.Pos+ref.Len])
}

func checkFor(b batch, ref BlockRef, first uint64) BlockCheck {
	return BlockCheck{Key: testKey, Pos: ref.Pos, Stream: b.stream, Records: len(b.recs), First: first}
}

// sameRecords compares decoded records with what was written, offsets
// counted from first.
func sameRecords(t *testing.T, got, sent []tiers.Record, first uint64) {
	t.Helper()
	if len(got) != len(sent) {
		t.Fatalf("%d records, want %d", len(got), len(sent))
	}
	for i := range sent {
		want := sent[i]
		want.Offset = first + uint64(i)
		if !got[i].Equal(&want) {
			t.Fatalf("record %d = %+v, want %+v", i, got[i], want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	batches := sampleBatches()
	obj, refs := buildObject(t, batches)
	for i, b := range batches {
		first := uint64(1000 * i)
		blk, err := DecodeBlock(blockBytes(obj, refs[i]), checkFor(b, refs[i], first))
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if blk.Stream != b.stream || blk.Producer != b.producer || blk.Ref != refs[i] {
			t.Fatalf("block %d: %q %+v %+v, want %q %+v %+v", i, blk.Stream, blk.Producer, blk.Ref, b.stream, b.producer, refs[i])
		}
		sameRecords(t, blk.Records, b.recs, first)
		minTS, maxTS := int64(math.MaxInt64), int64(math.MinInt64)
		for _, r := range b.recs {
			minTS, maxTS = min(minTS, r.TS), max(maxTS, r.TS)
		}
		if refs[i].MinTS != minTS || refs[i].MaxTS != maxTS || refs[i].Records != len(b.recs) {
			t.Fatalf("block %d ref %+v: want ts [%d, %d], %d records", i, refs[i], minTS, maxTS, len(b.recs))
		}
	}

	o, err := DecodeObject(obj, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if o.Header != testHeader || len(o.Blocks) != len(batches) {
		t.Fatalf("object header %+v with %d blocks", o.Header, len(o.Blocks))
	}
	for i, b := range o.Blocks {
		if b.Ref != refs[i] || b.Stream != batches[i].stream || b.Producer != batches[i].producer {
			t.Fatalf("walked block %d = %+v, want ref %+v", i, b, refs[i])
		}
	}
	h, n, err := DecodeHeader(obj[:min(len(obj), MaxHeaderLen)], testKey)
	if err != nil || h != testHeader || n != int(refs[0].Pos) {
		t.Fatalf("DecodeHeader = %+v, %d, %v", h, n, err)
	}
}

// TestValuesAliasInput: decoding does not copy values; the catalog's
// reader owns the bytes of its ranged GET.
func TestValuesAliasInput(t *testing.T) {
	b := batch{"s", tiers.Producer{}, []tiers.Record{{Key: "k", Value: []byte("value")}}}
	obj, refs := buildObject(t, []batch{b})
	blk := blockBytes(obj, refs[0])
	got, err := DecodeBlock(blk, checkFor(b, refs[0], 0))
	if err != nil {
		t.Fatal(err)
	}
	v := got.Records[0].Value
	i := bytes.Index(blk, []byte("value"))
	if &v[0] != &blk[i] || cap(v) != len(v) {
		t.Fatal("value is a copy, or its capacity reaches past it")
	}
}

func TestEmptyObject(t *testing.T) {
	obj, _ := buildObject(t, nil)
	o, err := DecodeObject(obj, testKey)
	if err != nil || len(o.Blocks) != 0 || o.Header != testHeader {
		t.Fatalf("%+v, %v", o, err)
	}
}

// TestWriterReuse: Reset gives the same bytes as a new Writer, and a
// warmed-up Writer builds an object without allocating.
func TestWriterReuse(t *testing.T) {
	batches := sampleBatches()
	want, _ := buildObject(t, batches)
	w, err := NewWriter(Header{NodeID: "other", Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add("x", tiers.Producer{}, sampleRecords(50, 9)); err != nil {
		t.Fatal(err)
	}
	w.Finish()
	build := func() []byte {
		if err := w.Reset(testHeader); err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			if _, err := w.Add(b.stream, b.producer, b.recs); err != nil {
				t.Fatal(err)
			}
		}
		return w.Finish()
	}
	if got := build(); !bytes.Equal(got, want) {
		t.Fatal("a reset Writer wrote other bytes than a new one")
	}
	if !bytes.Equal(w.Finish(), want) {
		t.Fatal("a second Finish changed the object")
	}
	if _, err := w.Add("x", tiers.Producer{}, sampleRecords(1, 0)); !errors.Is(err, ErrFinished) {
		t.Fatalf("Add after Finish: %v, want ErrFinished", err)
	}
	if allocs := testing.AllocsPerRun(20, func() { build() }); allocs != 0 {
		t.Fatalf("%v allocations per object, want 0", allocs)
	}
}

func TestDecodeAllocations(t *testing.T) {
	b := batch{"s", producer(1, 1), sampleRecords(200, 5)}
	obj, refs := buildObject(t, []batch{b})
	blk := blockBytes(obj, refs[0])
	want := checkFor(b, refs[0], 0)
	// Records, tags and one string of every key and tag.
	if allocs := testing.AllocsPerRun(20, func() {
		if _, err := DecodeBlock(blk, want); err != nil {
			t.Fatal(err)
		}
	}); allocs > 3 {
		t.Fatalf("%v allocations per block, want at most 3", allocs)
	}
}

func TestWriterRefuses(t *testing.T) {
	bad := []struct {
		name string
		b    batch
		want error
	}{
		{"empty stream name", batch{"", tiers.Producer{}, sampleRecords(1, 0)}, ErrInvalidBatch},
		{"bad stream name", batch{"a/b", tiers.Producer{}, sampleRecords(1, 0)}, ErrInvalidBatch},
		{"no records", batch{"s", tiers.Producer{}, nil}, ErrInvalidBatch},
		{"producer without seq", batch{"s", producer(1, 0), sampleRecords(1, 0)}, ErrInvalidBatch},
		{"seq without producer", batch{"s", tiers.Producer{Seq: 3}, sampleRecords(1, 0)}, ErrInvalidBatch},
		{"key not UTF-8", batch{"s", tiers.Producer{}, []tiers.Record{{Key: "\xff"}}}, ErrInvalidBatch},
		{"key too long", batch{"s", tiers.Producer{}, []tiers.Record{{Key: strings.Repeat("k", tiers.MaxKeyBytes+1)}}}, ErrInvalidBatch},
		{"tag not UTF-8", batch{"s", tiers.Producer{}, []tiers.Record{{Tags: []string{"ok", "\xc3"}}}}, ErrInvalidBatch},
		{"ts MaxInt64", batch{"s", tiers.Producer{}, []tiers.Record{{TS: math.MaxInt64}}}, ErrInvalidBatch},
		{"too many tags", batch{"s", tiers.Producer{}, []tiers.Record{{Tags: make([]string, maxTags+1)}}}, ErrInvalidBatch},
		{"too many records", batch{"s", tiers.Producer{}, make([]tiers.Record, MaxBlockRecords+1)}, ErrBatchTooLarge},
	}
	w, err := NewWriter(testHeader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add("s", tiers.Producer{}, sampleRecords(3, 1)); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(w.buf)
	for _, c := range bad {
		if _, err := w.Add(c.b.stream, c.b.producer, c.b.recs); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if !bytes.Equal(w.buf, before) || w.Blocks() != 1 {
			t.Fatalf("%s: a refused batch changed the object", c.name)
		}
	}
	for _, h := range []Header{{}, {NodeID: strings.Repeat("n", MaxNodeIDLen+1)}, {NodeID: "\xff"}} {
		if err := w.Reset(h); !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("Reset(%q): %v, want ErrInvalidHeader", h.NodeID, err)
		}
		if _, err := w.Add("s", tiers.Producer{}, sampleRecords(1, 0)); !errors.Is(err, ErrFinished) {
			t.Errorf("Add after a failed Reset: %v", err)
		}
	}
	var zero Writer
	if _, err := zero.Add("s", tiers.Producer{}, sampleRecords(1, 0)); !errors.Is(err, ErrFinished) || zero.Finish() != nil {
		t.Errorf("zero Writer: Add %v", err)
	}
}

// TestWriterRefusesHugeBlock: a batch past MaxBlockBytes (one 1 MiB value
// shared by every record, so the test holds 1 MiB) is refused unwritten.
func TestWriterRefusesHugeBlock(t *testing.T) {
	v := make([]byte, 1<<20)
	recs := make([]tiers.Record, MaxBlockBytes/len(v)+1)
	for i := range recs {
		recs[i].Value = v
	}
	w, _ := NewWriter(testHeader)
	if _, err := w.Add("s", tiers.Producer{}, recs); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("%v, want ErrBatchTooLarge", err)
	}
	if len(w.buf) != int(w.Len()-FooterLen) || w.Blocks() != 0 {
		t.Fatal("refused batch left bytes behind")
	}
}

// isCorruption fails the test unless err is a *tiers.CorruptionError
// naming the key.
func isCorruption(t *testing.T, err error, what string) *tiers.CorruptionError {
	t.Helper()
	var ce *tiers.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: error %v (%T), want *tiers.CorruptionError", what, err, err)
	}
	if ce.Path != testKey {
		t.Fatalf("%s: error names %q, want %q", what, ce.Path, testKey)
	}
	return ce
}

// TestEveryBitFlip flips each bit of a small block and of a small object:
// every flip is reported as corruption; none yields records.
func TestEveryBitFlip(t *testing.T) {
	batches := []batch{
		{"s1", producer(9, 2), []tiers.Record{{TS: 5, Key: "k", Tags: []string{"t"}, Value: []byte("vv")}, {TS: 6}}},
		{"s2", tiers.Producer{}, []tiers.Record{{Key: "x", Value: []byte{0}}}},
	}
	obj, refs := buildObject(t, batches)
	for bi, ref := range refs {
		orig := blockBytes(obj, ref)
		want := checkFor(batches[bi], ref, 10)
		for i := range len(orig) * 8 {
			b := bytes.Clone(orig)
			b[i/8] ^= 1 << (i % 8)
			blk, err := DecodeBlock(b, want)
			if err == nil {
				// Only an identical answer would be acceptable; CRC32C
				// makes even that impossible for one bit.
				sameRecords(t, blk.Records, batches[bi].recs, 10)
				t.Fatalf("block %d bit %d: flip not detected", bi, i)
			}
			isCorruption(t, err, fmt.Sprintf("block %d bit %d", bi, i))
			// Without the catalog's facts, the block alone still
			// refuses it.
			if _, err := DecodeBlock(b, BlockCheck{Key: testKey}); err == nil {
				t.Fatalf("block %d bit %d: flip not detected without catalog checks", bi, i)
			}
		}
	}
	for i := range len(obj) * 8 {
		b := bytes.Clone(obj)
		b[i/8] ^= 1 << (i % 8)
		_, err := DecodeObject(b, testKey)
		isCorruption(t, err, fmt.Sprintf("object bit %d", i))
	}
}

func TestTruncations(t *testing.T) {
	batches := sampleBatches()[:3]
	obj, refs := buildObject(t, batches)
	blk := blockBytes(obj, refs[1])
	want := checkFor(batches[1], refs[1], 0)
	for n := range len(blk) {
		_, err := DecodeBlock(blk[:n], want)
		isCorruption(t, err, fmt.Sprintf("block cut to %d bytes", n))
	}
	// A range one byte too long or too short at either end.
	for _, r := range [][2]int64{{-1, 0}, {0, 1}, {1, 0}, {-1, -1}, {1, 1}} {
		b := obj[refs[1].Pos+r[0] : refs[1].Pos+refs[1].Len+r[1]]
		_, err := DecodeBlock(b, want)
		isCorruption(t, err, fmt.Sprintf("range moved by %v", r))
	}
	for n := range len(obj) {
		_, err := DecodeObject(obj[:n], testKey)
		isCorruption(t, err, fmt.Sprintf("object cut to %d bytes", n))
		if n < int(refs[0].Pos) {
			if _, _, err := DecodeHeader(obj[:n], testKey); err == nil {
				t.Fatalf("header cut to %d bytes decoded", n)
			}
		}
	}
	_, err := DecodeObject(append(bytes.Clone(obj), 0), testKey)
	isCorruption(t, err, "object with a byte appended")
}

func TestCatalogMismatch(t *testing.T) {
	batches := []batch{
		{"orders", tiers.Producer{}, sampleRecords(4, 1)},
		{"orders", tiers.Producer{}, sampleRecords(4, 2)}, // same stream and count
	}
	obj, refs := buildObject(t, batches)
	blk := blockBytes(obj, refs[0])
	good := checkFor(batches[0], refs[0], 0)
	cases := map[string]func(c *BlockCheck){
		"stream":       func(c *BlockCheck) { c.Stream = "order" },
		"count":        func(c *BlockCheck) { c.Records = 3 },
		"position":     func(c *BlockCheck) { c.Pos = refs[1].Pos },
		"offsets wrap": func(c *BlockCheck) { c.First = math.MaxUint64 - 2 },
	}
	for name, mut := range cases {
		c := good
		mut(&c)
		_, err := DecodeBlock(blk, c)
		isCorruption(t, err, name)
		if !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", name, err)
		}
	}
	// A catalog row whose range points at the other block of the same
	// stream and count: caught by the position each block records.
	_, err := DecodeBlock(blockBytes(obj, refs[1]), good)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("swapped range: %v, want ErrMismatch", err)
	}
	c := good
	c.First = math.MaxUint64 - 3 // the last offset is exactly 2^64-1
	if _, err := DecodeBlock(blk, c); err != nil {
		t.Fatal(err)
	}
	c = good
	c.MaxValueBytes = 10
	if _, err := DecodeBlock(blk, c); !errors.Is(err, ErrMalformed) {
		t.Fatalf("value above MaxValueBytes: %v", err)
	}
}

// reseal recomputes a block's length field and checksum after a test
// changed its body, so the damage reaches the parser behind the CRC.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[8:], uint32(len(b)))
	end := len(b) - blockTrailerLen
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
	return b
}

// TestAbsurdLengths: length and count fields far beyond the block, with a
// valid checksum, are refused before anything is allocated for them.
func TestAbsurdLengths(t *testing.T) {
	b := batch{"s", tiers.Producer{}, []tiers.Record{{TS: 1, Key: "k", Value: []byte("v")}}}
	obj, refs := buildObject(t, []batch{b})
	orig := blockBytes(obj, refs[0])
	// Body: stream len 1 @20, "s" @21, count @22, record @23: offset @23,
	// ts @24..31, key len @32, "k" @33, ntags @34, value len @35, "v" @36.
	big := binary.AppendUvarint(nil, math.MaxUint64)
	splice := func(at, drop int, with []byte) []byte {
		out := append(bytes.Clone(orig[:at]), with...)
		return reseal(append(out, orig[at+drop:]...))
	}
	cases := map[string][]byte{
		"stream length":   splice(20, 1, big),
		"record count":    splice(22, 1, big),
		"count 2^20+1":    splice(22, 1, binary.AppendUvarint(nil, MaxBlockRecords+1)),
		"count 0":         splice(22, 1, []byte{0}),
		"key length":      splice(32, 1, big),
		"key over max":    splice(32, 1, binary.AppendUvarint(nil, tiers.MaxKeyBytes+1)),
		"tag count":       splice(34, 1, big),
		"tag count 65537": splice(34, 1, binary.AppendUvarint(nil, maxTags+1)),
		"value length":    splice(35, 1, big),
		"value 2^31":      splice(35, 1, binary.AppendUvarint(nil, 1<<31)),
		"offset not 0":    splice(23, 1, []byte{1}),
		"long varint":     splice(22, 1, []byte{0x81, 0x00}),
		"varint overflow": splice(22, 1, bytes.Repeat([]byte{0xff}, 11)),
		"trailing byte":   splice(37, 0, []byte{0}),
		"ts MaxInt64":     splice(24, 8, binary.LittleEndian.AppendUint64(nil, math.MaxInt64)),
		"stream invalid":  splice(21, 1, []byte{'/'}),
		"key not UTF-8":   splice(33, 1, []byte{0xff}),
		"flags":           func() []byte { x := bytes.Clone(orig); x[5] = 2; return reseal(x) }(),
	}
	// A producer flag with a zero id, then with sequence 0.
	for name, p := range map[string][]byte{
		"producer zero id": append(make([]byte, 16), 1),
		"producer seq 0":   append(bytes.Repeat([]byte{7}, 16), 0),
	} {
		x := splice(22, 0, p)
		x[5] = flagProducer
		cases[name] = reseal(x)
	}
	cases["length field 2^32-1"] = func() []byte {
		x := bytes.Clone(orig)
		binary.LittleEndian.PutUint32(x[8:], math.MaxUint32)
		return x
	}()
	cases["version 2"] = func() []byte { x := bytes.Clone(orig); x[4] = 2; return reseal(x) }()
	for name, blk := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := DecodeBlock(blk, BlockCheck{Key: testKey})
		runtime.ReadMemStats(&after)
		isCorruption(t, err, name)
		// An error message and the records the bytes can hold; never a
		// slice sized by the field.
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s: %d bytes allocated before refusing", name, n)
		}
	}
	if _, err := DecodeBlock(cases["version 2"], BlockCheck{Key: testKey}); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2: %v, want ErrVersion", err)
	}
}

// TestFooter: the footer's count and chain are checked even where the
// blocks themselves are intact.
func TestFooter(t *testing.T) {
	obj, _ := buildObject(t, sampleBatches()[:2])
	resealFooter := func(b []byte) []byte {
		f := b[len(b)-FooterLen:]
		binary.LittleEndian.PutUint32(f[20:], crc32.Checksum(f[:20], castagnoli))
		return b
	}
	count := bytes.Clone(obj)
	binary.LittleEndian.PutUint32(count[len(count)-FooterLen+4:], 3)
	if _, err := DecodeObject(resealFooter(count), testKey); !errors.Is(err, ErrMalformed) {
		t.Errorf("footer count: %v", err)
	}
	chain := bytes.Clone(obj)
	chain[len(chain)-FooterLen+16]++
	if _, err := DecodeObject(resealFooter(chain), testKey); !errors.Is(err, ErrChecksum) {
		t.Errorf("footer chain: %v", err)
	}
	pos := bytes.Clone(obj)
	pos[len(pos)-FooterLen+8]++
	if _, err := DecodeObject(resealFooter(pos), testKey); !errors.Is(err, ErrTruncated) {
		t.Errorf("footer position: %v", err)
	}
}

// TestDocExample rebuilds the example of docs/format/journal.md and
// compares it with the bytes printed there, so the document cannot drift
// from the code.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/format/journal.md")
	if err != nil {
		t.Fatal(err)
	}
	_, example, ok := strings.Cut(string(doc), "## Example")
	if !ok {
		t.Fatal("docs/format/journal.md has no Example section")
	}
	_, example, _ = strings.Cut(example, "```\n")
	example, _, _ = strings.Cut(example, "```")
	var want []byte
	for _, line := range strings.Split(example, "\n") {
		hexPart, _, _ := strings.Cut(line, "   ") // the comment column
		for _, f := range strings.Fields(hexPart) {
			v, err := strconv.ParseUint(f, 16, 8)
			if err != nil {
				t.Fatalf("example line %q: %v", line, err)
			}
			want = append(want, byte(v))
		}
	}
	w, err := NewWriter(Header{NodeID: "n1", Epoch: 3, CreatedAt: 1})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := w.Add("s", tiers.Producer{}, []tiers.Record{{TS: 1, Key: "k", Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Finish(); !bytes.Equal(got, want) {
		t.Fatalf("the example's bytes are not what the Writer writes:\n doc % x\ngot % x", want, got)
	}
	if ref.Pos != 31 || ref.Len != 41 {
		t.Fatalf("example block at %d+%d, the document says 31+41", ref.Pos, ref.Len)
	}
}
