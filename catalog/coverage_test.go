package catalog

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

// tombAt is when the tests tombstone segments: after every seal.
var tombAt = t0.Add(24 * time.Hour)

// justified approves every segment a Tombstone asks about.
func justified(*tiers.SegmentMeta) error { return nil }

// tombstone tombstones (stream, base) and every live segment below it.
func tombstone(t *testing.T, c *Catalog, stream string, base uint64) []tiers.SegmentMeta {
	t.Helper()
	done, err := c.Tombstone(context.Background(), stream, base, tombAt, justified)
	if err != nil {
		t.Fatalf("Tombstone(%s, %d): %v", stream, base, err)
	}
	return done
}

// tombstoned returns m as a raw write would store it tombstoned, past the
// watermark's bookkeeping.
func tombstoned(m tiers.SegmentMeta) tiers.SegmentMeta {
	m.Tombstoned = tombAt
	return m
}

func TestCoverage(t *testing.T) {
	ctx := context.Background()
	type r = [2]uint64
	cases := []struct {
		name        string
		segs        []tiers.SegmentMeta
		prep        func(t *testing.T, c *Catalog)
		raw         []tiers.SegmentMeta // written past the catalog's checks, as damage would
		first, next uint64
		gaps, overl []r
		misplaced   []uint64
		tombs       int
	}{
		{name: "empty stream"},
		{name: "contiguous", segs: []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 20)}, next: 21},
		{name: "retention deleted the start", segs: []tiers.SegmentMeta{seg("s", 0, 49), seg("s", 50, 99), seg("s", 100, 109), seg("s", 110, 119)},
			prep: func(t *testing.T, c *Catalog) {
				tombstone(t, c, "s", 50)
				for _, b := range []uint64{0, 50} {
					if err := c.CommitDelete(ctx, "s", b); err != nil {
						t.Fatal(err)
					}
				}
			}, first: 100, next: 120},
		{name: "start missing, no retention", segs: []tiers.SegmentMeta{seg("s", 100, 109), seg("s", 110, 119)}, next: 120, gaps: []r{{0, 100}}},
		{name: "gap in the middle", segs: []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 15, 19), seg("s", 25, 29)}, next: 30, gaps: []r{{10, 15}, {20, 25}}},
		{name: "tombstones at the low end", segs: []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 29)},
			prep: func(t *testing.T, c *Catalog) { tombstone(t, c, "s", 10) }, first: 20, next: 30, tombs: 2},
		{name: "tombstone in the middle", segs: []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 20, 29)}, raw: []tiers.SegmentMeta{tombstoned(seg("s", 10, 19))},
			next: 30, misplaced: []uint64{10}, tombs: 1},
		{name: "all tombstoned", segs: []tiers.SegmentMeta{seg("s", 0, 9)}, prep: func(t *testing.T, c *Catalog) { tombstone(t, c, "s", 0) }, first: 10, next: 10, tombs: 1},
		{name: "newest deleted", segs: []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 10, 19)},
			prep: func(t *testing.T, c *Catalog) {
				if err := c.DeleteSegment(ctx, "s", 10); err != nil {
					t.Fatal(err)
				}
			}, next: 20, gaps: []r{{10, 20}}},
		{name: "overlaps", segs: []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 12, 19), seg("s", 30, 39)}, raw: []tiers.SegmentMeta{seg("s", 5, 14), seg("s", 8, 11), seg("s", 33, 35)},
			next: 40, gaps: []r{{20, 30}}, overl: []r{{5, 15}, {33, 36}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := openT(t, Options{})
			if err := c.ensureStream(ctx, "s"); err != nil {
				t.Fatal(err)
			}
			put(t, c, tc.segs...)
			if tc.prep != nil {
				tc.prep(t, c)
			}
			if err := c.db.Update(func(tx *bolt.Tx) error {
				for _, m := range tc.raw {
					if err := tx.Bucket([]byte(bucketSegments)).Bucket([]byte("s")).Put(segmentKey(m.Base), encodeSegment(&m)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			cv, err := c.Coverage(ctx, "s")
			if err != nil {
				t.Fatal(err)
			}
			if cv.First != tc.first || cv.Next != tc.next {
				t.Errorf("range [%d, %d), want [%d, %d)", cv.First, cv.Next, tc.first, tc.next)
			}
			if !slices.Equal(cv.Gaps, tc.gaps) && !(len(cv.Gaps) == 0 && len(tc.gaps) == 0) {
				t.Errorf("gaps %v, want %v", cv.Gaps, tc.gaps)
			}
			if !slices.Equal(cv.Overlaps, tc.overl) && !(len(cv.Overlaps) == 0 && len(tc.overl) == 0) {
				t.Errorf("overlaps %v, want %v", cv.Overlaps, tc.overl)
			}
			if got := bases(cv.Misplaced); !slices.Equal(got, tc.misplaced) && !(len(got) == 0 && len(tc.misplaced) == 0) {
				t.Errorf("misplaced %v, want %v", got, tc.misplaced)
			}
			if len(cv.Tombstoned) != tc.tombs {
				t.Errorf("%d tombstoned, want %d", len(cv.Tombstoned), tc.tombs)
			}
		})
	}
}

func TestCoverageErrors(t *testing.T) {
	ctx := context.Background()
	c, path := openT(t, Options{})
	if _, err := c.Coverage(ctx, "nope"); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("unknown stream: %v", err)
	}
	put(t, c, seg("s", 0, 9))
	// A segment beyond the stream's next offset means the stream value is wrong.
	if err := c.db.Update(func(tx *bolt.Tx) error {
		m := seg("s", 10, 19)
		return tx.Bucket([]byte(bucketSegments)).Bucket([]byte("s")).Put(segmentKey(10), encodeSegment(&m))
	}); err != nil {
		t.Fatal(err)
	}
	var ce *tiers.CorruptionError
	if _, err := c.Coverage(ctx, "s"); !errors.As(err, &ce) || ce.Path != path {
		t.Fatalf("Coverage past next offset = %v, want *tiers.CorruptionError", err)
	}
}
