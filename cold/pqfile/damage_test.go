package pqfile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/tierd/tierd/tiers"
)

// checkAll opens b, scans everything and verifies. It returns the first
// error and the records scanned before it.
func checkAll(b []byte) ([]tiers.Record, error) {
	ctx := context.Background()
	r, err := Open(ctx, bytes.NewReader(b), int64(len(b)), "damaged.parquet")
	if err != nil {
		return nil, err
	}
	var recs []tiers.Record
	for rec, err := range r.Scan(ctx, tiers.AllRecords()) {
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
	return recs, r.Verify(ctx)
}

// writeRaw writes recs with parquet-go directly and the given key/value
// metadata, to build files Write itself would never produce.
func writeRaw(t *testing.T, recs []tiers.Record, kv map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[row](&buf, schema, parquet.Compression(&parquet.Zstd))
	rows := make([]row, len(recs))
	for i, r := range recs {
		rows[i] = row{Offset: int64(r.Offset), TS: r.TS, Key: r.Key, Tags: r.Tags, Value: r.Value}
	}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	for k, v := range kv {
		w.SetKeyValueMetadata(k, v)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// columnChunk returns the metadata of column col in row group rg of b.
func columnChunk(t *testing.T, b []byte, rg, col int) (start, size int64) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	md := f.Metadata().RowGroups[rg].Columns[col].MetaData
	start = md.DataPageOffset
	if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < start {
		start = md.DictionaryPageOffset
	}
	return start, md.TotalCompressedSize
}

// leafOf returns the column index of the leaf at path in b's schema.
func leafOf(t testing.TB, b []byte, path ...string) int {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	lc, ok := f.Schema().Lookup(path...)
	if !ok {
		t.Fatalf("no column %v", path)
	}
	return lc.ColumnIndex
}

// valueChunk returns the larger of the value columns' chunks in row group
// rg (format 2 splits values into value and value_bin).
func valueChunk(t *testing.T, b []byte, rg int) (start, size int64) {
	start, size = columnChunk(t, b, rg, leafOf(t, b, ColValue))
	if _, ok := parquetSchema(t, b).Lookup(ColValueBin); ok {
		if s2, n2 := columnChunk(t, b, rg, leafOf(t, b, ColValueBin)); n2 > size {
			return s2, n2
		}
	}
	return start, size
}

func parquetSchema(t *testing.T, b []byte) *parquet.Schema {
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return f.Schema()
}

// TestDamagedFiles runs over files of both formats a Write writes.
func TestDamagedFiles(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("format %d", version), func(t *testing.T) { testDamagedFiles(t, version) })
	}
}

