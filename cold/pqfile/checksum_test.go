package pqfile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tierd/tierd/tiers"
)

// v11Records are the records of testdata/v1.1.parquet, a file the format
// 1.1 writer (tierd before format 1.2) wrote with RowGroupRows 100, stream
// IF2406.trades and sealed_at 1795341700000000000.
func v11Records() []tiers.Record {
	recs := mixedRecords(300, 1000)
	for i := range recs {
		if len(recs[i].Value) > 300 {
			recs[i].Value = recs[i].Value[:300]
		}
	}
	return recs
}

// footerOf decodes b's Thrift footer.
func footerOf(t testing.TB, b []byte) (*format.FileMetaData, int) {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(b[len(b)-8:]))
	start := len(b) - 8 - n
	var md format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), b[start:len(b)-8], &md); err != nil {
		t.Fatal(err)
	}
	return &md, start
}

// rewriteFooter returns b with its footer decoded, changed by edit and
// encoded again: damage that keeps the footer well-formed.
func rewriteFooter(t testing.TB, b []byte, edit func(*format.FileMetaData)) []byte {
	t.Helper()
	md, start := footerOf(t, b)
	edit(md)
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), md)
	if err != nil {
		t.Fatal(err)
	}
	out := append(bytes.Clone(b[:start]), footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	return append(out, "PAR1"...)
}

// wantCorrupt fails unless err is a *tiers.CorruptionError wrapping want
// (when want is not nil).
func wantCorrupt(t testing.TB, err, want error) {
	t.Helper()
	var ce *tiers.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a *tiers.CorruptionError", err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("error %v does not wrap %v", err, want)
	}
}

// scanChecked runs q over r and checks the scan-alone property: every
// record yielded is the next one of want, in order, and an answer that
// ends without an error is all of want. It returns the scan's error.
func scanChecked(t testing.TB, what string, r *Reader, q tiers.Query, want []tiers.Record) error {
	t.Helper()
	i := 0
	for rec, err := range r.Scan(context.Background(), q) {
		if err != nil {
			var ce *tiers.CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("%s: scan error %v is not a *tiers.CorruptionError", what, err)
			}
			return err
		}
		if i >= len(want) || !rec.Equal(&want[i]) {
			t.Fatalf("%s: record %d is %s, not one that was written there", what, i, abbrev(rec))
		}
		i++
	}
	if i != len(want) {
		t.Fatalf("%s: %d of %d records and no error", what, i, len(want))
	}
	return nil
}

// matching is the records of recs that q matches, in order.
func matching(recs []tiers.Record, q tiers.Query) []tiers.Record {
	var out []tiers.Record
	for i := range recs {
		if q.Match(&recs[i]) && (q.Limit == 0 || len(out) < q.Limit) {
			out = append(out, recs[i])
		}
	}
	return out
}

// TestReadsFormat11: files written before format 1.2 stay readable, without
// its checksums: their bloom filters are not trusted (key reads read every
// row group) and a query that starts inside a row group reads it from its
// start.
func TestReadsFormat11(t *testing.T) {
	b, err := os.ReadFile("testdata/v1.1.parquet")
	if err != nil {
		t.Fatal(err)
	}
	recs := v11Records()
	r := openBytes(t, b)
	if r.Checksummed() {
		t.Fatal("a format 1.1 file reads as checksummed")
	}
	if v, _ := r.file.Lookup(MetaFormatVersion); v != "1.1" {
		t.Fatalf("testdata file is format %q", v)
	}
	if got := r.Meta(); got.Digest != digestOf(recs) || got.Base != 1000 || got.Count != 300 || got.SealedAt.UnixNano() != 1795341700000000000 {
		t.Fatalf("meta %+v does not describe v11Records", got)
	}
	if err := r.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	all := tiers.AllRecords()
	key := all
	key.HasKey, key.Key = true, "IF2406"
	absent := all
	absent.HasKey, absent.Key = true, "no-such-key"
	mid := all
	mid.From = 1150
	for name, q := range map[string]tiers.Query{"all": all, "key": key, "absent key": absent, "from the middle": mid} {
		before := r.RowGroupsRead()
		scanChecked(t, name, r, q, matching(recs, q))
		if q.HasKey && r.RowGroupsRead()-before != 3 {
			t.Fatalf("%s: read %d row groups: a 1.1 bloom filter must not prune", name, r.RowGroupsRead()-before)
		}
	}
}

