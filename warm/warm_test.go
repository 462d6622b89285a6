package warm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/tiers"
)

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name     string
		interval int
		base     uint64
		n        int
	}{
		{"one record", 0, 0, 1},
		{"default interval", 0, 1000, 4000},
		{"interval 1", 1, 7, 700},
		{"interval 7 partial last block", 7, 1 << 40, 1000},
		{"base near the top of the offset space", 16, math.MaxUint64 - 99, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{IndexInterval: tc.interval})
			recs := genRecords(uint64(tc.n), tc.base, tc.n)
			meta := commitSegment(t, s, "IF2406", recs)

			minTS, maxTS := recs[0].TS, recs[0].TS
			for _, r := range recs {
				minTS, maxTS = min(minTS, r.TS), max(maxTS, r.TS)
			}
			want := tiers.SegmentMeta{
				Stream: "IF2406", Base: tc.base, Last: tc.base + uint64(tc.n) - 1, Count: uint64(tc.n),
				Bytes: fileSize(t, s.Path("IF2406", tc.base)), MinTS: minTS, MaxTS: maxTS,
				Digest: digestOf(recs), Placements: tiers.Of(tiers.Warm),
			}
			if meta != want {
				t.Fatalf("Commit meta\n got %+v\nwant %+v", meta, want)
			}
			r := acquire(t, s, "IF2406", tc.base)
			if got := r.Meta(); got != want {
				t.Fatalf("Reader meta\n got %+v\nwant %+v", got, want)
			}
			for i := range recs {
				got, err := r.Get(recs[i].Offset)
				if err != nil {
					t.Fatalf("Get(%d): %v", recs[i].Offset, err)
				}
				if !got.Equal(&recs[i]) {
					t.Fatalf("Get(%d) = %+v, want %+v", recs[i].Offset, got, recs[i])
				}
			}
			for _, off := range []uint64{tc.base - 1, tc.base + uint64(tc.n)} {
				if off >= tc.base && off <= want.Last {
					continue // wrapped around the offset space
				}
				if _, err := r.Get(off); !errors.Is(err, ErrOffsetOutOfRange) {
					t.Errorf("Get(%d) outside the segment: %v, want ErrOffsetOutOfRange", off, err)
				}
			}
			if err := r.Verify(); err != nil {
				t.Fatalf("Verify: %v", err)
			}

			mid := recs[len(recs)/2]
			queries := map[string]tiers.Query{
				"all":                 allQuery(),
				"offset range":        {From: tc.base + uint64(tc.n)/5, To: tc.base + uint64(tc.n)*3/5, Since: math.MinInt64, Until: math.MaxInt64},
				"from one offset":     {From: mid.Offset, To: mid.Offset, Since: math.MinInt64, Until: math.MaxInt64},
				"before base":         {From: 0, To: tc.base - 1, Since: math.MinInt64, Until: math.MaxInt64},
				"time range":          {To: math.MaxUint64, Since: mid.TS - 200_000, Until: mid.TS + 300_000},
				"time after all":      {To: math.MaxUint64, Since: maxTS + 1, Until: math.MaxInt64},
				"until exclusive":     {To: math.MaxUint64, Since: math.MinInt64, Until: minTS},
				"key":                 {To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64, HasKey: true, Key: "alpha"},
				"absent key":          {To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64, HasKey: true, Key: "no-such-key"},
				"records without key": {To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64, HasKey: true},
				"tag":                 {To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64, Tag: "fill"},
				"key tag time offset": {From: tc.base + 10, To: math.MaxUint64, Since: minTS + 50_000, Until: mid.TS, HasKey: true, Key: "k-3", Tag: "buy"},
			}
			for name, q := range queries {
				got, err := collect(r, q)
				if err != nil {
					t.Fatalf("%s: Scan: %v", name, err)
				}
				sameRecords(t, name, got, filter(recs, q))
			}
		})
	}
}