func testDamagedFiles(t *testing.T, version int) {
	recs := mixedRecords(1200, 500)
	good, info := writeBytes(t, "s", recs, Options{RowGroupRows: 400, Version: version})
	if info.RowGroups != 3 {
		t.Fatalf("%d row groups, want 3", info.RowGroups)
	}
	footerLen := int64(binary.LittleEndian.Uint32(good[len(good)-8:]))
	footerStart := int64(len(good)) - 8 - footerLen
	valueStart, valueSize := valueChunk(t, good, 1)
	keyCol := leafOf(t, good, ColKey)
	// Hand-made files carry format 1.1 metadata: without tierd.row_groups
	// and its checksum the 1.1 reader's checks are the ones tested.
	meta, err := metadataOf(&info.Meta, nil, FormatVersion1, nil)
	if err != nil {
		t.Fatal(err)
	}
	meta[MetaFormatVersion] = "1.1"
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for k, v := range meta {
			m[k] = v
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	otherDigest := digestOf(recs[1:]).String()

	tests := []struct {
		name   string
		damage func([]byte) []byte
		want   error // also wrapped, besides *tiers.CorruptionError; nil = any
	}{
		{"empty", func(b []byte) []byte { return nil }, nil},
		{"garbage", func(b []byte) []byte {
			g := make([]byte, 10_000)
			for i := range g {
				g[i] = byte(rand.N(256))
			}
			return g
		}, nil},
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }, nil},
		{"last byte cut", func(b []byte) []byte { return b[:len(b)-1] }, nil},
		{"footer length huge", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[len(b)-8:], 0xfffffff0)
			return b
		}, nil},
		{"footer length short by one", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[len(b)-8:], uint32(footerLen-1))
			return b
		}, nil},
		{"trailing magic removed", func(b []byte) []byte { return b[:len(b)-4] }, nil},
		{"leading magic zeroed", func(b []byte) []byte { copy(b, "\x00\x00\x00\x00"); return b }, nil},
		{"bit flip in a value data page", func(b []byte) []byte {
			b[valueStart+valueSize/2] ^= 0x10
			return b
		}, nil},
		{"bit flip in a key dictionary page", func(b []byte) []byte {
			// parquet-go loads dictionaries without checking their CRC;
			// checkDictionaries does. The last byte of the dictionary page
			// is the one before the first data page.
			f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			md := f.Metadata().RowGroups[0].Columns[keyCol].MetaData
			if md.DictionaryPageOffset <= 0 {
				t.Fatal("key column has no dictionary page")
			}
			b[md.DataPageOffset-1] ^= 0x10
			return b
		}, nil},
		{"bit flip in the offset column", func(b []byte) []byte {
			s, n := columnChunk(t, b, 2, 0)
			b[s+n-2] ^= 0x01
			return b
		}, nil},
		{"bit flip in the footer's digest", func(b []byte) []byte {
			i := bytes.Index(b[footerStart:], []byte("sha256:"))
			b[footerStart+int64(i)+7+10] ^= 0x01 // a hex digit becomes another character
			return b
		}, nil},
		{"bit flip at the footer's start", func(b []byte) []byte { b[footerStart] ^= 0x80; return b }, nil},
		{"zeroed 4 KiB in the middle", func(b []byte) []byte {
			clear(b[len(b)/2 : len(b)/2+4096])
			return b
		}, nil},
		{"tierd metadata missing", func([]byte) []byte { return writeRaw(t, recs, nil) }, ErrNotSegment},
		{"tierd.count missing", func([]byte) []byte { return writeRaw(t, recs, with(MetaCount, "")) }, ErrNotSegment},
		{"wrong digest", func([]byte) []byte { return writeRaw(t, recs, with(MetaDigest, otherDigest)) }, ErrDigestMismatch},
		{"wrong max_ts", func([]byte) []byte { return writeRaw(t, recs, with(MetaMaxTS, "9000000000000000000")) }, ErrDigestMismatch},
		{"wrong base", func([]byte) []byte { return writeRaw(t, recs, with(MetaBase, "501")) }, ErrNotSegment},
		{"unknown format version", func([]byte) []byte { return writeRaw(t, recs, with(MetaFormatVersion, "3")) }, ErrUnsupportedVersion},
		{"rows out of order", func([]byte) []byte {
			swapped := append([]tiers.Record(nil), recs...)
			swapped[5], swapped[6] = swapped[6], swapped[5]
			return writeRaw(t, swapped, meta)
		}, ErrDigestMismatch},
		{"another schema", func([]byte) []byte {
			var buf bytes.Buffer
			type other struct {
				Offset int64  `parquet:"offset"`
				Value  string `parquet:"value"`
			}
			w := parquet.NewGenericWriter[other](&buf)
			w.Write([]other{{Offset: 500, Value: "x"}})
			for k, v := range with(MetaCount, "1") {
				w.SetKeyValueMetadata(k, v)
			}
			w.SetKeyValueMetadata(MetaLast, "500")
			w.Close()
			return buf.Bytes()
		}, ErrNotSegment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.damage(bytes.Clone(good))
			_, err := checkAll(b)
			if err == nil {
				t.Fatal("damage went unnoticed: Open, Scan and Verify all succeeded")
			}
			var ce *tiers.CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *tiers.CorruptionError", err)
			}
			if ce.Path != "damaged.parquet" {
				t.Fatalf("CorruptionError.Path = %q", ce.Path)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v does not wrap %v", err, tt.want)
			}
			t.Logf("%v", err)
		})
	}
}