// TestReadsFormat12: a file the format 1.2 writer wrote (before format 2,
// testdata/v1.2.parquet: v11Records, RowGroupRows 100, stream
// IF2406.trades, sealed_at 1795341700000000000) reads with all of 1.2's
// checks: metadata checksum, trusted bloom filters, seeks to a block.
func TestReadsFormat12(t *testing.T) {
	b, err := os.ReadFile("testdata/v1.2.parquet")
	if err != nil {
		t.Fatal(err)
	}
	recs := v11Records()
	r := openBytes(t, b)
	if v, _ := r.file.Lookup(MetaFormatVersion); v != "1.2" || !r.Checksummed() {
		t.Fatalf("testdata file is format %q, checksummed %t", v, r.Checksummed())
	}
	if got := r.Meta(); got.Digest != digestOf(recs) || got.Base != 1000 || got.Count != 300 || got.SealedAt.UnixNano() != 1795341700000000000 {
		t.Fatalf("meta %+v does not describe v11Records", got)
	}
	if err := r.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	all := tiers.AllRecords()
	key := all
	key.HasKey, key.Key = true, "IF2406"
	absent := all
	absent.HasKey, absent.Key = true, "no-such-key"
	mid := all
	mid.From = 1150
	for name, q := range map[string]tiers.Query{"all": all, "key": key, "absent key": absent, "from the middle": mid} {
		before := r.RowGroupsRead()
		scanChecked(t, name, r, q, matching(recs, q))
		if name == "absent key" && r.RowGroupsRead() != before {
			t.Fatalf("%s: read %d row groups: a 1.2 bloom filter prunes", name, r.RowGroupsRead()-before)
		}
	}
	// A flipped bit in the metadata is found as in any 1.2 file.
	wantCorrupt(t, openErr(bytes.Replace(b, []byte("IF2406.trades"), []byte("IF2406.tradez"), 1)), nil)
}

// openErr opens b and returns the error.
func openErr(b []byte) error {
	_, err := Open(context.Background(), bytes.NewReader(b), int64(len(b)), "t.parquet")
	return err
}

// TestFormat12Metadata: Write records every row group's rows, ts bounds,
// bloom filter CRC and checksum blocks within the caps, and the metadata
// checksum; Open trusts them.
func TestFormat12Metadata(t *testing.T) {
	for version, want := range map[int]string{1: "1.2", 2: "2.0"} {
		t.Run(want, func(t *testing.T) { testFormatMetadata(t, version, want) })
	}
}

