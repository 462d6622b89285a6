package warm

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// goodFile is a committed segment and where its parts are, found by walking
// the bytes independently of the reader.
type goodFile struct {
	data        []byte
	recs        []tiers.Record
	pos         []int // frame position of each record
	footerStart int
	interval    int
}

const (
	dmgStream = "dmg"
	dmgBase   = 100
	dmgK      = 150 // the damaged record's index: mid-block, not a block start
)

func makeGoodFile(t *testing.T) *goodFile {
	t.Helper()
	s := openStore(t, t.TempDir(), Options{IndexInterval: 16})
	recs := make([]tiers.Record, 400)
	for i := range recs {
		v := make([]byte, 40+i%41)
		for j := range v {
			v[j] = byte(i + j)
		}
		recs[i] = tiers.Record{Offset: dmgBase + uint64(i), TS: int64(1000 + i), Key: "key", Tags: []string{"t"}, Value: v}
	}
	commitSegment(t, s, dmgStream, recs)
	data, err := os.ReadFile(s.Path(dmgStream, dmgBase))
	if err != nil {
		t.Fatal(err)
	}
	g := &goodFile{data: data, recs: recs, interval: 16}
	g.footerStart = len(data) - 8 - int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	pos := headerFixedLen + len(dmgStream) + crcLen
	for range recs {
		g.pos = append(g.pos, pos)
		pos += frameHeaderLen + int(binary.LittleEndian.Uint32(data[pos:]))
	}
	if pos != g.footerStart || len(data) < 3*4096 {
		t.Fatalf("fixture: frames end at %d, footer at %d, file %d bytes", pos, g.footerStart, len(data))
	}
	return g
}

// frameHolding is the index of the record whose frame covers byte b.
func (g *goodFile) frameHolding(b int) int {
	for i := len(g.pos) - 1; i >= 0; i-- {
		if g.pos[i] <= b {
			return i
		}
	}
	return 0
}

func putU32(b []byte, at int, v uint32) { binary.LittleEndian.PutUint32(b[at:], v) }

// refooter recomputes the footer CRC after an edit, so only deeper checks
// can notice it.
func (g *goodFile) refooter(b []byte) {
	end := len(b) - trailerLen - crcLen
	putU32(b, end, crc32.Checksum(b[g.footerStart:end], castagnoli))
}

