package pgcatalog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// FuzzSegmentRow: whatever a catalog_segments row holds, decoding it
// returns a segment that keeps every invariant, which encodes to the same
// row, or a *tiers.CorruptionError wrapping catalog.ErrDamaged; it never
// panics or guesses.
func FuzzSegmentRow(f *testing.F) {
	digest := make([]byte, 32)
	sealed := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC).UnixMicro()
	f.Add("s", int64(0), int64(9), int64(10), int64(1000), int64(0), int64(9), sealed, digest, "warm,cold", int64(5), int64(0), false)
	f.Add("s", int64(10), int64(9), int64(0), int64(0), int64(0), int64(0), sealed, digest, "warm", int64(0), sealed, true)
	f.Add("a.b", int64(5), int64(5), int64(1), int64(1), int64(-3), int64(3), sealed, digest[:3], "cold,NULL,frozen", int64(-1), sealed-1, true)
	f.Fuzz(func(t *testing.T, stream string, base, last, count, size, minTS, maxTS, sealedUs int64, digest []byte, placements string, cold, tombUs int64, hasTomb bool) {
		sealedAt := time.UnixMicro(sealedUs).UTC()
		r := segRow{stream: &stream, base: &base, last: &last, count: &count, bytes: &size, minTS: &minTS, maxTS: &maxTS,
			sealed: &sealedAt, digest: digest, placements: []*string{}, cold: &cold}
		if placements != "" {
			for _, p := range strings.Split(placements, ",") {
				if p == "NULL" {
					r.placements = append(r.placements, nil)
				} else {
					r.placements = append(r.placements, &p)
				}
			}
		}
		if hasTomb {
			tomb := time.UnixMicro(tombUs).UTC()
			r.tomb = &tomb
		}
		m, err := r.meta()
		if err != nil {
			var ce *tiers.CorruptionError
			if !errors.As(err, &ce) || !errors.Is(err, catalog.ErrDamaged) {
				t.Fatalf("decoding failed with %v, not a corruption error", err)
			}
			return
		}
		if err := catalog.CheckSegment(&m); err != nil {
			t.Fatalf("decoded a segment that breaks an invariant: %v: %+v", err, m)
		}
		// What decodes encodes to the same row.
		args := segArgs(&m)
		names := args[9].([]string)
		if got := strings.Join(names, ","); got != placements {
			t.Fatalf("placements %q encode as %q", placements, got)
		}
		if args[1].(int64) != base || args[2].(int64) != last || args[3].(int64) != count || args[10].(int64) != cold {
			t.Fatalf("row %d %d %d %d encodes as %v", base, last, count, cold, args)
		}
		if tomb := args[11].(*time.Time); (tomb != nil) != hasTomb || hasTomb && tomb.UnixMicro() != tombUs {
			t.Fatalf("tombstone %v (set %v) encodes as %v", tombUs, hasTomb, tomb)
		}
	})
}
