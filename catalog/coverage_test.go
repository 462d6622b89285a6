package catalog

import (
	"context"
	"errors"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

func tombstoned(m tiers.SegmentMeta) tiers.SegmentMeta {
	m.Tombstoned = t0
	return m
}

func TestCoverage(t *testing.T) {
	ctx := context.Background()
	type r = [2]uint64
	cases := []struct {
		name        string
		segs        []tiers.SegmentMeta
		raw         []tiers.SegmentMeta // written past PutSegment's checks, as damage would
		first, next uint64
		gaps, overl []r
	}{
		{"empty stream", nil, nil, 0, 0, nil, nil},
		{"contiguous", []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 20)}, nil, 0, 21, nil, nil},
		{"retention deleted the start", []tiers.SegmentMeta{seg("s", 100, 109), seg("s", 110, 119)}, nil, 100, 120, nil, nil},
		{"gap in the middle", []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 15, 19), seg("s", 25, 29)}, nil, 0, 30, []r{{10, 15}, {20, 25}}, nil},
		{"tombstones at the low end", []tiers.SegmentMeta{tombstoned(seg("s", 0, 9)), tombstoned(seg("s", 10, 19)), seg("s", 20, 29)}, nil, 20, 30, nil, nil},
		{"tombstone in the middle", []tiers.SegmentMeta{seg("s", 0, 9), tombstoned(seg("s", 10, 19)), seg("s", 20, 29)}, nil, 0, 30, []r{{10, 20}}, nil},
		{"tombstone at the top", []tiers.SegmentMeta{seg("s", 0, 9), tombstoned(seg("s", 10, 19))}, nil, 0, 20, []r{{10, 20}}, nil},
		{"all tombstoned", []tiers.SegmentMeta{tombstoned(seg("s", 0, 9))}, nil, 10, 10, nil, nil},
		{"newest deleted", []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 10, 19)}, nil, 0, 20, []r{{10, 20}}, nil}, // after DeleteSegment(10) below
		{"overlaps", []tiers.SegmentMeta{seg("s", 0, 9), seg("s", 12, 19), seg("s", 30, 39)}, []tiers.SegmentMeta{seg("s", 5, 14), seg("s", 8, 11), seg("s", 33, 35)}, 0, 40, []r{{20, 30}}, []r{{5, 15}, {33, 36}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := openT(t, Options{})
			if err := c.EnsureStream(ctx, "s"); err != nil {
				t.Fatal(err)
			}
			put(t, c, tc.segs...)
			if tc.name == "newest deleted" {
				if err := c.DeleteSegment(ctx, "s", 10); err != nil {
					t.Fatal(err)
				}
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
			first, next, gaps, overlaps, err := c.Coverage(ctx, "s")
			if err != nil {
				t.Fatal(err)
			}
			if first != tc.first || next != tc.next {
				t.Errorf("range [%d, %d), want [%d, %d)", first, next, tc.first, tc.next)
			}
			if !slices.Equal(gaps, tc.gaps) && !(len(gaps) == 0 && len(tc.gaps) == 0) {
				t.Errorf("gaps %v, want %v", gaps, tc.gaps)
			}
			if !slices.Equal(overlaps, tc.overl) && !(len(overlaps) == 0 && len(tc.overl) == 0) {
				t.Errorf("overlaps %v, want %v", overlaps, tc.overl)
			}
		})
	}
}

func TestCoverageErrors(t *testing.T) {
	ctx := context.Background()
	c, path := openT(t, Options{})
	if _, _, _, _, err := c.Coverage(ctx, "nope"); !errors.Is(err, tiers.ErrStreamNotFound) {
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
	if _, _, _, _, err := c.Coverage(ctx, "s"); !errors.As(err, &ce) || ce.Path != path {
		t.Fatalf("Coverage past next offset = %v, want *tiers.CorruptionError", err)
	}
}
