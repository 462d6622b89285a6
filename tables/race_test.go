package tables

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

// TestRacingPublishers: two Publishers (two nodes) on one PostgreSQL
// catalog Sync and Remove the same stream at once, round after round. The
// optimistic commits conflict; the loser reloads and recomputes, so the
// table ends with exactly the wanted files: none lost, none doubled. The
// file catalog on a local directory (atomic renames) holds the same.
func TestRacingPublishers(t *testing.T) {
	t.Run("minio+pg", func(t *testing.T) {
		s := minioStore(t)
		s.opts.CatalogDSN = testenv.StartPostgres(t).DSN
		testRacingPublishers(t, s)
	})
	t.Run("file", func(t *testing.T) { testRacingPublishers(t, fileStore(t)) })
}

func testRacingPublishers(t *testing.T, s store) {
	src := newSource()
	a, b := open(t, s, src), open(t, s, src)
	ctx := context.Background()
	var all []tiers.Record
	var segs []tiers.SegmentMeta
	conflicts := 0
	next := uint64(0)
	for round := range 6 {
		for i := range 3 {
			recs := records(next, 20, 20000*day+int64(round*3+i)*60e9, 1_000_001)
			m := putSegment(t, s, "race", recs, pqfile.Options{})
			segs = append(segs, m)
			src.add(m)
			all = append(all, recs...)
			next += 20
		}
		var removed []tiers.SegmentMeta
		if round%2 == 1 {
			// Retention: the oldest segment leaves the catalog and both
			// nodes remove it while Syncing.
			removed = segs[:1]
			src.drop("race", segs[0].Base)
			segs = segs[1:]
			all = all[20:]
		}
		var wg sync.WaitGroup
		errs := make([]error, 4)
		results := make([]SyncResult, 2)
		for i, p := range []*Publisher{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = p.Sync(ctx, "race")
				if removed != nil {
					errs[2+i] = p.Remove(ctx, "race", removed)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		for _, r := range results {
			conflicts += r.Attempts - 1
		}
		if added := results[0].Added + results[1].Added; added != 3 {
			t.Fatalf("round %d: the two Syncs added %d files in all, want 3: %+v", round, added, results)
		}
		tbl := loadTable(t, a, "race")
		files := plannedFiles(t, tbl)
		var want []string
		for _, m := range segs {
			want = append(want, a.fileURI(m))
		}
		slices.Sort(want)
		if !slices.Equal(files, want) {
			t.Fatalf("round %d: table has\n%v\nwant\n%v", round, files, want)
		}
		sameRecords(t, scanRecords(t, tbl), all)
	}
	t.Logf("%d commit conflicts retried over 6 rounds", conflicts)
}

// hookSource runs after once, the first time ColdSegments has answered:
// another writer acting between this writer's catalog read and its commit.
type hookSource struct {
	*source
	once  sync.Once
	after func()
}

func (h *hookSource) ColdSegments(ctx context.Context, stream string) ([]tiers.SegmentMeta, error) {
	segs, err := h.source.ColdSegments(ctx, stream)
	h.once.Do(h.after)
	return segs, err
}

// TestSyncDoesNotResurrectRemoved: node B reads the catalog (segment X
// still retained), then node A's retention takes X out of the catalog and
// Removes it from the table, then B commits. B's commit conflicts, and its
// retry, which reads the catalog again, must not put X back: A deletes X's
// object next, and the table would list a missing file.
func TestSyncDoesNotResurrectRemoved(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	a := open(t, s, src)
	ctx := context.Background()
	x := putSegment(t, s, "res", records(0, 10, 20000*day, 1000), pqfile.Options{})
	src.add(x)
	mustSync(t, a, "res")
	y := putSegment(t, s, "res", records(10, 10, 20000*day+1e9, 1000), pqfile.Options{})
	src.add(y)
	h := &hookSource{source: src, after: func() {
		src.drop("res", x.Base)
		if err := a.Remove(ctx, "res", []tiers.SegmentMeta{x}); err != nil {
			t.Error(err)
		}
	}}
	o := s.opts
	o.Segments = h
	b, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	res, err := b.Sync(ctx, "res")
	if err != nil {
		t.Fatal(err)
	}
	files := plannedFiles(t, loadTable(t, a, "res"))
	if len(files) != 1 || files[0] != a.fileURI(y) || res.Attempts < 2 {
		t.Fatalf("table has %v after %+v, want only %s after a conflict", files, res, a.fileURI(y))
	}
}
