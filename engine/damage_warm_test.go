package engine

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// warmRegions finds the parts of a warm segment file (docs/format/segment.md)
// by walking its bytes: the header, each frame's length and CRC, the
// records, the footer and the trailer.
func warmRegions(t *testing.T, b []byte) map[string]byteRanges {
	t.Helper()
	size := int64(len(b))
	footerStart := size - 8 - int64(binary.LittleEndian.Uint32(b[size-8:]))
	h := 20 + int64(binary.LittleEndian.Uint16(b[6:])) // magic, version, name_len, base, name, header_crc
	r := map[string]byteRanges{
		"header":  {{0, h}},
		"footer":  {{footerStart, size - 8}},
		"trailer": {{size - 8, size}},
	}
	for pos := h; pos < footerStart; {
		l := int64(binary.LittleEndian.Uint32(b[pos:]))
		r["frame header"] = append(r["frame header"], [2]int64{pos, pos + 8})
		r["record"] = append(r["record"], [2]int64{pos + 8, pos + 8 + l})
		pos += 8 + l
		if pos > footerStart {
			t.Fatalf("frames run past the footer at %d", footerStart)
		}
	}
	return r
}

// TestWarmSegmentDamage damages a warm-only segment file one bit at a time,
// densely in its header, frame headers, footer and trailer and sparsely in
// its records, opens the engine again and reads through it (runDamage).
func TestWarmSegmentDamage(t *testing.T) {
	t.Parallel() // mostly waiting on fsync: the three damage tests overlap well
	f := newDamageFixture(t, "w")
	f.build(t, func(e *Engine) []tiers.Record {
		recs := appendAll(t, e, "w", fixtureRecords(150, 60))
		if err := e.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		return recs
	})
	e, err := f.open(f.root)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := e.catalog.Segment(context.Background(), "w", 0)
	file, _ := filepath.Rel(f.root, e.warm.Path("w", 0))
	e.Close(context.Background())
	if err != nil || seg.Placements != tiers.Of(tiers.Warm) || seg.Count != 150 {
		t.Fatalf("fixture: segment %+v, %v; want 150 records in warm only", seg, err)
	}
	f.seg = &seg
	f.queries = standardQueries(f.want, seg)
	b, err := os.ReadFile(filepath.Join(f.root, file))
	if err != nil {
		t.Fatal(err)
	}
	regions := warmRegions(t, b)
	rng := rand.New(rand.NewPCG(20, 1))
	var flips []bitFlip
	for _, rn := range []struct {
		region string
		n      int
	}{{"header", 200}, {"trailer", 64}, {"footer", 900}, {"frame header", 500}, {"record", 400}} {
		flips = append(flips, regions[rn.region].sample(rng, rn.region, rn.n)...)
	}
	if testing.Short() {
		flips = flips[:min(300, len(flips))]
	}
	st := runDamage(t, f, damageTarget{name: "warm segment", file: file, flips: flips})
	if (!testing.Short() && st.flips < 2000) || st.changed == 0 || st.reported < st.changed {
		t.Fatalf("%d flips, %d changed an answer, verify reported %d", st.flips, st.changed, st.reported)
	}
}
