package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// rebuildFixture is a closed archive of streams "a" and "b" with segments
// in warm only, cold only, and both.
type rebuildFixture struct {
	dir, storeDir, storeURL string
	want                    map[string][]tiers.Record
	segs                    map[string][]SegmentInfo // as catalogued before the rebuild
}

func newRebuildFixture(t *testing.T) *rebuildFixture {
	t.Helper()
	ctx := context.Background()
	f := &rebuildFixture{dir: t.TempDir(), want: map[string][]tiers.Record{}, segs: map[string][]SegmentInfo{}}
	f.storeDir, f.storeURL = fileStore(t)
	e := openWithCold(t, f.dir, f.storeURL) // the real clock: warm files' times are the seal times
	defer e.Close(ctx)
	f.want["a"] = fill(t, e, "a", 700)
	f.want["b"] = fill(t, e, "b", 250)
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a, b := sealedSegments(t, e, "a"), sealedSegments(t, e, "b")
	if len(a) < 5 || len(b) < 2 {
		t.Fatalf("want at least 5 and 2 segments, got %d and %d", len(a), len(b))
	}
	for _, mv := range []struct {
		stream   string
		base     uint64
		keepWarm bool
	}{{"a", a[0].Base, false}, {"a", a[1].Base, true}, {"a", a[2].Base, false}, {"b", b[0].Base, true}} {
		if _, err := e.Offload(ctx, mv.stream, mv.base, mv.keepWarm); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"a", "b"} {
		for _, si := range sealedSegments(t, e, s) {
			si.Placements = si.Placements.Without(tiers.Hot) // what a restart shows
			f.segs[s] = append(f.segs[s], si)
		}
	}
	return f
}

func (f *rebuildFixture) catalogPath() string { return filepath.Join(f.dir, "catalog.db") }

func (f *rebuildFixture) rebuild(t *testing.T) (RebuildReport, error) {
	t.Helper()
	ct := openCold(t, f.storeURL)
	defer ct.Close()
	return RebuildCatalog(context.Background(), f.dir, ct, nil, nil)
}

func (f *rebuildFixture) countPlacement(p tiers.Placement) int {
	n := 0
	for _, segs := range f.segs {
		for _, s := range segs {
			if s.Placements.Has(p) {
				n++
			}
		}
	}
	return n
}

func TestRebuildCatalog(t *testing.T) {
	ctx := context.Background()
	f := newRebuildFixture(t)
	// A warm file copied back from a backup has a new modification time;
	// the cold object of the same segment still knows when it sealed.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(f.dir, "warm", "a", filepath.Base(warmName("a", f.segs["a"][1].Base))), later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.catalogPath()); err != nil {
		t.Fatal(err)
	}
	phases := map[string][2]int{}
	ct := openCold(t, f.storeURL)
	rep, err := RebuildCatalog(ctx, f.dir, ct, nil, func(phase string, done, total int) { phases[phase] = [2]int{done, total} })
	ct.Close()
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	nWarm, nCold := f.countPlacement(tiers.Warm), f.countPlacement(tiers.Cold)
	nSegs := len(f.segs["a"]) + len(f.segs["b"])
	if rep.WarmFiles != nWarm || rep.ColdObjects != nCold || rep.Segments != nSegs || rep.Streams != 2 {
		t.Fatalf("rebuild read %d warm files, %d objects and made %d segments of %d streams; want %d, %d, %d, 2",
			rep.WarmFiles, rep.ColdObjects, rep.Segments, rep.Streams, nWarm, nCold, nSegs)
	}
	if len(rep.Conflicts) != 0 || len(rep.Unreadable) != 0 {
		t.Fatalf("clean rebuild reported conflicts %v, unreadable %v", rep.Conflicts, rep.Unreadable)
	}
	if phases["warm"] != [2]int{nWarm, nWarm} || phases["cold"] != [2]int{nCold, nCold} {
		t.Fatalf("progress ended at %v", phases)
	}

	e := openWithCold(t, f.dir, f.storeURL)
	defer e.Close(ctx)
	for _, stream := range []string{"a", "b"} {
		got := sealedSegments(t, e, stream)
		want := f.segs[stream]
		if len(got) != len(want) {
			t.Fatalf("%s: %d segments after the rebuild, want %d", stream, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.Stream != w.Stream || g.Base != w.Base || g.Last != w.Last || g.Count != w.Count || g.Digest != w.Digest ||
				g.MinTS != w.MinTS || g.MaxTS != w.MaxTS || g.Placements != w.Placements {
				t.Fatalf("%s segment %d rebuilt as %+v, want %+v", stream, i, g.SegmentMeta, w.SegmentMeta)
			}
			if w.Placements.Has(tiers.Cold) {
				if g.ColdBytes != w.ColdBytes {
					t.Errorf("%s@%d: cold bytes %d, want %d", stream, g.Base, g.ColdBytes, w.ColdBytes)
				}
				if !g.SealedAt.Equal(w.SealedAt) {
					t.Errorf("%s@%d (%v): sealed at %v, want %v from the object's metadata", stream, g.Base, g.Placements, g.SealedAt, w.SealedAt)
				}
			} else if d := g.SealedAt.Sub(w.SealedAt); d < -5*time.Second || d > 5*time.Second {
				t.Errorf("%s@%d (warm): sealed at %v, %v off the original %v", stream, g.Base, g.SealedAt, d, w.SealedAt)
			}
		}
		wantServed(t, e, stream, f.want[stream])
	}
	wantVerifyClean(t, e)
	// The streams go on where they were.
	if res, err := e.Append(ctx, "a", batch(1, 0)); err != nil || res.First != 700 {
		t.Fatalf("append after the rebuild: offset %d (%v), want 700", res.First, err)
	}
}

