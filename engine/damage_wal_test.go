package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// walFrame is one frame of a WAL file (docs/format/wal.md): its bytes
// [start, end), its type, and for a batch its first record's offset.
type walFrame struct {
	start, end int64
	typ        byte
	first      uint64
}

// walFrames walks a WAL file's frames independently of the reader.
func walFrames(t *testing.T, b []byte) []walFrame {
	t.Helper()
	var out []walFrame
	for pos := int64(8); pos < int64(len(b)); {
		n := int64(binary.LittleEndian.Uint32(b[pos:]))
		fr := walFrame{start: pos, end: pos + 8 + n, typ: b[pos+8]}
		if fr.typ == 1 { // stream, count, then each record: length and encoding (offset first)
			body := b[pos+9 : fr.end]
			sl, k := binary.Uvarint(body)
			body = body[k+int(sl):]
			_, k = binary.Uvarint(body) // count
			body = body[k:]
			_, k = binary.Uvarint(body) // the first record's length
			fr.first, _ = binary.Uvarint(body[k:])
		}
		out = append(out, fr)
		pos = fr.end
	}
	return out
}

// TestWALDamage damages the WAL of an archive whose records are all still
// in it (nothing persisted yet) one bit at a time, in its newest file and
// in two older ones, and opens the engine on each copy: damage in an older
// file stops start-up with a *tiers.CorruptionError naming the file and
// the frame's offset, and changes no file; in the newest file start-up
// either stops so, or drops the damaged last frame (the documented torn
// tail) and nothing else; every read of what start-up recovered is exact
// (runDamage).
func TestWALDamage(t *testing.T) {
	t.Parallel() // mostly waiting on fsync: the three damage tests overlap well
	f := newDamageFixture(t, "l")
	f.opts = func(o *Options) { o.WALSegmentBytes = 3000 }
	f.build(t, func(e *Engine) []tiers.Record {
		return appendAll(t, e, "l", fixtureRecords(200, 60))
	})
	f.queries = standardQueries(f.want, tiers.SegmentMeta{Base: 0, Last: uint64(len(f.want) - 1)})
	dir := filepath.Join(f.root, "data", "wal")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".wal") {
			files = append(files, e.Name())
		}
	}
	slices.Sort(files)
	if len(files) < 4 {
		t.Fatalf("fixture: %d WAL files %v, want several", len(files), files)
	}
	rng := rand.New(rand.NewPCG(30, 1))
	for i, name := range []string{files[0], files[len(files)/2], files[len(files)-1]} {
		newest := i == 2
		file := filepath.Join("data", "wal", name)
		b, err := os.ReadFile(filepath.Join(f.root, file))
		if err != nil {
			t.Fatal(err)
		}
		frames := walFrames(t, b)
		var hdrs, bodies byteRanges
		for _, fr := range frames {
			hdrs = append(hdrs, [2]int64{fr.start, fr.start + 9})
			bodies = append(bodies, [2]int64{fr.start + 9, fr.end})
		}
		n := 300
		if newest {
			n = 500
		}
		flips := byteRanges{{0, 8}}.sample(rng, "file header", 64)
		flips = append(flips, hdrs.sample(rng, "frame header", n)...)
		flips = append(flips, bodies.sample(rng, "frame body", n)...)
		if testing.Short() {
			flips = flips[:min(150, len(flips))]
		}
		tg := damageTarget{name: "WAL file " + name, file: file, flips: flips, fresh: true,
			openErr: func(fl bitFlip, err error) error {
				var ce *tiers.CorruptionError
				if !errors.As(err, &ce) {
					return fmt.Errorf("start-up error %v is not a *tiers.CorruptionError", err)
				}
				if filepath.Base(ce.Path) != name || ce.Offset < 0 || ce.Offset > fl.Pos {
					return fmt.Errorf("start-up error names %s at byte %d, the damage is in %s at byte %d", ce.Path, ce.Offset, name, fl.Pos)
				}
				if !strings.Contains(err.Error(), name) {
					return fmt.Errorf("start-up error %q does not name the file", err)
				}
				return nil
			},
		}
		if newest {
			tg.loseFrom = func(fl bitFlip) uint64 {
				for _, fr := range frames {
					if fl.Pos >= fr.start && fl.Pos < fr.end && fr.typ == 1 {
						return fr.first
					}
				}
				return math.MaxUint64
			}
		}
		st := runDamage(t, f, tg)
		if !newest && st.refused != st.flips {
			t.Fatalf("%s: %d of %d flips in an older WAL file did not stop start-up", name, st.flips-st.refused, st.flips)
		}
	}
}