// TestScanRecordsOwnTheirBytes checks that records from Scan and Get stay
// intact after the reader is released and its mapping is gone.
func TestScanRecordsOwnTheirBytes(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	recs := genRecords(3, 0, 300)
	commitSegment(t, s, "s", recs)
	r, err := s.Acquire("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(r, allQuery())
	if err != nil {
		t.Fatal(err)
	}
	one, err := r.Get(150)
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	if err := s.Remove("s", 0); err != nil {
		t.Fatal(err)
	}
	if n := s.met.mapped.Load(); n != 0 {
		t.Fatalf("%d mappings remain after release and remove", n)
	}
	sameRecords(t, "after release", got, recs)
	if !one.Equal(&recs[150]) {
		t.Fatalf("Get result changed after release")
	}
}

func TestScanPrunesBlocks(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{IndexInterval: 64})
	recs := make([]tiers.Record, 6400) // 100 blocks, ts increasing by 10
	for i := range recs {
		recs[i] = tiers.Record{Offset: uint64(i), TS: int64(i) * 10, Key: fmt.Sprintf("key-%d", i%100), Value: []byte("v")}
	}
	commitSegment(t, s, "s", recs)
	r := acquire(t, s, "s", 0)
	if r.MayContainKey("absent-key") {
		t.Fatal("fixture: absent-key is a false positive of this filter; pick another")
	}
	for i := range 100 {
		if !r.MayContainKey(fmt.Sprintf("key-%d", i)) {
			t.Fatalf("filter lost key-%d", i)
		}
	}
	cases := []struct {
		name       string
		q          tiers.Query
		wantBlocks int64
	}{
		{"all", allQuery(), 100},
		{"one block by time", tiers.Query{To: math.MaxUint64, Since: 640 * 10, Until: 704 * 10}, 1},
		{"two blocks by time", tiers.Query{To: math.MaxUint64, Since: 700 * 10, Until: 710 * 10}, 2},
		{"time before all", tiers.Query{To: math.MaxUint64, Since: math.MinInt64, Until: 0}, 0},
		{"offsets in two blocks", tiers.Query{From: 650, To: 720, Since: math.MinInt64, Until: math.MaxInt64}, 2},
		{"absent key", tiers.Query{To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64, HasKey: true, Key: "absent-key"}, 0},
		{"present key", tiers.Query{To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64, HasKey: true, Key: "key-7"}, 100},
	}
	for _, tc := range cases {
		before := r.sg.blocksRead.Load()
		got, err := collect(r, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		sameRecords(t, tc.name, got, filter(recs, tc.q))
		if n := r.sg.blocksRead.Load() - before; n != tc.wantBlocks {
			t.Errorf("%s: read %d blocks, want %d", tc.name, n, tc.wantBlocks)
		}
	}
}

func TestWriterRejects(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	rec := func(off uint64) *tiers.Record { return &tiers.Record{Offset: off, Value: []byte("x")} }
	cases := []struct {
		name  string
		base  uint64
		steps func(w *Writer) error
		want  error
	}{
		{"first offset is not base", 10, func(w *Writer) error { return w.Append(rec(11)) }, ErrOutOfOrder},
		{"gap", 10, func(w *Writer) error { w.Append(rec(10)); return w.Append(rec(12)) }, ErrOutOfOrder},
		{"repeat", 10, func(w *Writer) error { w.Append(rec(10)); return w.Append(rec(10)) }, ErrOutOfOrder},
		{"empty commit", 10, func(w *Writer) error { _, err := w.Commit(context.Background()); return err }, ErrEmptySegment},
		{"append after commit", 10, func(w *Writer) error {
			w.Append(rec(10))
			if _, err := w.Commit(context.Background()); err != nil {
				return err
			}
			return w.Append(rec(11))
		}, ErrWriterDone},
		{"append after abort", 20, func(w *Writer) error { w.Abort(); return w.Append(rec(20)) }, ErrWriterDone},
		{"canceled commit", 30, func(w *Writer) error {
			w.Append(rec(30))
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := w.Commit(ctx)
			return err
		}, context.Canceled},
	}
	for _, tc := range cases {
		w, err := s.Create("s", tc.base)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.steps(w); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		w.Abort()
	}
	// Only the segment at 10 was committed; the rejected ones left nothing.
	files, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Base != 10 {
		t.Fatalf("List = %+v, want only base 10", files)
	}
	entries, _ := os.ReadDir(filepath.Join(s.dir, "s"))
	if len(entries) != 1 {
		t.Fatalf("stream dir holds %d entries, want 1: %v", len(entries), entries)
	}
}

func TestInvalidArguments(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	for _, name := range []string{"", "../x", "a/b", ".hidden"} {
		if _, err := s.Create(name, 0); !errors.Is(err, tiers.ErrInvalidStreamName) {
			t.Errorf("Create(%q): %v", name, err)
		}
		if _, err := s.Acquire(name, 0); !errors.Is(err, tiers.ErrInvalidStreamName) {
			t.Errorf("Acquire(%q): %v", name, err)
		}
		if err := s.Remove(name, 0); !errors.Is(err, tiers.ErrInvalidStreamName) {
			t.Errorf("Remove(%q): %v", name, err)
		}
	}
	if _, err := s.Acquire("nope", 0); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Errorf("Acquire missing: %v, want ErrSegmentNotFound", err)
	}
	if err := s.Remove("nope", 0); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Errorf("Remove missing: %v, want ErrSegmentNotFound", err)
	}
}