func TestRebuildRefusesExistingCatalog(t *testing.T) {
	f := newRebuildFixture(t)
	before, err := os.ReadFile(f.catalogPath())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.rebuild(t); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("rebuild over an existing catalog: %v, want catalog.ErrExists", err)
	}
	after, err := os.ReadFile(f.catalogPath())
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the refused rebuild touched catalog.db (%v)", err)
	}
	e := openWithCold(t, f.dir, f.storeURL)
	defer e.Close(context.Background())
	wantServed(t, e, "a", f.want["a"])
}

// TestRebuildSkipsCorruptWarmFile: a warm file that cannot be read is
// listed in Unreadable and the rest is rebuilt; a segment with a good cold
// copy keeps it.
func TestRebuildSkipsCorruptWarmFile(t *testing.T) {
	ctx := context.Background()
	f := newRebuildFixture(t)
	bad := f.segs["a"][4]  // warm only
	both := f.segs["b"][0] // warm and cold
	if bad.Placements != tiers.Of(tiers.Warm) || both.Placements != tiers.Of(tiers.Warm, tiers.Cold) {
		t.Fatalf("fixture: %v %v", bad.Placements, both.Placements)
	}
	badPath := filepath.Join(f.dir, "warm", "a", filepath.Base(warmName("a", bad.Base)))
	bothPath := filepath.Join(f.dir, "warm", "b", filepath.Base(warmName("b", both.Base)))
	flipByte(t, badPath, 10) // in the header: the base
	flipByte(t, bothPath, 10)
	if err := os.Remove(f.catalogPath()); err != nil {
		t.Fatal(err)
	}
	rep, err := f.rebuild(t)
	if err != nil {
		t.Fatalf("rebuild with a corrupt warm file: %v", err)
	}
	if len(rep.Unreadable) != 2 {
		t.Fatalf("unreadable %q, want the two damaged files", rep.Unreadable)
	}
	for _, p := range []string{badPath, bothPath} {
		found := false
		for _, u := range rep.Unreadable {
			found = found || strings.Contains(u, p)
		}
		if !found {
			t.Fatalf("unreadable %q does not name %s", rep.Unreadable, p)
		}
	}
	if want := len(f.segs["a"]) + len(f.segs["b"]) - 1; rep.Segments != want {
		t.Fatalf("rebuilt %d segments, want %d", rep.Segments, want)
	}
	e := openWithCold(t, f.dir, f.storeURL)
	defer e.Close(ctx)
	wantPlacements(t, e, "b", both.Base, tiers.Of(tiers.Cold))
	wantServed(t, e, "b", f.want["b"])
	if _, ok := placementsOf(t, e, "a", bad.Base); ok {
		t.Fatal("the unreadable warm-only segment was catalogued")
	}
	wantRecords(t, readAll(t, e, "a", fromTo(0, bad.Base-1)), f.want["a"][:bad.Base])
	wantRecords(t, readAll(t, e, "a", fromTo(bad.Last+1, 699)), f.want["a"][bad.Last+1:])
	// Its offsets are not silently skipped.
	q := tiers.AllRecords()
	q.From = bad.Base
	var rerr error
	for _, err := range e.Read(ctx, "a", q) {
		if err != nil {
			rerr = err
			break
		}
		t.Fatal("read of the lost segment's range served a record")
	}
	if rerr == nil {
		t.Fatal("read of the lost segment's range succeeded")
	}
}