func testFormatMetadata(t *testing.T, version int, wantVersion string) {
	recs := uniformRecords(30_000, 5, 100, 20, 1_700_000_000_000_000_000)
	recs[17].Value = make([]byte, 300<<10) // one record larger than a block
	b, info := writeBytes(t, "s", recs, Options{RowGroupRows: 12_000, Version: version})
	r := openBytes(t, b)
	if !r.Checksummed() || info.RowGroups != 3 {
		t.Fatalf("checksummed %t, %d row groups", r.Checksummed(), info.RowGroups)
	}
	if v, _ := r.file.Lookup(MetaFormatVersion); v != wantVersion {
		t.Fatalf("format_version %q", v)
	}
	next := 0
	for gi := range r.groups {
		g := &r.groups[gi]
		if g.meta == nil || !g.meta.hasBloom {
			t.Fatalf("row group %d: no 1.2 metadata or no bloom CRC", gi)
		}
		for bi, bl := range g.meta.blocks {
			var bytes int
			for i := range bl.rows {
				bytes += tiers.EncodedLen(&recs[next+int(i)])
				if i < bl.rows-1 && bytes >= blockMaxBytes {
					t.Fatalf("row group %d block %d goes on past %d bytes", gi, bi, blockMaxBytes)
				}
			}
			if bi < len(g.meta.blocks)-1 && bl.rows < blockMaxRows && bytes < blockMaxBytes {
				t.Fatalf("row group %d block %d ended early: %d rows, %d bytes", gi, bi, bl.rows, bytes)
			}
			next += int(bl.rows)
		}
	}
	if next != len(recs) {
		t.Fatalf("blocks cover %d records of %d", next, len(recs))
	}
	sameRecords(t, collect(t, r.Scan(context.Background(), tiers.AllRecords())), recs)
	if err := r.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestFooterColumnSwaps: footer edits that point a column at another
// column's pages (the keys-replaced-by-tags and ts-in-1970 reports) are
// found at Open, in format 1.2 and 1.1 files alike.
func TestFooterColumnSwaps(t *testing.T) {
	v11, err := os.ReadFile("testdata/v1.1.parquet")
	if err != nil {
		t.Fatal(err)
	}
	v12, _ := writeBytes(t, "IF2406.trades", v11Records(), Options{RowGroupRows: 100})
	edits := map[string]func(*format.FileMetaData){
		"key dictionary is the tags dictionary": func(md *format.FileMetaData) {
			c := md.RowGroups[1].Columns
			c[2].MetaData.DictionaryPageOffset = c[3].MetaData.DictionaryPageOffset
			c[2].MetaData.DataPageOffset = c[3].MetaData.DataPageOffset
		},
		"ts pages are the offset pages": func(md *format.FileMetaData) {
			c := md.RowGroups[0].Columns
			c[1].MetaData.DataPageOffset = c[0].MetaData.DataPageOffset
		},
		"key and tags chunks swapped": func(md *format.FileMetaData) {
			c := md.RowGroups[2].Columns
			c[2].MetaData, c[3].MetaData = c[3].MetaData, c[2].MetaData
		},
		"value chunk is LZ4": func(md *format.FileMetaData) {
			md.RowGroups[0].Columns[4].MetaData.Codec = format.Lz4Raw
		},
		"chunk in another file": func(md *format.FileMetaData) {
			md.RowGroups[0].Columns[4].FilePath = "/etc/passwd"
		},
		"offset index length huge": func(md *format.FileMetaData) {
			md.RowGroups[0].Columns[0].OffsetIndexLength = 1 << 30
		},
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"1.1", v11}, {"1.2", v12}} {
		for name, edit := range edits {
			t.Run(f.name+"/"+name, func(t *testing.T) {
				b := rewriteFooter(t, f.b, edit)
				_, err := Open(context.Background(), bytes.NewReader(b), int64(len(b)), "x")
				wantCorrupt(t, err, ErrNotSegment)
				t.Log(err)
			})
		}
	}
}

// TestBlockChecksum: rows that decode cleanly but are not the rows the
// metadata describes (here: another file's rows under this file's tierd
// metadata) fail at the first block that differs, and no row of that block
// is yielded.
func TestBlockChecksum(t *testing.T) {
	recs := uniformRecords(9000, 0, 100, 10, 0)
	good, _ := writeBytes(t, "s", recs, Options{})
	other := append([]tiers.Record(nil), recs...)
	other[5000].Key = "k-other"
	bad, _ := writeBytes(t, "s", other, Options{})
	gmd, _ := footerOf(t, good)
	b := rewriteFooter(t, bad, func(md *format.FileMetaData) { md.KeyValueMetadata = gmd.KeyValueMetadata })
	r := openBytes(t, b)
	var got []tiers.Record
	var scanErr error
	for rec, err := range r.Scan(context.Background(), tiers.AllRecords()) {
		if err != nil {
			scanErr = err
			break
		}
		got = append(got, rec)
	}
	wantCorrupt(t, scanErr, ErrDigestMismatch)
	// The damaged block [start, end) is the one holding offset 5000.
	var start, end int
	for _, bl := range r.groups[0].meta.blocks {
		start, end = end, end+int(bl.rows)
		if end > 5000 {
			break
		}
	}
	if len(got) != start || end == len(recs) {
		t.Fatalf("%d records before the error, want the %d before the damaged block [%d, %d)", len(got), start, start, end)
	}
	sameRecords(t, got, recs[:start])
	// A scan from inside the damaged block fails too, without a record.
	q := tiers.AllRecords()
	q.From = uint64(end - 1)
	scanChecked(t, "from inside the block", r, q, nil)
	// One from the block after it is served (it checks out).
	q.From = uint64(end)
	scanChecked(t, "after the block", r, q, recs[end:])
	wantCorrupt(t, r.Verify(context.Background()), ErrDigestMismatch)
}

