package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// verifyFixture is an archive of one stream "s" with a segment in cold
// only (segs[0]), one in warm and cold (segs[1]) and the rest warm, closed,
// ready to be damaged and opened again.
type verifyFixture struct {
	dir, storeDir, storeURL string
	clk                     *clock
	segs                    []SegmentInfo
}

func newVerifyFixture(t *testing.T) *verifyFixture {
	t.Helper()
	ctx := context.Background()
	f := &verifyFixture{dir: t.TempDir(), clk: newClock(t0)}
	f.storeDir, f.storeURL = fileStore(t)
	e := openClocked(t, f.dir, f.storeURL, f.clk)
	defer e.Close(ctx)
	fill(t, e, "s", 300)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.segs = sealedSegments(t, e, "s")
	if len(f.segs) < 4 {
		t.Fatalf("want at least 4 segments, got %d", len(f.segs))
	}
	if _, err := e.Offload(ctx, "s", f.segs[0].Base, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Offload(ctx, "s", f.segs[1].Base, true); err != nil {
		t.Fatal(err)
	}
	f.segs = sealedSegments(t, e, "s")
	return f
}

func (f *verifyFixture) open(t *testing.T) *Engine {
	t.Helper()
	e := openClocked(t, f.dir, f.storeURL, f.clk)
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func (f *verifyFixture) warmPath(base uint64) string {
	return filepath.Join(f.dir, "warm", "s", filepath.Base(warmName("s", base)))
}

func (f *verifyFixture) objectPath(s SegmentInfo) string {
	return filepath.Join(f.storeDir, filepath.FromSlash(cold.ObjectKey(s.SegmentMeta)))
}

func verify(t *testing.T, e *Engine, stream string) VerifyReport {
	t.Helper()
	rep, err := e.Verify(context.Background(), stream, nil)
	if err != nil {
		t.Fatalf("verify %q: %v", stream, err)
	}
	return rep
}

// wantOneFinding fails unless rep holds exactly one finding, of kind, on
// segment base of stream s, in tier, about path; it returns it.
func wantOneFinding(t *testing.T, rep VerifyReport, kind string, base uint64, tier, path string) Finding {
	t.Helper()
	if len(rep.Findings) != 1 {
		t.Fatalf("verify found %d problems, want one %s: %+v", len(rep.Findings), kind, rep.Findings)
	}
	f := rep.Findings[0]
	if f.Kind != kind || f.Stream != "s" || f.Base != base || f.Tier != tier || f.Message == "" {
		t.Fatalf("finding %+v, want %s on s@%d in %s", f, kind, base, tier)
	}
	if path != "" && filepath.ToSlash(f.Path) != filepath.ToSlash(path) {
		t.Fatalf("finding names %q, want %q", f.Path, path)
	}
	return f
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := []byte{0}
	if _, err := fh.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := fh.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCleanArchive(t *testing.T) {
	f := newVerifyFixture(t)
	e := f.open(t)
	var calls, lastDone, lastTotal int
	rep, err := e.Verify(context.Background(), "", func(done, total int) { calls++; lastDone, lastTotal = done, total })
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Fatalf("clean archive: findings %+v", rep.Findings)
	}
	n := len(f.segs)
	if len(rep.Streams) != 1 {
		t.Fatalf("streams checked: %+v", rep.Streams)
	}
	sc := rep.Streams[0]
	if sc.Stream != "s" || sc.First != 0 || sc.Next != 300 || sc.Segments != n || sc.Placements != n+1 {
		t.Fatalf("stream check %+v, want s [0, 300) with %d segments and %d placements", sc, n, n+1)
	}
	if rep.WarmFiles != n-1 || rep.ColdObjects != 2 {
		t.Fatalf("orphan scan saw %d warm files and %d objects, want %d and 2", rep.WarmFiles, rep.ColdObjects, n-1)
	}
	if calls != n || lastDone != n || lastTotal != n {
		t.Fatalf("progress called %d times, last %d/%d; want %d calls ending %d/%d", calls, lastDone, lastTotal, n, n, n)
	}
	if rep := verify(t, e, "s"); len(rep.Findings) != 0 || len(rep.Streams) != 1 {
		t.Fatalf("verify of stream s: %+v", rep)
	}
	if _, err := e.Verify(context.Background(), "nope", nil); err == nil {
		t.Fatal("verify of an unknown stream succeeded")
	}
	// A stream with nothing persisted yet is checked by a verify of every
	// stream as by one of it alone: an empty range, no finding.
	if _, err := e.Append(context.Background(), "young", []tiers.Record{{Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	rep = verify(t, e, "")
	if len(rep.Findings) != 0 || len(rep.Streams) != 2 || rep.Streams[0].Stream != "s" || rep.Streams[1].Stream != "young" || rep.Streams[1].Segments != 0 {
		t.Fatalf("verify with a stream that has nothing persisted: %+v", rep)
	}
	if alone := verify(t, e, "young"); len(alone.Streams) != 1 || alone.Streams[0] != rep.Streams[1] {
		t.Fatalf("verify of young alone %+v, in the whole %+v", alone.Streams, rep.Streams[1])
	}
}

func TestVerifyWarmDigest(t *testing.T) {
	f := newVerifyFixture(t)
	s := f.segs[2]
	p := f.warmPath(s.Base)
	flipByte(t, p, size(t, p)/3) // inside the record frames
	e := f.open(t)
	wantOneFinding(t, verify(t, e, ""), api.FindingDigest, s.Base, "warm", p)
	// The segment with a cold copy as well: only the warm copy is bad.
	g := newVerifyFixture(t)
	s = g.segs[1]
	p = g.warmPath(s.Base)
	flipByte(t, p, size(t, p)/2)
	wantOneFinding(t, verify(t, g.open(t), "s"), api.FindingDigest, s.Base, "warm", p)
}

func TestVerifyWarmMissing(t *testing.T) {
	f := newVerifyFixture(t)
	s := f.segs[3]
	if err := os.Remove(f.warmPath(s.Base)); err != nil {
		t.Fatal(err)
	}
	e := f.open(t)
	wantOneFinding(t, verify(t, e, ""), api.FindingMissing, s.Base, "warm", f.warmPath(s.Base))
}

// TestVerifyWarmDeletedWhileRunning: a warm file removed under a running
// daemon (after reads mapped it) is reported missing: verify proves the
// copy is on disk, not that a mapping of it is still in memory.
func TestVerifyWarmDeletedWhileRunning(t *testing.T) {
	f := newVerifyFixture(t)
	e := f.open(t)
	s := f.segs[3]
	if rep := verify(t, e, ""); len(rep.Findings) != 0 { // maps every warm file
		t.Fatalf("clean archive: %+v", rep.Findings)
	}
	if err := os.Remove(f.warmPath(s.Base)); err != nil {
		t.Fatal(err)
	}
	wantOneFinding(t, verify(t, e, ""), api.FindingMissing, s.Base, "warm", f.warmPath(s.Base))
}

func TestVerifyOrphanWarm(t *testing.T) {
	f := newVerifyFixture(t)
	// A copy of segment 2's file under a base no segment starts at, inside
	// the persisted range (so not the flusher's file in progress).
	stray := f.warmPath(f.segs[2].Base + 1)
	copyFile(t, f.warmPath(f.segs[2].Base), stray)
	e := f.open(t)
	wantOneFinding(t, verify(t, e, ""), api.FindingOrphanWarm, f.segs[2].Base+1, "warm", stray)
	// A file put back, under a running daemon, where a segment moved to
	// cold only used to be.
	back := f.warmPath(f.segs[0].Base)
	copyFile(t, f.warmPath(f.segs[3].Base), back)
	rep := verify(t, e, "")
	if len(rep.Findings) != 2 {
		t.Fatalf("findings %+v, want two orphans", rep.Findings)
	}
	got := rep.Findings[0]
	if got.Path != back {
		got = rep.Findings[1]
	}
	if got.Kind != api.FindingOrphanWarm || got.Path != back || got.Base != f.segs[0].Base {
		t.Fatalf("findings %+v, want orphan_warm %s", rep.Findings, back)
	}
}

func TestVerifyOrphanCold(t *testing.T) {
	f := newVerifyFixture(t)
	// An object that looks like a segment no catalog entry claims…
	s := f.segs[3]
	key := cold.ObjectKey(s.SegmentMeta)
	copyFile(t, f.objectPath(f.segs[0]), filepath.Join(f.storeDir, filepath.FromSlash(key)))
	e := f.open(t)
	fd := wantOneFinding(t, verify(t, e, ""), api.FindingOrphanCold, s.Base, "cold", key)
	if fd.Path != key {
		t.Fatalf("orphan named %q, want %q", fd.Path, key)
	}
	// …and one that is no segment at all.
	g := newVerifyFixture(t)
	if err := os.WriteFile(filepath.Join(g.storeDir, "stray.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, g.open(t), "")
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != api.FindingOrphanCold || rep.Findings[0].Path != "stray.txt" {
		t.Fatalf("stray object: findings %+v, want one orphan_cold stray.txt", rep.Findings)
	}
}

// valueChunkData returns a position in the compressed record data of the
// value column in the first row group of a Parquet file: near the end of
// the chunk, past the page header (whose min/max statistics of the value
// column no read uses). In cold format 2 values are in value (JSON) and
// value_bin (the rest): the larger chunk of the two is taken.
func valueChunkData(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var md *format.ColumnMetaData
	for _, c := range pf.Metadata().RowGroups[0].Columns {
		name := c.MetaData.PathInSchema[len(c.MetaData.PathInSchema)-1]
		if (name == "value" || name == "value_bin") && (md == nil || c.MetaData.TotalCompressedSize > md.TotalCompressedSize) {
			md = &c.MetaData
		}
	}
	if md == nil {
		t.Fatal("no value column")
	}
	return md.DataPageOffset + md.TotalCompressedSize - 16
}

func TestVerifyColdDigest(t *testing.T) {
	for _, i := range []int{0, 1} { // cold only; warm and cold
		f := newVerifyFixture(t)
		s := f.segs[i]
		p := f.objectPath(s)
		flipByte(t, p, valueChunkData(t, p))
		e := f.open(t)
		wantOneFinding(t, verify(t, e, ""), api.FindingDigest, s.Base, "cold", cold.ObjectKey(s.SegmentMeta))
	}
	// A truncated object is damage too.
	f := newVerifyFixture(t)
	p := f.objectPath(f.segs[0])
	if err := os.Truncate(p, size(t, p)-3); err != nil {
		t.Fatal(err)
	}
	wantOneFinding(t, verify(t, f.open(t), ""), api.FindingDigest, f.segs[0].Base, "cold", "")
	// A missing one is missing.
	g := newVerifyFixture(t)
	if err := os.Remove(g.objectPath(g.segs[1])); err != nil {
		t.Fatal(err)
	}
	wantOneFinding(t, verify(t, g.open(t), ""), api.FindingMissing, g.segs[1].Base, "cold", "")
}

// TestVerifyTombstonedIsNoGap: tombstoned segments at the low end are
// expired, not missing; their copies, kept until delete-cold, are not
// orphans; and once deleted nothing is reported either.
func TestVerifyTombstonedIsNoGap(t *testing.T) {
	ctx := context.Background()
	f := newVerifyFixture(t)
	e := f.open(t)
	f.clk.Advance(8 * 24 * time.Hour) // past cold.max_age
	for _, s := range f.segs[:2] {
		mustExecute(t, e, policy.Tombstone, "s", s.Base)
	}
	rep := verify(t, e, "")
	if len(rep.Findings) != 0 {
		t.Fatalf("tombstoned segments reported: %+v", rep.Findings)
	}
	if sc := rep.Streams[0]; sc.First != f.segs[2].Base || sc.Next != 300 || sc.Segments != len(f.segs)-2 {
		t.Fatalf("stream check %+v, want [%d, 300) over %d live segments", sc, f.segs[2].Base, len(f.segs)-2)
	}
	f.clk.Advance(2 * time.Hour)
	for _, s := range f.segs[:2] {
		mustExecute(t, e, policy.DeleteCold, "s", s.Base)
	}
	rep = verify(t, e, "")
	if len(rep.Findings) != 0 {
		t.Fatalf("deleted segments reported: %+v", rep.Findings)
	}
	if rep.ColdObjects != 0 || rep.WarmFiles != len(f.segs)-2 {
		t.Fatalf("after deletion verify saw %d objects and %d warm files", rep.ColdObjects, rep.WarmFiles)
	}
	// A segment missing from the middle is a gap.
	if err := e.catalog.(*catalog.Catalog).DeleteSegment(ctx, "s", f.segs[3].Base); err != nil {
		t.Fatal(err)
	}
	rep = verify(t, e, "")
	var gap *Finding
	for i := range rep.Findings {
		if rep.Findings[i].Kind == api.FindingGap {
			gap = &rep.Findings[i]
		}
	}
	if gap == nil || gap.From != f.segs[3].Base || gap.To != f.segs[3].Last+1 {
		t.Fatalf("a segment gone from the middle: findings %+v, want a gap [%d, %d)", rep.Findings, f.segs[3].Base, f.segs[3].Last+1)
	}
}

// TestVerifyDuringMigration: verify running while segments move
// (upload, drop-warm) and are deleted reports nothing: a copy moved away,
// or an object committed, after verify listed the catalog is neither
// missing nor an orphan.
func TestVerifyDuringMigration(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		dir := t.TempDir()
		_, storeURL := fileStore(t)
		clk := newClock(time.Unix(1_800_000_000, 0))
		e := openClocked(t, dir, storeURL, clk)
		for _, s := range []string{"a", "b"} {
			fill(t, e, s, 400)
		}
		if err := e.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(storeURL, time.Second, 2*time.Second, 0)
		clk.Advance(time.Hour)
		done := make(chan struct{})
		var findings []Finding
		go func() {
			defer close(done)
			for i := 0; i < 20; i++ {
				rep, err := e.Verify(ctx, "", nil)
				if err != nil {
					t.Error(err)
					return
				}
				findings = append(findings, rep.Findings...)
			}
		}()
		settle(t, e, cfg, clk.Now())
		<-done
		if len(findings) > 0 {
			t.Fatalf("round %d: verify during migration reported %d findings, first: %+v", round, len(findings), findings[0])
		}
		wantVerifyClean(t, e)
	}
}

// TestVerifyIgnoresTableMetadata: the Iceberg tables' metadata under
// _iceberg/ of the cold store is no orphan (and not counted as a cold
// object), while a stray object beside it still is.
func TestVerifyIgnoresTableMetadata(t *testing.T) {
	f := newVerifyFixture(t)
	for _, name := range []string{"_iceberg/tierd/s/metadata/00001-x.metadata.json", "_iceberg/tierd/s/metadata/snap-1.avro", "stray.txt"} {
		p := filepath.Join(f.storeDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := f.open(t)
	rep := verify(t, e, "")
	if len(rep.Findings) != 1 || rep.Findings[0].Path != "stray.txt" {
		t.Fatalf("findings %+v, want one orphan_cold stray.txt and nothing under _iceberg/", rep.Findings)
	}
	want := 0
	for _, s := range f.segs {
		if s.Placements.Has(tiers.Cold) {
			want++
		}
	}
	if rep.ColdObjects != want+1 {
		t.Fatalf("%d cold objects looked at, want %d (the segments and stray.txt)", rep.ColdObjects, want+1)
	}
}