// TestFooterBitFlips flips every bit of a small file's footer in turn: Open
// fails with a typed corruption error, or every query answers exactly the
// records written or fails with one before yielding a wrong record (a scan
// alone, without Verify after it, is what a read serves); and when a query
// fails, Verify fails too. Never a panic, never different records without
// an error.
func TestFooterBitFlips(t *testing.T) {
	recs := mixedRecords(60, 0)
	for i := range recs {
		if len(recs[i].Value) > 1024 {
			recs[i].Value = recs[i].Value[:1024]
		}
	}
	good, _ := writeBytes(t, "s", recs, Options{RowGroupRows: 25})
	footerLen := int(binary.LittleEndian.Uint32(good[len(good)-8:]))
	footerStart := len(good) - 8 - footerLen
	all := tiers.AllRecords()
	key := all
	key.HasKey, key.Key = true, "IF2406"
	tsRange := all
	tsRange.Since, tsRange.Until = recs[30].TS, recs[50].TS
	mid := all
	mid.From = 40
	queries := []tiers.Query{all, key, tsRange, mid}
	var detected, benign, failedReads int
	for pos := footerStart; pos < len(good); pos++ {
		for _, bit := range []int{0, 3, 5, 7} { // every byte; the low, high and two middle bits
			b := bytes.Clone(good)
			b[pos] ^= 1 << bit
			allocated := totalAlloc()
			r, err := Open(context.Background(), bytes.NewReader(b), int64(len(b)), "damaged.parquet")
			if a := totalAlloc() - allocated; a > maxOpenAlloc {
				t.Fatalf("flip %d at %d: Open allocated %d MiB for a %d-byte file", bit, pos, a>>20, len(b))
			}
			if err != nil {
				var ce *tiers.CorruptionError
				if !errors.As(err, &ce) {
					t.Fatalf("flip %d at %d: error %v is not a *tiers.CorruptionError", bit, pos, err)
				}
				detected++
				continue
			}
			failed := false
			for _, q := range queries {
				if scanChecked(t, fmt.Sprintf("flip %d at %d", bit, pos), r, q, matching(recs, q)) != nil {
					failed = true
				}
			}
			if failed {
				failedReads++
				if err := r.Verify(context.Background()); err == nil {
					t.Fatalf("flip %d at %d failed a read, and Verify finds nothing", bit, pos)
				}
			} else {
				benign++
			}
		}
	}
	t.Logf("footer of %d bytes: %d flips detected at Open, %d failed a read, %d harmless", footerLen, detected, failedReads, benign)
}

// maxOpenAlloc bounds what Open may allocate for a small file, however
// damaged: a length in the trailer or the footer must not be believed
// before it is checked against the bytes there are.
const maxOpenAlloc = 16 << 20

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// TestDamagedLengthsAllocateLittle: a footer length or a Thrift list or
// string length near 2^31 costs an error, not gigabytes of memory.
func TestDamagedLengthsAllocateLittle(t *testing.T) {
	good, _ := writeBytes(t, "s", mixedRecords(50, 0), Options{RowGroupRows: 20})
	_, start := footerOf(t, good)
	tests := map[string]func([]byte){
		"footer length 2^31":   func(b []byte) { binary.LittleEndian.PutUint32(b[len(b)-8:], 1<<31) },
		"footer length 2^32-1": func(b []byte) { binary.LittleEndian.PutUint32(b[len(b)-8:], 1<<32-1) },
	}
	// Every byte of the footer set to 0xff in turn: a varint continuation
	// run that makes some list or string length huge.
	for pos := start; pos < len(good)-13; pos += 3 {
		tests[fmt.Sprintf("footer byte %d = 0xff", pos)] = func(b []byte) { copy(b[pos:], []byte{0xff, 0xff, 0xff, 0xff, 0x07}) }
	}
	for name, damage := range tests {
		b := bytes.Clone(good)
		damage(b)
		allocated := totalAlloc()
		_, err := Open(context.Background(), bytes.NewReader(b), int64(len(b)), "x")
		if a := totalAlloc() - allocated; a > maxOpenAlloc {
			t.Fatalf("%s: Open allocated %d MiB for a %d-byte file", name, a>>20, len(b))
		}
		if err == nil {
			continue // the bytes hit something harmless
		}
		var ce *tiers.CorruptionError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: error %v is not a *tiers.CorruptionError", name, err)
		}
	}
}

// TestStoreErrorIsNotCorruption: a failing ReaderAt (a store outage) is
// reported as itself, not as a damaged file.
func TestStoreErrorIsNotCorruption(t *testing.T) {
	recs := mixedRecords(500, 0)
	good, _ := writeBytes(t, "s", recs, Options{RowGroupRows: 100})
	outage := errors.New("connection refused")
	fr := &failingReaderAt{b: good}
	r, err := Open(context.Background(), fr, int64(len(good)), "x")
	if err != nil {
		t.Fatal(err)
	}
	fr.err = outage
	for _, err = range r.Scan(context.Background(), tiers.AllRecords()) {
		if err != nil {
			break
		}
	}
	var ce *tiers.CorruptionError
	if !errors.Is(err, outage) || errors.As(err, &ce) {
		t.Fatalf("Scan error = %v, want the store's error and no CorruptionError", err)
	}
	if _, err := Open(context.Background(), fr, int64(len(good)), "x"); !errors.Is(err, outage) || errors.As(err, &ce) {
		t.Fatalf("Open error = %v, want the store's error and no CorruptionError", err)
	}
	if !strings.Contains(err.Error(), "x") {
		t.Fatalf("error %q does not name the file", err)
	}
}