// TestMetadataChecksum: any change to a tierd key, a tierd key added or
// removed, or a downgraded version string is found by the checksum.
func TestMetadataChecksum(t *testing.T) {
	good, _ := writeBytes(t, "s", mixedRecords(500, 0), Options{RowGroupRows: 200})
	set := func(k, v string) func(*format.FileMetaData) {
		return func(md *format.FileMetaData) {
			for i := range md.KeyValueMetadata {
				if md.KeyValueMetadata[i].Key == k {
					if v == "" {
						md.KeyValueMetadata = append(md.KeyValueMetadata[:i], md.KeyValueMetadata[i+1:]...)
					} else {
						md.KeyValueMetadata[i].Value = v
					}
					return
				}
			}
			md.KeyValueMetadata = append(md.KeyValueMetadata, format.KeyValue{Key: k, Value: v})
		}
	}
	md, _ := footerOf(t, good)
	var rowGroups string
	for _, kv := range md.KeyValueMetadata {
		if kv.Key == MetaRowGroups {
			rowGroups = kv.Value
		}
	}
	tests := []struct {
		name string
		edit func(*format.FileMetaData)
		want error
	}{
		{"max_ts changed", set(MetaMaxTS, "1795341600123456790"), ErrDigestMismatch},
		{"version 1.2 → 1.0", set(MetaFormatVersion, "1.0"), ErrDigestMismatch},
		{"version 1.2 → 1.3", set(MetaFormatVersion, "1.3"), ErrDigestMismatch},
		{"a row group's ts bounds changed", set(MetaRowGroups, strings.Replace(rowGroups, " ", "  ", 1)), ErrDigestMismatch},
		{"tierd key added", set("tierd.extra", "x"), ErrDigestMismatch},
		{"sealed_at removed", set(MetaSealedAt, ""), nil},
		{"checksum removed", set(MetaChecksum, ""), ErrNotSegment},
		{"checksum not hex", set(MetaChecksum, "zzzzzzzz"), ErrDigestMismatch},
		{"tierd.row_groups removed", set(MetaRowGroups, ""), ErrDigestMismatch},
		{"version 1.02", set(MetaFormatVersion, "1.02"), ErrNotSegment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := rewriteFooter(t, good, tt.edit)
			_, err := Open(context.Background(), bytes.NewReader(b), int64(len(b)), "x")
			wantCorrupt(t, err, tt.want)
		})
	}
	// A key outside tierd.* is not ours: it changes nothing.
	b := rewriteFooter(t, good, set("engine.note", "hello"))
	openBytes(t, b)
}

// TestBloomFilterDamage flips every bit of every row group's key bloom
// filter: a key read still returns every matching record (the damaged
// filter is not trusted), and Verify reports ErrBloomFilter.
func TestBloomFilterDamage(t *testing.T) {
	recs := uniformRecords(300, 0, 20, 40, 0)
	good, _ := writeBytes(t, "s", recs, Options{RowGroupRows: 150})
	r := openBytes(t, good)
	q := tiers.AllRecords()
	q.HasKey, q.Key = true, "k7"
	want := matching(recs, q)
	flips := 0
	for gi := range r.groups {
		md := &r.file.Metadata().RowGroups[gi].Columns[r.colKey].MetaData
		for pos := md.BloomFilterOffset; pos < md.BloomFilterOffset+int64(md.BloomFilterLength); pos++ {
			for bit := range 8 {
				b := bytes.Clone(good)
				b[pos] ^= 1 << bit
				flips++
				r, err := Open(context.Background(), bytes.NewReader(b), int64(len(b)), "x")
				if err != nil {
					t.Fatalf("flip at %d.%d: Open: %v", pos, bit, err)
				}
				scanChecked(t, "key read", r, q, want)
				if ig := r.IgnoredBloomFilters(); len(ig) != 1 || !errors.Is(ig[0], ErrBloomFilter) {
					t.Fatalf("flip at %d.%d: ignored bloom filters %v, want the damaged one", pos, bit, ig)
				}
				wantCorrupt(t, r.Verify(context.Background()), ErrBloomFilter)
			}
		}
	}
	t.Logf("%d bloom filter bits flipped", flips)
}

