package pqfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// seqOf yields recs without errors.
func seqOf(recs []tiers.Record) iter.Seq2[tiers.Record, error] {
	return func(yield func(tiers.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// digestOf is the reference digest: tiers.Digester over recs.
func digestOf(recs []tiers.Record) tiers.Digest {
	d := tiers.NewDigester()
	for i := range recs {
		d.Add(&recs[i])
	}
	return d.Sum()
}

// writeBytes writes recs as a file in memory.
func writeBytes(t testing.TB, stream string, recs []tiers.Record, opts Options) ([]byte, Info) {
	t.Helper()
	var buf bytes.Buffer
	info, err := Write(context.Background(), &buf, stream, seqOf(recs), opts)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if info.Meta.Bytes != int64(buf.Len()) {
		t.Fatalf("Info.Meta.Bytes = %d, file is %d bytes", info.Meta.Bytes, buf.Len())
	}
	return buf.Bytes(), info
}

// openBytes opens an in-memory file.
func openBytes(t testing.TB, b []byte) *Reader {
	t.Helper()
	r, err := Open(context.Background(), bytes.NewReader(b), int64(len(b)), "mem.parquet")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

// collect drains a Scan.
func collect(t testing.TB, seq iter.Seq2[tiers.Record, error]) []tiers.Record {
	t.Helper()
	var out []tiers.Record
	for r, err := range seq {
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// sameRecords fails t unless got and want are identical field by field.
func sameRecords(t testing.TB, got, want []tiers.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Equal(&want[i]) {
			t.Fatalf("record %d:\n got  %+v\n want %+v", i, abbrev(got[i]), abbrev(want[i]))
		}
	}
}

func abbrev(r tiers.Record) string {
	v := r.Value
	if len(v) > 32 {
		v = v[:32]
	}
	return fmt.Sprintf("{off %d ts %d key %q tags %q value[%d] %x…}", r.Offset, r.TS, r.Key, r.Tags, len(r.Value), v)
}

// mixedRecords is n records from base covering the awkward cases: absent
// and unicode keys, no/several/empty-string tags, empty, binary and large
// values, ts out of order and negative.
func mixedRecords(n int, base uint64) []tiers.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	all256 := make([]byte, 256)
	for i := range all256 {
		all256[i] = byte(i)
	}
	large := make([]byte, 512<<10)
	for i := range large {
		large[i] = byte(rng.IntN(256))
	}
	keys := []string{"", "IF2406", "日本語キー", "emoji-🚀", "a", "ключ"}
	tagSets := [][]string{nil, {"fill"}, {"fill", "buy", "🚀"}, {""}, {"", "x", ""}}
	recs := make([]tiers.Record, n)
	for i := range recs {
		r := &recs[i]
		r.Offset = base + uint64(i)
		r.TS = 1_795_341_600_123_456_789 + int64(i)*1_000_003
		switch i % 7 {
		case 3:
			r.TS -= 5_000_000_000 // out of order
		case 5:
			r.TS = -int64(i) * 999_999_937 // before 1970
		}
		r.Key = keys[i%len(keys)]
		r.Tags = tagSets[i%len(tagSets)]
		switch i % 5 {
		case 0:
			r.Value = nil
		case 1:
			r.Value = all256
		case 2:
			r.Value = fmt.Appendf(nil, `{"px":%d.%02d,"qty":%d}`, 3500+i%50, i%100, i%9)
		case 3:
			r.Value = []byte{0}
		case 4:
			r.Value = all256[i%256:]
		}
		if i%997 == 11 {
			r.Value = large
		}
	}
	return recs
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		base uint64
		n    int
		opts Options
	}{
		{"one record", 0, 1, Options{}},
		{"mixed defaults", 0, 3000, Options{}},
		{"base near 2^40, small row groups", 1<<40 - 17, 5000, Options{RowGroupRows: 700, Level: 1}},
		{"byte-capped row groups, best level", 12345, 2500, Options{RowGroupBytes: 256 << 10, Level: 19}},
	}
	for _, version := range []int{1, 2} {
		for _, tt := range tests {
			tt.opts.Version = version
			t.Run(fmt.Sprintf("format %d/%s", version, tt.name), func(t *testing.T) { testRoundTrip(t, tt.base, tt.n, tt.opts) })
		}
	}
}

func testRoundTrip(t *testing.T, base uint64, n int, opts Options) {
	recs := mixedRecords(n, base)
	b, info := writeBytes(t, "IF2406.trades", recs, opts)
	want := tiers.SegmentMeta{
		Stream: "IF2406.trades", Base: base, Last: base + uint64(n) - 1, Count: uint64(n),
		MinTS: math.MaxInt64, MaxTS: math.MinInt64, Digest: digestOf(recs), Bytes: int64(len(b)),
	}
	for _, r := range recs {
		want.MinTS, want.MaxTS = min(want.MinTS, r.TS), max(want.MaxTS, r.TS)
	}
	if info.Meta != want {
		t.Fatalf("Write Info.Meta = %+v\nwant %+v", info.Meta, want)
	}
	r := openBytes(t, b)
	want.Placements = tiers.Of(tiers.Cold)
	if r.Meta() != want {
		t.Fatalf("Reader.Meta = %+v\nwant %+v", r.Meta(), want)
	}
	if r.RowGroups() != info.RowGroups {
		t.Fatalf("reader sees %d row groups, writer made %d", r.RowGroups(), info.RowGroups)
	}
	sameRecords(t, collect(t, r.Scan(context.Background(), tiers.AllRecords())), recs)
	if err := r.Verify(context.Background()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestWriteRejects(t *testing.T) {
	good := mixedRecords(3, 10)
	gap := slices.Clone(good)
	gap[2].Offset = 99
	badKey := slices.Clone(good)
	badKey[1].Key = "\xff"
	tests := []struct {
		name    string
		stream  string
		records iter.Seq2[tiers.Record, error]
		want    error
	}{
		{"no records", "s", seqOf(nil), ErrEmptySegment},
		{"offset gap", "s", seqOf(gap), ErrNotDense},
		{"bad stream name", "../etc", seqOf(good), tiers.ErrInvalidStreamName},
		{"invalid utf-8 key", "s", seqOf(badKey), tiers.ErrInvalidRecord},
		{"iterator error", "s", func(yield func(tiers.Record, error) bool) {
			if yield(good[0], nil) {
				yield(tiers.Record{}, io.ErrUnexpectedEOF)
			}
		}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Write(context.Background(), io.Discard, tt.stream, tt.records, Options{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Write error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWriteCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Write(ctx, io.Discard, "s", seqOf(mixedRecords(10, 0)), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write error = %v, want context.Canceled", err)
	}
}

// TestWriteCopiesReusedBuffers: an iterator that reuses one value buffer
// and one tags slice for every record must still produce the right file.
func TestWriteCopiesReusedBuffers(t *testing.T) {
	recs := mixedRecords(1500, 0)
	reusing := func(yield func(tiers.Record, error) bool) {
		var val []byte
		var tags []string
		for _, r := range recs {
			val = append(val[:0], r.Value...)
			tags = append(tags[:0], r.Tags...)
			r.Value, r.Tags = val, tags
			if !yield(r, nil) {
				return
			}
			clear(val)
			clear(tags)
		}
	}
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, "s", reusing, Options{}); err != nil {
		t.Fatal(err)
	}
	r := openBytes(t, buf.Bytes())
	sameRecords(t, collect(t, r.Scan(context.Background(), tiers.AllRecords())), recs)
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r     io.ReaderAt
	bytes atomic.Int64
	reads atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	n, err := c.r.ReadAt(p, off)
	c.bytes.Add(int64(n))
	return n, err
}

// uniformRecords is n records of ~valueSize bytes, key "k<i%keys>", ts
// increasing by 1 ms from ts0.
func uniformRecords(n int, base uint64, valueSize, keys int, ts0 int64) []tiers.Record {
	rng := rand.New(rand.NewPCG(3, 4))
	recs := make([]tiers.Record, n)
	for i := range recs {
		v := make([]byte, valueSize)
		for j := range v {
			v[j] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)]
		}
		recs[i] = tiers.Record{
			Offset: base + uint64(i),
			TS:     ts0 + int64(i)*1_000_000,
			Key:    fmt.Sprintf("k%d", i%keys),
			Tags:   []string{"t"},
			Value:  v,
		}
	}
	return recs
}

func TestRowGroupPruning(t *testing.T) {
	const n, perGroup = 20_000, 500
	const base, ts0 = 1000, int64(1_700_000_000_000_000_000)
	recs := uniformRecords(n, base, 200, 50, ts0)
	b, info := writeBytes(t, "s", recs, Options{RowGroupRows: perGroup})
	if info.RowGroups != n/perGroup {
		t.Fatalf("%d row groups, want %d", info.RowGroups, n/perGroup)
	}
	r := openBytes(t, b)
	for i, g := range r.file.RowGroups() {
		if g.NumRows() > perGroup {
			t.Fatalf("row group %d has %d rows, cap %d", i, g.NumRows(), perGroup)
		}
	}
	all := tiers.AllRecords()
	offsetRange := all
	offsetRange.From, offsetRange.To = base+5100, base+5299 // 1 % of the rows, in one row group
	tsRange := all
	tsRange.Since, tsRange.Until = ts0+int64(7250)*1e6, ts0+int64(8250)*1e6 // rows 7250..8249: 3 groups
	absentKey := all
	absentKey.HasKey, absentKey.Key = true, "no-such-key"
	presentKey := all
	presentKey.HasKey, presentKey.Key = true, "k7"
	limited := all
	limited.From, limited.Limit = base+2000, 10
	tests := []struct {
		name       string
		q          tiers.Query
		wantGroups int
		maxGroups  int // for bloom filters, which may answer a false "maybe"
	}{
		{"offset range 1%", offsetRange, 1, 1},
		{"ts range", tsRange, 3, 3},
		{"absent key", absentKey, 0, 2},
		{"present key", presentKey, n / perGroup, n / perGroup},
		{"limit", limited, 1, 1},
		{"offsets past the end", tiers.Query{From: base + n, To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := &countingReaderAt{r: bytes.NewReader(b)}
			r, err := Open(context.Background(), cr, int64(len(b)), "mem")
			if err != nil {
				t.Fatal(err)
			}
			openBytes := cr.bytes.Load()
			got := collect(t, r.Scan(context.Background(), tt.q))
			var want []tiers.Record
			for i := range recs {
				if tt.q.Match(&recs[i]) && (tt.q.Limit == 0 || len(want) < tt.q.Limit) {
					want = append(want, recs[i])
				}
			}
			sameRecords(t, got, want)
			if g := r.RowGroupsRead(); g < tt.wantGroups || g > tt.maxGroups {
				t.Fatalf("read %d row groups, want %d..%d", g, tt.wantGroups, tt.maxGroups)
			}
			if tt.name == "offset range 1%" {
				total := cr.bytes.Load()
				t.Logf("open read %d bytes, open+scan %d of %d (%.1f %%) in %d reads",
					openBytes, total, len(b), 100*float64(total)/float64(len(b)), cr.reads.Load())
				if total > int64(len(b))/10 {
					t.Fatalf("a 1%% offset-range query read %d of %d bytes (> 10 %%)", total, len(b))
				}
			}
		})
	}
}

// TestSeekWithinRowGroup: a query starting deep inside one large row group
// reads from the page holding its first offset, not the group's start.
func TestSeekWithinRowGroup(t *testing.T) {
	const n = 40_000
	recs := uniformRecords(n, 0, 300, 10, 0)
	b, info := writeBytes(t, "s", recs, Options{})
	if info.RowGroups != 1 {
		t.Fatalf("%d row groups, want 1", info.RowGroups)
	}
	cr := &countingReaderAt{r: bytes.NewReader(b)}
	r, err := Open(context.Background(), cr, int64(len(b)), "mem")
	if err != nil {
		t.Fatal(err)
	}
	q := tiers.AllRecords()
	q.From, q.To = n-400, n-1 // the last 1 %
	sameRecords(t, collect(t, r.Scan(context.Background(), q)), recs[n-400:])
	total := cr.bytes.Load()
	t.Logf("read %d of %d bytes (%.1f %%)", total, len(b), 100*float64(total)/float64(len(b)))
	if total > int64(len(b))/5 {
		t.Fatalf("read %d of %d bytes for the last 1 %% of one row group: pages were not skipped", total, len(b))
	}
}

// TestScanStopsEarly: breaking out of a Scan stops it cleanly, and records
// keep their bytes after the loop moves on.
func TestScanStopsEarly(t *testing.T) {
	recs := mixedRecords(2000, 0)
	r := openBytes(t, must(writeBytes(t, "s", recs, Options{RowGroupRows: 300})))
	var got []tiers.Record
	for rec, err := range r.Scan(context.Background(), tiers.AllRecords()) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec)
		if len(got) == 1000 {
			break
		}
	}
	runtime.GC()
	sameRecords(t, got, recs[:1000])
}

func must(b []byte, _ Info) []byte { return b }

// TestMemoryBounded writes ~200 MiB of records through io.Discard and checks
// that the live heap stays well below the data size: Write holds about one
// row group, not the file.
func TestMemoryBounded(t *testing.T) {
	const valueSize = 4 << 10
	const n = 200 << 20 / valueSize
	const rgBytes = 8 << 20
	val := make([]byte, valueSize)
	rng := rand.New(rand.NewPCG(5, 6))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	var peak uint64
	gen := func(yield func(tiers.Record, error) bool) {
		for i := range n {
			for j := 0; j < len(val); j += 8 {
				val[j] = byte(rng.IntN(256)) // partly random: zstd cannot collapse it
			}
			if i%256 == 255 { // every MiB: what does Write keep alive?
				runtime.GC()
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
			if !yield(tiers.Record{Offset: uint64(i), TS: int64(i), Key: "k", Value: val}, nil) {
				return
			}
		}
	}
	info, err := Write(context.Background(), io.Discard, "s", gen, Options{RowGroupBytes: rgBytes})
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(peak) - int64(before)
	t.Logf("%d records, %d MiB in %d row groups, file %d MiB; live heap grew by at most %.1f MiB",
		n, n*valueSize>>20, info.RowGroups, info.Meta.Bytes>>20, float64(grew)/(1<<20))
	if info.RowGroups < 20 {
		t.Fatalf("only %d row groups for 200 MiB with an 8 MiB cap", info.RowGroups)
	}
	if grew > 3*rgBytes {
		t.Fatalf("live heap grew by %.1f MiB writing 200 MiB; bound is 3× the %d MiB row-group cap", float64(grew)/(1<<20), rgBytes>>20)
	}
}

// TestWriteToFile writes to a real file and reads it back through os.File.
func TestWriteToFile(t *testing.T) {
	recs := mixedRecords(1000, 7)
	path := filepath.Join(t.TempDir(), "00000000000000000007-00000000000000001006.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Write(context.Background(), f, "s", seqOf(recs), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != info.Meta.Bytes {
		t.Fatalf("file is %d bytes, Info says %d", st.Size(), info.Meta.Bytes)
	}
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := Open(context.Background(), f, st.Size(), path)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, collect(t, r.Scan(context.Background(), tiers.AllRecords())), recs)
	if err := r.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentScans: one Reader serves several Scans at once (a cold
// reader shares it between requests).
func TestConcurrentScans(t *testing.T) {
	recs := mixedRecords(3000, 0)
	r := openBytes(t, must(writeBytes(t, "s", recs, Options{RowGroupRows: 250})))
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			q := tiers.AllRecords()
			q.From, q.To = uint64(w*700), uint64(min(w*700+900, len(recs)-1))
			var got []tiers.Record
			for rec, err := range r.Scan(context.Background(), q) {
				if err != nil {
					errs <- err
					return
				}
				got = append(got, rec)
			}
			want := recs[q.From : q.To+1]
			if len(got) != len(want) {
				errs <- fmt.Errorf("worker %d: %d records, want %d", w, len(got), len(want))
				return
			}
			for i := range want {
				if !got[i].Equal(&want[i]) {
					errs <- fmt.Errorf("worker %d: record %d differs", w, i)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRandomValuesSize: a segment of incompressible binary values is at
// most 1.05× its values' bytes. parquet-go writes each page's min and max
// into its data page header unless told not to, which for 200 KiB values
// copied every value page's bounds twice into the file (a 2.39× object).
func TestRandomValuesSize(t *testing.T) {
	const n, valueSize = 100, 200 << 10
	rng := rand.New(rand.NewPCG(7, 8))
	recs := make([]tiers.Record, n)
	var valueBytes int
	for i := range recs {
		v := make([]byte, valueSize)
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		recs[i] = tiers.Record{Offset: uint64(i), TS: int64(i) * 1e9, Key: fmt.Sprintf("k%d", i%7), Value: v}
		valueBytes += len(v)
	}
	b, info := writeBytes(t, "s", recs, Options{})
	ratio := float64(len(b)) / float64(valueBytes)
	t.Logf("%d values of %d KiB (%d bytes) in a %d-byte file (%d row groups): %.3f×", n, valueSize>>10, valueBytes, len(b), info.RowGroups, ratio)
	if ratio > 1.05 {
		t.Fatalf("file is %.3f× its values' bytes, want ≤ 1.05×", ratio)
	}
	sameRecords(t, collect(t, openBytes(t, b).Scan(context.Background(), tiers.AllRecords())), recs)
}