func TestUncommittedWriterLeavesOnlyTempFile(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	w, err := s.Create("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range genRecords(1, 0, 500) {
		if err := w.Append(&r); err != nil {
			t.Fatal(err)
		}
	}
	// The process "crashes" here: no Commit, no Abort.
	if _, err := os.Stat(s.Path("s", 0)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("uncommitted segment is visible: %v", err)
	}
	if files, err := s.List(); err != nil || len(files) != 0 {
		t.Fatalf("List = %v, %v; want nothing", files, err)
	}
	if _, err := s.Acquire("s", 0); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("Acquire of uncommitted segment: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "s"))
	if len(entries) != 1 || !strings.Contains(entries[0].Name(), tempMarker) {
		t.Fatalf("stream dir = %v, want one temp file", entries)
	}
	tmp := filepath.Join(dir, "s", entries[0].Name())

	var logs bytes.Buffer
	s2 := openStore(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if entries, _ := os.ReadDir(filepath.Join(dir, "s")); len(entries) != 0 {
		t.Fatalf("Open left %v", entries)
	}
	if !strings.Contains(logs.String(), tmp) {
		t.Fatalf("Open did not log the removed temp file %s: %q", tmp, logs.String())
	}
	// The reopened store works in the same directory.
	commitSegment(t, s2, "s", genRecords(2, 0, 10))
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after the temp file vanished: %v", err)
	}
}

func TestAbortRemovesTempFile(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	w, err := s.Create("s", 5)
	if err != nil {
		t.Fatal(err)
	}
	w.Append(&tiers.Record{Offset: 5})
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "s")); len(entries) != 0 {
		t.Fatalf("Abort left %v", entries)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
}

func TestRemoveWhileHeld(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	recs := genRecords(4, 100, 1000)
	commitSegment(t, s, "s", recs)
	r, err := s.Acquire("s", 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("s", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path("s", 100)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file still exists after Remove: %v", err)
	}
	if _, err := s.Acquire("s", 100); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("Acquire after Remove: %v", err)
	}
	if files, _ := s.List(); len(files) != 0 {
		t.Fatalf("List after Remove: %v", files)
	}
	got, err := collect(r, allQuery())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "scan of removed segment", got, recs)
	if g, err := r.Get(999); err != nil || !g.Equal(&recs[899]) {
		t.Fatalf("Get of removed segment: %v", err)
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	r.Release()
	if n := s.met.mapped.Load(); n != 0 {
		t.Fatalf("%d mappings after the last release", n)
	}
	if _, err := r.Get(100); !errors.Is(err, ErrReleased) {
		t.Fatalf("Get after Release: %v, want ErrReleased", err)
	}
	if _, err := collect(r, allQuery()); !errors.Is(err, ErrReleased) {
		t.Fatalf("Scan after Release: %v, want ErrReleased", err)
	}
	r.Release() // a second release is harmless
}

func TestCommitReplacesCachedSegment(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	old := genRecords(5, 0, 200)
	commitSegment(t, s, "s", old)
	r1 := acquire(t, s, "s", 0)
	niu := genRecords(6, 0, 300)
	meta := commitSegment(t, s, "s", niu)
	r2 := acquire(t, s, "s", 0)
	if r2.Meta().Digest != meta.Digest || r2.Meta().Count != 300 {
		t.Fatalf("Acquire after replacing returned the old segment: %+v", r2.Meta())
	}
	if r1.Meta().Digest != digestOf(old) {
		t.Fatal("the old reader's meta changed")
	}
	got, err := collect(r1, allQuery())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "old reader", got, old)
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	commitSegment(t, s, "b", genRecords(1, 300, 3))
	commitSegment(t, s, "a", genRecords(1, 7, 3))
	commitSegment(t, s, "b", genRecords(1, 20, 3))
	// Junk a listing must skip.
	for _, p := range []string{"b/notes.txt", "b/123.seg", "b/0000000000000000000x.seg", "b/00000000000000000001.seg" + tempMarker + "9"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, ".hidden"), 0o755)
	os.WriteFile(filepath.Join(dir, ".hidden", "00000000000000000001.seg"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "stray-file"), nil, 0o644)

	files, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		if f.Path != s.Path(f.Stream, f.Base) || f.Size != fileSize(t, f.Path) {
			t.Errorf("%+v: wrong path or size", f)
		}
		got = append(got, fmt.Sprintf("%s/%d", f.Stream, f.Base))
	}
	if want := "a/7 b/20 b/300"; strings.Join(got, " ") != want {
		t.Fatalf("List = %v, want %s", got, want)
	}
}

