package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/policy"
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
	// The Iceberg tables' metadata beside the segments is neither a
	// segment nor unreadable: the rebuild passes it by.
	u, err := url.Parse(f.storeURL)
	if err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(u.Path, "_iceberg", "tierd", "a", "metadata", "00001-x.metadata.json")
	if err := os.MkdirAll(filepath.Dir(meta), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, []byte("{}"), 0o644); err != nil {
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
			} else if !g.SealedAt.Equal(w.SealedAt) {
				t.Errorf("%s@%d (warm): sealed at %v, want %v from the file's footer", stream, g.Base, g.SealedAt, w.SealedAt)
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

// waitPersisted waits until stream's sealed segments below its active one
// are all catalogued, as the flusher does in the background.
func waitPersisted(t *testing.T, e *Engine, stream string, n int) []SegmentInfo {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var done []SegmentInfo
		for _, s := range sealedSegments(t, e, stream) {
			if s.Placements.Has(tiers.Warm) || s.Placements.Has(tiers.Cold) {
				done = append(done, s)
			}
		}
		if len(done) >= n {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d segments persisted after a minute, want %d", stream, len(done), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRebuildKeepsRetention: records retention deleted stay deleted after
// a catalog rebuild, through the real WAL replay: the WAL still holds them
// (its file is kept for the active segment's records), yet neither the
// rebuilt catalog nor the replay brings them back, nor are they persisted
// and uploaded again with a new seal time. Rebuilt segments keep their
// original seal time, and a segment tombstoned but not yet deleted comes
// back tombstoned.
func TestRebuildKeepsRetention(t *testing.T) {
	for _, withCold := range []bool{false, true} {
		name := map[bool]string{false: "no cold store", true: "cold store"}[withCold]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock(t0)
			dir := t.TempDir()
			storeURL := ""
			if withCold {
				_, storeURL = fileStore(t)
			}
			cfg := defaultConfig(storeURL)
			e := openClockedConfig(t, dir, storeURL, clk, &cfg)
			// 300 records seal 4 segments of 8 KiB; the rest stays in the
			// active segment, so the one WAL file is never checkpointed.
			want := fill(t, e, "s", 330)
			segs := waitPersisted(t, e, "s", 4)
			for i, s := range segs {
				if withCold {
					mustExecute(t, e, policy.Upload, "s", s.Base)
					if i < 3 {
						mustExecute(t, e, policy.DropWarm, "s", s.Base)
					}
				}
			}
			// Eight days on, the first two segments are deleted and the
			// third tombstoned (its copies wait for cold.delete_delay).
			clk.Advance(8 * 24 * time.Hour)
			if withCold {
				mustExecute(t, e, policy.Tombstone, "s", segs[1].Base)
				clk.Advance(2 * time.Hour)
				mustExecute(t, e, policy.DeleteCold, "s", segs[0].Base)
				mustExecute(t, e, policy.DeleteCold, "s", segs[1].Base)
				mustExecute(t, e, policy.Tombstone, "s", segs[2].Base)
			} else {
				mustExecute(t, e, policy.DeleteWarm, "s", segs[1].Base)
				mustExecute(t, e, policy.DeleteCold, "s", segs[0].Base)
				if _, err := e.catalog.Tombstone(ctx, "s", segs[2].Base, clk.Now(), func(*tiers.SegmentMeta) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			first := segs[3].Base
			before := sealedSegments(t, e, "s")
			if err := e.Close(ctx); err != nil {
				t.Fatal(err)
			}
			walHoldsDeleted := false
			wals, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
			for _, w := range wals {
				if b, err := os.ReadFile(w); err == nil && bytes.Contains(b, want[0].Value) {
					walHoldsDeleted = true
				}
			}
			if !walHoldsDeleted {
				t.Fatal("the WAL no longer holds the deleted records: the test would not exercise its replay")
			}

			if err := os.Rename(filepath.Join(dir, "catalog.db"), filepath.Join(dir, "catalog.db.old")); err != nil {
				t.Fatal(err)
			}
			var ct = openColdOrNil(t, storeURL)
			rep, err := RebuildCatalog(ctx, dir, ct, nil, nil)
			if ct != nil {
				ct.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Markers != 1 || rep.Expired != 1 {
				t.Fatalf("rebuild report %+v: want the marker of s and one segment below it", rep)
			}
			// The rebuild tombstoned by the real clock.
			clk.Set(time.Now().Add(time.Minute))
			e = openClockedConfig(t, dir, storeURL, clk, &cfg)
			defer e.Close(ctx)
			wantExpired(t, e, "s", tiers.AllRecords(), 0, first)
			wantServed(t, e, "s", want[first:])
			if r, err := e.Retention(ctx, "s"); err != nil || r.First != first || r.Next != 330 {
				t.Fatalf("retention after the rebuild: %+v %v, want [%d, 330)", r, err, first)
			}
			after := sealedSegments(t, e, "s")
			if len(after) != len(before) {
				t.Fatalf("segments after the rebuild %v, before %v", after, before)
			}
			for i := range after {
				a, b := after[i], before[i]
				if a.Base != b.Base || a.Last != b.Last || a.Digest != b.Digest || !a.SealedAt.Equal(b.SealedAt) {
					t.Fatalf("segment %d rebuilt as %+v, was %+v", i, a.SegmentMeta, b.SegmentMeta)
				}
				if a.Tombstoned.IsZero() != b.Tombstoned.IsZero() {
					t.Fatalf("segment %d: tombstoned %v after the rebuild, %v before", a.Base, a.Tombstoned, b.Tombstoned)
				}
			}
			// Nothing the WAL replayed was persisted or uploaded again.
			for _, f := range warmFiles(t, dir) {
				for _, s := range segs[:2] {
					if f == warmName("s", s.Base) {
						t.Fatalf("deleted segment %d is back in warm: %v", s.Base, f)
					}
				}
			}
			if withCold {
				for _, k := range listObjects(t, storeURL) {
					if strings.Contains(k, fmt.Sprintf("%020d-", segs[0].Base)) || strings.Contains(k, fmt.Sprintf("%020d-", segs[1].Base)) {
						t.Fatalf("a deleted segment is back in cold: %s", k)
					}
				}
			}
			rep2, err := e.Verify(ctx, "", nil)
			if err != nil || len(rep2.Findings) != 0 {
				t.Fatalf("verify after the rebuild: %+v %v", rep2.Findings, err)
			}
			// And the migrator deletes the tombstoned segment in due time.
			clk.Advance(2 * time.Hour)
			mustExecute(t, e, policy.DeleteCold, "s", segs[2].Base)
			wantExpired(t, e, "s", tiers.AllRecords(), 0, first)
		})
	}
}

// openColdOrNil opens the cold tier on storeURL, nil for "".
func openColdOrNil(t *testing.T, storeURL string) *cold.Tier {
	if storeURL == "" {
		return nil
	}
	return openCold(t, storeURL)
}