// TestVerifyCatchesBloomFalseNegative: a filter that is well-formed and
// matches its checksum but rules out a key its group holds (a writer bug,
// or a 1.1 file's damaged filter) is reported by Verify.
func TestVerifyCatchesBloomFalseNegative(t *testing.T) {
	b, err := os.ReadFile("testdata/v1.1.parquet")
	if err != nil {
		t.Fatal(err)
	}
	r := openBytes(t, b)
	md := &r.file.Metadata().RowGroups[0].Columns[r.colKey].MetaData
	// Clear the bitset: every key is then ruled out.
	for pos := md.BloomFilterOffset + int64(md.BloomFilterLength) - 32; pos < md.BloomFilterOffset+int64(md.BloomFilterLength); pos++ {
		b[pos] = 0
	}
	r = openBytes(t, b)
	scanChecked(t, "all", r, tiers.AllRecords(), v11Records())
	wantCorrupt(t, r.Verify(context.Background()), ErrBloomFilter)
}

// TestOffsetIndexDamage flips every bit of the page index area (column and
// offset indexes, between the last bloom filter and the footer): a read that
// starts inside a row group (the one user of the offset index) answers
// exactly or fails with corruption, and when it fails Verify fails too.
func TestOffsetIndexDamage(t *testing.T) {
	recs := uniformRecords(6000, 0, 100, 10, 0)
	good, _ := writeBytes(t, "s", recs, Options{})
	r := openBytes(t, good)
	lo, hi := int64(len(good)), int64(0)
	for _, c := range r.file.Metadata().RowGroups[0].Columns {
		lo = min(lo, c.OffsetIndexOffset, c.ColumnIndexOffset)
		hi = max(hi, c.OffsetIndexOffset+int64(c.OffsetIndexLength), c.ColumnIndexOffset+int64(c.ColumnIndexLength))
	}
	q := tiers.AllRecords()
	q.From = 4500
	failed := 0
	for pos := lo; pos < hi; pos++ {
		for _, bit := range []byte{0x01, 0x10, 0x80} {
			b := bytes.Clone(good)
			b[pos] ^= bit
			r, err := Open(context.Background(), bytes.NewReader(b), int64(len(b)), "x")
			if err != nil {
				t.Fatalf("flip at %d: Open: %v", pos, err)
			}
			if scanChecked(t, "from 4500", r, q, recs[4500:]) != nil {
				failed++
				if err := r.Verify(context.Background()); err == nil {
					t.Fatalf("flip %#x at %d failed a read, and Verify finds nothing", bit, pos)
				}
			}
		}
	}
	t.Logf("page index of %d bytes: %d flips failed the seeking read", hi-lo, failed)
}

// FuzzDecodeRowGroups: decodeRowGroups never panics, and what it accepts
// is canonical and within the block caps.
func FuzzDecodeRowGroups(f *testing.F) {
	b, _ := writeBytes(f, "s", mixedRecords(900, 0), Options{RowGroupRows: 400})
	md, _ := footerOf(f, b)
	for _, kv := range md.KeyValueMetadata {
		if kv.Key == MetaRowGroups {
			f.Add(kv.Value, 3)
		}
	}
	f.Add("1 0 0 - 1:00000000\n", 1)
	f.Add("5 -3 7 0a0b0c0d 2:ffffffff,3:00000001\n", 1)
	f.Fuzz(func(t *testing.T, s string, groups int) {
		gs, err := decodeRowGroups(s, groups)
		if err != nil {
			return
		}
		if encodeRowGroups(gs) != s || len(gs) != groups {
			t.Fatalf("accepted %q as %d groups, not canonical", s, len(gs))
		}
		for _, g := range gs {
			var n int64
			for _, bl := range g.blocks {
				if bl.rows <= 0 || bl.rows > blockMaxRows {
					t.Fatalf("block of %d rows accepted", bl.rows)
				}
				n += bl.rows
			}
			if n != g.rows || g.minTS > g.maxTS {
				t.Fatalf("group %+v accepted", g)
			}
		}
	})
}