func TestReaderCacheBoundsMappings(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{CacheSize: 2})
	var segs [][]tiers.Record
	for i := range 5 {
		recs := genRecords(uint64(i), uint64(i)*1000, 50)
		commitSegment(t, s, "s", recs)
		segs = append(segs, recs)
	}
	var held []*Reader
	for i := range segs {
		r, err := s.Acquire("s", uint64(i)*1000)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	if n := s.met.mapped.Load(); n != 5 {
		t.Fatalf("%d mappings with 5 held readers", n)
	}
	for i, r := range held {
		got, err := collect(r, allQuery())
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, "held reader", got, segs[i])
		r.Release()
	}
	if n := s.met.mapped.Load(); n != 2 {
		t.Fatalf("%d mappings with nothing held, cache size 2", n)
	}
	// A cached reader is shared: acquiring again maps nothing new.
	a := acquire(t, s, "s", 4000)
	b := acquire(t, s, "s", 4000)
	if a.sg != b.sg || s.met.mapped.Load() != 2 {
		t.Fatal("two Acquires of a cached segment did not share its mapping")
	}
	a.Release()
	b.Release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := s.met.mapped.Load(); n != 0 {
		t.Fatalf("%d mappings after Close", n)
	}
	if _, err := s.Acquire("s", 0); !errors.Is(err, tiers.ErrClosed) {
		t.Fatalf("Acquire after Close: %v", err)
	}
	if _, err := s.Create("s", 9000); !errors.Is(err, tiers.ErrClosed) {
		t.Fatalf("Create after Close: %v", err)
	}
}