func TestDamagedFiles(t *testing.T) {
	g := makeGoodFile(t)
	size := len(g.data)
	// stage says which call must report the damage: "acquire" (the file is
	// rejected outright), "read" (Get/Scan/Verify at the damaged frame, the
	// records before it intact) or "verify" (only the full check sees it).
	cases := []struct {
		name   string
		damage func(b []byte) []byte
		at     uint64 // base whose path the damaged bytes are written to; 0 = dmgBase
		stage  string
		is     error // expected cause; nil = any corruption
		offset int   // expected CorruptionError.Offset for acquire/verify
		frame  int   // damaged record index, for "read"
		// nextFails: Get of the two records after the damaged one (same
		// block) walks past the damage and must blame the damaged frame;
		// otherwise they must read intact.
		nextFails bool
	}{
		{name: "empty file", damage: func(b []byte) []byte { return nil }, stage: "acquire", is: ErrBadMagic, offset: 0},
		{name: "torn last frame", damage: func(b []byte) []byte { return b[:g.pos[399]+5] }, stage: "acquire", is: ErrBadMagic, offset: g.pos[399] + 5 - 8},
		{name: "truncated to half", damage: func(b []byte) []byte { return b[:size/2] }, stage: "acquire", is: ErrBadMagic, offset: size/2 - 8},
		{name: "truncated footer", damage: func(b []byte) []byte { return b[:g.footerStart+40] }, stage: "acquire", is: ErrBadMagic, offset: g.footerStart + 32},
		{name: "trailer cut by one byte", damage: func(b []byte) []byte { return b[:size-1] }, stage: "acquire", is: ErrBadMagic, offset: size - 9},
		{name: "footer length too large", damage: func(b []byte) []byte { putU32(b, size-8, 1<<31); return b }, stage: "acquire", is: ErrBadFooter, offset: size - 8},
		{name: "footer length too small", damage: func(b []byte) []byte { putU32(b, size-8, 20); return b }, stage: "acquire", is: ErrBadFooter, offset: size - 8},
		{name: "footer length off by 8", damage: func(b []byte) []byte {
			putU32(b, size-8, uint32(size-8-g.footerStart-8))
			return b
		}, stage: "acquire", is: ErrChecksum, offset: g.footerStart + 8},
		{name: "flipped bit in footer block table", damage: func(b []byte) []byte {
			b[g.footerStart+footerFixedLen+5*blockEntryLen+9] ^= 1
			return b
		}, stage: "acquire", is: ErrChecksum, offset: g.footerStart},
		{name: "flipped bit in footer digest", damage: func(b []byte) []byte { b[g.footerStart+50] ^= 0x80; return b }, stage: "acquire", is: ErrChecksum, offset: g.footerStart},
		{name: "footer count inconsistent", damage: func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[g.footerStart+16:], 401)
			g.refooter(b)
			return b
		}, stage: "acquire", is: ErrBadFooter, offset: g.footerStart},
		{name: "block table out of order", damage: func(b []byte) []byte {
			e := g.footerStart + footerFixedLen + 3*blockEntryLen + 8
			binary.LittleEndian.PutUint64(b[e:], uint64(g.pos[2*16]))
			g.refooter(b)
			return b
		}, stage: "acquire", is: ErrBadFooter, offset: g.footerStart + footerFixedLen + 3*blockEntryLen},
		{name: "wrong header magic", damage: func(b []byte) []byte { b[1] = 'X'; return b }, stage: "acquire", is: ErrBadMagic, offset: 0},
		{name: "wrong trailer magic", damage: func(b []byte) []byte { b[size-1] = 'X'; return b }, stage: "acquire", is: ErrBadMagic, offset: size - 8},
		{name: "flipped bit in stream name", damage: func(b []byte) []byte { b[headerFixedLen] ^= 4; return b }, stage: "acquire", is: ErrChecksum, offset: 0},
		{name: "zeroed first page", damage: func(b []byte) []byte { clear(b[:4096]); return b }, stage: "acquire", is: ErrBadMagic, offset: 0},
		{name: "file of another segment", damage: func(b []byte) []byte { return b }, at: 555, stage: "acquire", is: ErrBadHeader, offset: 0},
		{name: "unknown version", damage: func(b []byte) []byte {
			// A newer tierd's file: its header checksum covers its version.
			b[4] = formatVersion + 1
			n := headerFixedLen + int(binary.LittleEndian.Uint16(b[6:]))
			putU32(b, n, crc32.Checksum(b[:n], castagnoli))
			return b
		}, stage: "acquire", is: ErrUnsupportedVersion},
		// 3 → 2 names a version this build reads, so the header's
		// checksum fails; 3 → 7 one it does not, and the checksum shows
		// that the version field, not the file's age, is the cause.
		{name: "flipped bit in version (3 → 2)", damage: func(b []byte) []byte { b[4] ^= 0x01; return b }, stage: "acquire", is: ErrChecksum, offset: 0},
		{name: "flipped bit in version (3 → 7)", damage: func(b []byte) []byte { b[4] ^= 0x04; return b }, stage: "acquire", is: ErrBadHeader, offset: 0},
		{name: "flipped high bit in version", damage: func(b []byte) []byte { b[5] ^= 0x80; return b }, stage: "acquire", is: ErrBadHeader, offset: 0},

		{name: "flipped bit in record body", damage: func(b []byte) []byte { b[g.pos[dmgK+1]-1] ^= 0x10; return b }, stage: "read", is: ErrChecksum, frame: dmgK},
		{name: "flipped bit in record offset", damage: func(b []byte) []byte { b[g.pos[dmgK]+8] ^= 0x01; return b }, stage: "read", is: ErrChecksum, frame: dmgK, nextFails: true},
		{name: "flipped JSON hint bit in a frame length", damage: func(b []byte) []byte { b[g.pos[dmgK]+3] ^= 0x80; return b }, stage: "read", is: ErrChecksum, frame: dmgK},
		{name: "flipped bit in frame crc", damage: func(b []byte) []byte { b[g.pos[dmgK]+5] ^= 0x01; return b }, stage: "read", is: ErrChecksum, frame: dmgK},
		{name: "length field slightly long", damage: func(b []byte) []byte {
			putU32(b, g.pos[dmgK], binary.LittleEndian.Uint32(b[g.pos[dmgK]:])+3)
			return b
		}, stage: "read", is: ErrChecksum, frame: dmgK, nextFails: true},
		{name: "length field slightly short", damage: func(b []byte) []byte {
			putU32(b, g.pos[dmgK], binary.LittleEndian.Uint32(b[g.pos[dmgK]:])-3)
			return b
		}, stage: "read", is: ErrChecksum, frame: dmgK, nextFails: true},
		{name: "length field huge", damage: func(b []byte) []byte { putU32(b, g.pos[dmgK], 0x7fffffff); return b }, stage: "read", is: ErrBadFrame, frame: dmgK, nextFails: true},
		{name: "length field zero", damage: func(b []byte) []byte { putU32(b, g.pos[dmgK], 0); return b }, stage: "read", is: ErrBadFrame, frame: dmgK, nextFails: true},
		{name: "wrong offset with valid crc", damage: func(b []byte) []byte {
			p := g.pos[dmgK]
			b[p+8] ^= 0x01 // offset 250 → 251, same varint length
			n := binary.LittleEndian.Uint32(b[p:])
			putU32(b, p+4, frameCRC(b[p:p+4], b[p+8:p+8+int(n)]))
			return b
		}, stage: "read", is: ErrBadFrame, frame: dmgK, nextFails: true},
		{name: "zeroed 4 KiB page", damage: func(b []byte) []byte { clear(b[4096:8192]); return b }, stage: "read", frame: g.frameHolding(4096), nextFails: true},

		{name: "digest rewritten with valid footer crc", damage: func(b []byte) []byte {
			b[g.footerStart+40] ^= 0xff
			g.refooter(b)
			return b
		}, stage: "verify", is: ErrDigestMismatch, offset: g.footerStart},
		{name: "block ts range rewritten with valid footer crc", damage: func(b []byte) []byte {
			e := g.footerStart + footerFixedLen + 4*blockEntryLen + 16
			binary.LittleEndian.PutUint64(b[e:], binary.LittleEndian.Uint64(b[e:])-1) // min ts of block 4
			g.refooter(b)
			return b
		}, stage: "verify", is: ErrBadFooter, offset: g.footerStart + footerFixedLen + 4*blockEntryLen},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantCorrupt := tc.is != ErrUnsupportedVersion // a newer format is not damage
			dir := t.TempDir()
			s := openStore(t, dir, Options{IndexInterval: 16})
			base := uint64(dmgBase)
			if tc.at != 0 {
				base = tc.at
			}
			path := s.Path(dmgStream, base)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, tc.damage(append([]byte(nil), g.data...)), 0o644); err != nil {
				t.Fatal(err)
			}
			check := func(call string, err error, offset int) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error", call)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("%s: %v, want %v", call, err, tc.is)
				}
				var ce *tiers.CorruptionError
				if errors.As(err, &ce) != wantCorrupt {
					t.Fatalf("%s: %v: CorruptionError=%v, want %v", call, err, !wantCorrupt, wantCorrupt)
				}
				if wantCorrupt {
					if ce.Path != path || ce.Offset != int64(offset) {
						t.Errorf("%s: corruption at %s byte %d, want %s byte %d", call, ce.Path, ce.Offset, path, offset)
					}
				}
			}

			r, err := s.Acquire(dmgStream, base)
			if tc.stage == "acquire" {
				if err == nil {
					r.Release()
				}
				check("Acquire", err, tc.offset)
				return
			}
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			defer r.Release()

			if tc.stage == "verify" {
				for i := range g.recs {
					if got, err := r.Get(g.recs[i].Offset); err != nil || !got.Equal(&g.recs[i]) {
						t.Fatalf("Get(%d): %v", g.recs[i].Offset, err)
					}
				}
				got, err := collect(r, allQuery())
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				sameRecords(t, "Scan", got, g.recs)
				check("Verify", r.Verify(), tc.offset)
				return
			}

			// "read": the damaged frame is reported at its position by
			// every read that touches it; records before it still read.
			k, at := tc.frame, g.pos[tc.frame]
			_, err = r.Get(g.recs[k].Offset)
			check("Get(damaged)", err, at)
			for _, j := range []int{k + 1, k + 2} {
				if j%g.interval == 0 {
					t.Fatalf("fixture: record %d starts a block", j)
				}
				next, err := r.Get(g.recs[j].Offset)
				if tc.nextFails {
					ce := asCorruption(t, "Get(after damage, same block)", err)
					if ce.Offset != int64(at) {
						t.Errorf("Get(%d) after damage, same block: %v, want corruption at byte %d", j, err, at)
					}
				} else if err != nil || !next.Equal(&g.recs[j]) {
					t.Errorf("Get(%d) after damage, same block: %v, want the intact record", j, err)
				}
			}
			for i := range k {
				if got, err := r.Get(g.recs[i].Offset); err != nil || !got.Equal(&g.recs[i]) {
					t.Fatalf("Get(%d) before the damage: %v", g.recs[i].Offset, err)
				}
			}
			lastBlock := (len(g.recs) - 1) / g.interval * g.interval
			if got, err := r.Get(g.recs[lastBlock].Offset); err != nil || !got.Equal(&g.recs[lastBlock]) {
				t.Fatalf("Get(%d) in a later block: %v", g.recs[lastBlock].Offset, err)
			}
			got, err := collect(r, allQuery())
			check("Scan", err, at)
			sameRecords(t, "Scan before the damage", got, g.recs[:k])
			check("Verify", r.Verify(), at)
		})
	}
}