type failingReaderAt struct {
	b   []byte
	err error
}

func (f *failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	return bytes.NewReader(f.b).ReadAt(p, off)
}

// FuzzOpen: arbitrary bytes through Open, Scan and Verify never panic, and
// every failure is a *tiers.CorruptionError.
func FuzzOpen(f *testing.F) {
	small := mixedRecords(12, 3)
	for i := range small {
		if len(small[i].Value) > 64 {
			small[i].Value = small[i].Value[:64]
		}
	}
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, "s", seqOf(small), Options{RowGroupRows: 5}); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(buf.Bytes()))
	f.Add(bytes.Clone(buf.Bytes()[:buf.Len()/2]))
	for _, name := range []string{"v1.1", "v1.2"} { // 1.1: read without checksums
		old, err := os.ReadFile("testdata/" + name + ".parquet")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(old)
	}
	// Format 1.2 as Write writes it for Version 1, and format 2 with every
	// kind of typed column.
	buf.Reset()
	if _, err := Write(context.Background(), &buf, "s", seqOf(small), Options{RowGroupRows: 5, Version: 1}); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(buf.Bytes()))
	buf.Reset()
	if _, err := Write(context.Background(), &buf, "s", seqOf(jsonRecords(12, 3)), columnOptions(Options{RowGroupRows: 5})); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(buf.Bytes()))
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := checkAll(b)
		var ce *tiers.CorruptionError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *tiers.CorruptionError", err)
		}
	})
}

// TestDictionaryBitFlipFailsTheScan: a scan alone (no Verify after it)
// never returns records a damaged dictionary page changed. parquet-go does
// not check a dictionary page's CRC; checkDictionaries does.
func TestDictionaryBitFlipFailsTheScan(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("format %d", version), func(t *testing.T) { testDictionaryBitFlipFailsTheScan(t, version) })
	}
}

func testDictionaryBitFlipFailsTheScan(t *testing.T, version int) {
	recs := mixedRecords(600, 100)
	good, _ := writeBytes(t, "s", recs, Options{RowGroupRows: 300, Version: version})
	f, err := parquet.OpenFile(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []int{leafOf(t, good, ColKey), leafOf(t, good, ColTags, "list", "element")} {
		md := f.Metadata().RowGroups[1].Columns[col].MetaData
		if md.DictionaryPageOffset <= 0 {
			t.Fatalf("column %d has no dictionary page", col)
		}
		for _, pos := range []int64{md.DataPageOffset - 1, md.DataPageOffset - 3} {
			b := append([]byte(nil), good...)
			b[pos] ^= 0x10
			ctx := context.Background()
			r, err := Open(ctx, bytes.NewReader(b), int64(len(b)), "damaged.parquet")
			if err != nil {
				t.Fatal(err)
			}
			var scanErr error
			i := 0
			for rec, err := range r.Scan(ctx, tiers.AllRecords()) {
				if err != nil {
					scanErr = err
					break
				}
				if !rec.Equal(&recs[i]) {
					t.Fatalf("column %d, flip at %d: record %d silently wrong: %+v, want %+v", col, pos, i, rec, recs[i])
				}
				i++
			}
			var ce *tiers.CorruptionError
			if !errors.As(scanErr, &ce) {
				t.Fatalf("column %d, flip at %d: scan error %v, want a *tiers.CorruptionError", col, pos, scanErr)
			}
			// A scan that starts inside the damaged row group fails too.
			q := tiers.AllRecords()
			q.From = recs[450].Offset
			for _, err := range r.Scan(ctx, q) {
				scanErr = err
				if err != nil {
					break
				}
			}
			if !errors.As(scanErr, &ce) {
				t.Fatalf("column %d, flip at %d: seeking scan error %v, want a *tiers.CorruptionError", col, pos, scanErr)
			}
		}
	}
}