// TestFileShrunkUnderMapping truncates a file behind a live reader, as a
// careless operator might: reads must report corruption, not crash.
func TestFileShrunkUnderMapping(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	recs := make([]tiers.Record, 2000)
	for i := range recs {
		recs[i] = tiers.Record{Offset: uint64(i), TS: int64(i), Value: bytes.Repeat([]byte{byte(i)}, 1000)}
	}
	commitSegment(t, s, "s", recs)
	r := acquire(t, s, "s", 0)
	if err := os.Truncate(s.Path("s", 0), 8192); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Get":    func() error { _, err := r.Get(1999); return err }(),
		"Scan":   func() error { _, err := collect(r, allQuery()); return err }(),
		"Verify": r.Verify(),
	} {
		ce := asCorruption(t, name, err)
		if !errors.Is(ce, ErrFault) {
			t.Errorf("%s: %v, want ErrFault", name, err)
		}
	}
	// The index lives in the (now missing) footer, so even records in the
	// surviving page are unreachable; what matters is that nothing crashed
	// and the reader can still be released.
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{CacheSize: 3, IndexInterval: 16})
	const stable = 6
	segs := make([][]tiers.Record, stable)
	for i := range segs {
		segs[i] = genRecords(uint64(i), uint64(i)*500, 300)
		commitSegment(t, s, "stable", segs[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for i := 0; i < 300 && ctx.Err() == nil; i++ {
				k := rng.IntN(stable)
				r, err := s.Acquire("stable", uint64(k)*500)
				if err != nil {
					errc <- err
					return
				}
				j := rng.IntN(300)
				got, err := r.Get(uint64(k)*500 + uint64(j))
				if err != nil || !got.Equal(&segs[k][j]) {
					errc <- fmt.Errorf("Get %d/%d: %v", k, j, err)
				}
				q := allQuery()
				q.From, q.To = uint64(k*500+j), uint64(k*500+j+20)
				scanned, err := collect(r, q)
				if err != nil || len(scanned) != len(filter(segs[k], q)) {
					errc <- fmt.Errorf("Scan %d/%d: %d records, %v", k, j, len(scanned), err)
				}
				r.Release()
			}
		}()
	}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("eph-%d", g)
			for i := 0; i < 30 && ctx.Err() == nil; i++ {
				recs := genRecords(uint64(i), uint64(i)*100, 50)
				commitSegment(t, s, stream, recs)
				r, err := s.Acquire(stream, uint64(i)*100)
				if err != nil {
					errc <- err
					return
				}
				if err := s.Remove(stream, uint64(i)*100); err != nil {
					errc <- err
				}
				got, err := collect(r, allQuery())
				if err != nil || len(got) != 50 {
					errc <- fmt.Errorf("scan of removed %s/%d: %d, %v", stream, i, len(got), err)
				}
				r.Release()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if files, _ := s.List(); len(files) != stable {
		t.Fatalf("List has %d files, want %d", len(files), stable)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openStore(t, t.TempDir(), Options{Registerer: reg})
	commitSegment(t, s, "s", genRecords(1, 0, 10))
	r := acquire(t, s, "s", 0)
	r2 := acquire(t, s, "s", 0)
	_, _ = r, r2
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				got[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[name] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[name] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	for name, want := range map[string]float64{
		"tierd_warm_segments_committed_total":     1,
		"tierd_warm_acquires_total{miss}":         1,
		"tierd_warm_acquires_total{hit}":          1,
		"tierd_warm_mapped_segments":              1,
		"tierd_warm_fsync_duration_seconds{file}": 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v (all: %v)", name, got[name], want, got)
		}
	}
	// A second store on the same registry (an engine reopened in one
	// process) opens and counts into the same series.
	s2, err := Open(t.TempDir(), Options{Registerer: reg})
	if err != nil {
		t.Fatalf("second store on one registry: %v", err)
	}
	defer s2.Close()
	w2, err := s2.Create("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	w2.Append(&tiers.Record{Offset: 0, Value: []byte("x")})
	if _, err := w2.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	mfs, err = reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tierd_warm_segments_committed_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != got["tierd_warm_segments_committed_total"]+1 {
				t.Errorf("segments committed by both stores: %v, want %v", v, got["tierd_warm_segments_committed_total"]+1)
			}
		}
	}
}

func TestBloomFalsePositiveRate(t *testing.T) {
	var hashes []uint64
	for i := range 10000 {
		hashes = append(hashes, keyHash(fmt.Sprintf("present-%d", i)))
	}
	words := buildBloom(hashes)
	b := make([]byte, 0, len(words)*8)
	for _, w := range words {
		b = append(b, byte(w), byte(w>>8), byte(w>>16), byte(w>>24), byte(w>>32), byte(w>>40), byte(w>>48), byte(w>>56))
	}
	for i := range 10000 {
		if !bloomMayContain(b, bloomK, fmt.Sprintf("present-%d", i)) {
			t.Fatalf("false negative for present-%d", i)
		}
	}
	fp := 0
	for i := range 100000 {
		if bloomMayContain(b, bloomK, fmt.Sprintf("absent-%d", i)) {
			fp++
		}
	}
	if rate := float64(fp) / 100000; rate > 0.02 {
		t.Fatalf("false positive rate %.4f, want about 0.01", rate)
	}
}

func BenchmarkGet(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{})
	recs := make([]tiers.Record, 10000)
	for i := range recs {
		recs[i] = tiers.Record{Offset: uint64(i), TS: int64(i), Key: fmt.Sprintf("k%d", i%50), Tags: []string{"t"}, Value: bytes.Repeat([]byte{'v'}, 128)}
	}
	commitSegment(b, s, "s", recs)
	r := acquire(b, s, "s", 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := r.Get(uint64(i*7919) % 10000); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkScanAll(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{})
	recs := make([]tiers.Record, 10000)
	for i := range recs {
		recs[i] = tiers.Record{Offset: uint64(i), TS: int64(i), Key: fmt.Sprintf("k%d", i%50), Value: bytes.Repeat([]byte{'v'}, 128)}
	}
	commitSegment(b, s, "s", recs)
	r := acquire(b, s, "s", 0)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range r.Scan(tiers.AllRecords()) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != len(recs) {
			b.Fatalf("scanned %d", n)
		}
	}
}
