package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// damageFixture is two files of five frames each, written one frame per
// group by two sessions: files[0] is older, files[1] the newest.
type damageFixture struct {
	dir     string
	files   [2]string
	starts  [2][]int // frame offsets
	sizes   [2]int64
	batches []Batch // in log order: 5 in files[0], 5 in files[1]
}

func newDamageFixture(t *testing.T) *damageFixture {
	t.Helper()
	fx := &damageFixture{dir: t.TempDir(), batches: genBatches(2, 10, 2, 1200)}
	opts := Options{Dir: fx.dir}
	for s := range 2 {
		w, _ := openWAL(t, opts)
		writeEach(t, w, fx.batches[s*5:s*5+5])
		closeWAL(t, w)
	}
	files := walFiles(t, fx.dir)
	if len(files) != 2 {
		t.Fatalf("fixture has files %v, want 2", files)
	}
	for i, f := range files {
		fx.files[i] = f
		fx.starts[i] = frameStarts(t, f)
		if len(fx.starts[i]) != 5 {
			t.Fatalf("%s has %d frames, want 5", f, len(fx.starts[i]))
		}
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		fx.sizes[i] = st.Size()
	}
	return fx
}

func modify(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDamage(t *testing.T) {
	const older, newest = 0, 1
	type outcome struct {
		// On success: how many batches replay, and the newest file's size
		// after repair (-1: unchanged).
		replayed int
		size     func(fx *damageFixture) int64
		// On failure: the file index and offset the CorruptionError names.
		corruptFile int
		corruptAt   func(fx *damageFixture) int64
	}
	unchanged := func(fx *damageFixture) int64 { return fx.sizes[newest] }
	frameAt := func(file, frame int) func(*damageFixture) int64 {
		return func(fx *damageFixture) int64 { return int64(fx.starts[file][frame]) }
	}
	lastFrame := func(fx *damageFixture) int { return fx.starts[newest][4] }
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, fx *damageFixture)
		want   outcome
	}{
		{
			name:   "intact",
			damage: func(*testing.T, *damageFixture) {},
			want:   outcome{replayed: 10, size: unchanged},
		},
		{
			name: "torn last frame",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { return b[:lastFrame(fx)+100] })
			},
			want: outcome{replayed: 9, size: frameAt(newest, 4)},
		},
		{
			name: "torn last frame header",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { return b[:lastFrame(fx)+5] })
			},
			want: outcome{replayed: 9, size: frameAt(newest, 4)},
		},
		{
			name: "last frame fails its crc",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { b[lastFrame(fx)+200] ^= 0x10; return b })
			},
			want: outcome{replayed: 9, size: frameAt(newest, 4)},
		},
		{
			name: "trailing zeros",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { return append(b, make([]byte, 4096)...) })
			},
			want: outcome{replayed: 10, size: unchanged},
		},
		{
			name: "trailing garbage that is no frame",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { return append(b, bytes.Repeat([]byte("garbage!"), 50)...) })
			},
			want: outcome{replayed: 10, size: unchanged},
		},
		{
			name: "flipped bit in an earlier frame of the newest file",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { b[fx.starts[newest][2]+300] ^= 0x01; return b })
			},
			want: outcome{corruptFile: newest, corruptAt: frameAt(newest, 2)},
		},
		{
			name: "flipped bit in the crc of an earlier frame",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { b[fx.starts[newest][1]+5] ^= 0x80; return b })
			},
			want: outcome{corruptFile: newest, corruptAt: frameAt(newest, 1)},
		},
		{
			name: "flipped bit in the last frame of an older file",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[older], func(b []byte) []byte { b[fx.starts[older][4]+100] ^= 0x04; return b })
			},
			want: outcome{corruptFile: older, corruptAt: frameAt(older, 4)},
		},
		{
			name: "torn tail of an older file",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[older], func(b []byte) []byte { return b[:fx.starts[older][4]+20] })
			},
			want: outcome{corruptFile: older, corruptAt: frameAt(older, 4)},
		},
		{
			name: "bad length field, longer",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { b[fx.starts[newest][1]+1] += 3; return b })
			},
			want: outcome{corruptFile: newest, corruptAt: frameAt(newest, 1)},
		},
		{
			name: "bad length field, past end of file",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { b[fx.starts[newest][1]+3] = 0x7f; return b })
			},
			want: outcome{corruptFile: newest, corruptAt: frameAt(newest, 1)},
		},
		{
			name: "bad length field, shorter",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { b[fx.starts[newest][3]+1]--; return b })
			},
			want: outcome{corruptFile: newest, corruptAt: frameAt(newest, 3)},
		},
		{
			name: "zero length field",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { copy(b[fx.starts[newest][2]:], make([]byte, 4)); return b })
			},
			want: outcome{corruptFile: newest, corruptAt: frameAt(newest, 2)},
		},
		{
			name: "zeroed page in the middle",
			damage: func(t *testing.T, fx *damageFixture) {
				from := fx.starts[newest][1] + 10
				if from+4096 >= fx.starts[newest][4] {
					t.Fatalf("fixture frames too small: zeroed page reaches the last frame")
				}
				modify(t, fx.files[newest], func(b []byte) []byte { copy(b[from:], make([]byte, 4096)); return b })
			},
			want: outcome{corruptFile: newest, corruptAt: frameAt(newest, 1)},
		},
		{
			name: "zeroed page over the tail",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte {
					return append(b[:fx.starts[newest][3]+40], make([]byte, 4096)...)
				})
			},
			want: outcome{replayed: 8, size: frameAt(newest, 3)},
		},
		{
			name: "truncated header of the newest file",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { return b[:5] })
			},
			want: outcome{replayed: 5, size: func(*damageFixture) int64 { return headerLen }},
		},
		{
			name: "empty newest file",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { return nil })
			},
			want: outcome{replayed: 5, size: func(*damageFixture) int64 { return headerLen }},
		},
		{
			name: "truncated header of an older file",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[older], func(b []byte) []byte { return b[:5] })
			},
			want: outcome{corruptFile: older, corruptAt: func(*damageFixture) int64 { return 0 }},
		},
		{
			name: "zeroed header of the newest file, frames after it",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { copy(b, make([]byte, headerLen)); return b })
			},
			want: outcome{corruptFile: newest, corruptAt: func(*damageFixture) int64 { return 0 }},
		},
		{
			name: "unknown format version",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte { b[4] = FormatVersion + 1; return b })
			},
			want: outcome{corruptFile: newest, corruptAt: func(*damageFixture) int64 { return 0 }},
		},
		{
			name: "frame with a valid crc but an unknown type",
			damage: func(t *testing.T, fx *damageFixture) {
				modify(t, fx.files[newest], func(b []byte) []byte {
					// A valid frame of an unknown type at the tail: a torn
					// write cannot make it, so it is not repaired away.
					frame := appendFrame(nil, &fx.batches[0])
					frame[frameHeaderLen] = 4
					return append(b, reframe(frame)...)
				})
			},
			want: outcome{corruptFile: newest, corruptAt: func(fx *damageFixture) int64 { return fx.sizes[newest] }},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newDamageFixture(t)
			tc.damage(t, fx)
			var got []Batch
			w, err := Open(context.Background(), Options{Dir: fx.dir}, func(b Batch) error {
				got = append(got, b)
				return nil
			})
			if tc.want.corruptAt != nil {
				var ce *tiers.CorruptionError
				if !errors.As(err, &ce) {
					t.Fatalf("Open = %v, want a *tiers.CorruptionError", err)
				}
				if ce.Path != fx.files[tc.want.corruptFile] || ce.Offset != tc.want.corruptAt(fx) {
					t.Fatalf("CorruptionError names %s at %d, want %s at %d (%v)",
						ce.Path, ce.Offset, fx.files[tc.want.corruptFile], tc.want.corruptAt(fx), err)
				}
				if files := walFiles(t, fx.dir); len(files) != 2 {
					t.Errorf("failed Open left files %v", files)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if err := batchesEqual(got, fx.batches[:tc.want.replayed]); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(fx.files[newest])
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.want.size(fx); st.Size() != want {
				t.Errorf("newest file is %d bytes after repair, want %d", st.Size(), want)
			}
			// The log appends after the repair, and the repaired file
			// replays cleanly now that it is no longer the newest.
			extra := Batch{Stream: "extra", Records: []tiers.Record{{Offset: 0, Value: []byte("after repair")}}}
			writeEach(t, w, []Batch{extra})
			closeWAL(t, w)
			w, again := openWAL(t, Options{Dir: fx.dir})
			defer closeWAL(t, w)
			if err := batchesEqual(again, append(fx.batches[:tc.want.replayed:tc.want.replayed], extra)); err != nil {
				t.Fatalf("after repair: %v", err)
			}
		})
	}
}

// reframe recomputes a frame's CRC after a test edited its payload.
func reframe(frame []byte) []byte {
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(frame[frameHeaderLen:], castagnoli))
	return frame
}

func TestMissingMiddleFile(t *testing.T) {
	opts := Options{Dir: t.TempDir(), SegmentBytes: 1}
	w, _ := openWAL(t, opts)
	writeEach(t, w, genBatches(1, 4, 1, 10))
	closeWAL(t, w)
	files := walFiles(t, opts.Dir)
	if err := os.Remove(files[1]); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), opts, nil)
	var ce *tiers.CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrMissingFile) || ce.Path != files[1] {
		t.Fatalf("Open = %v, want a CorruptionError naming %s", err, files[1])
	}
}

func TestLeftoverTempFileIsRemoved(t *testing.T) {
	opts := Options{Dir: t.TempDir()}
	w, _ := openWAL(t, opts)
	batches := genBatches(1, 2, 1, 10)
	writeEach(t, w, batches)
	closeWAL(t, w)
	tmp := filepath.Join(opts.Dir, segmentName(99)+tmpSuffix)
	if err := os.WriteFile(tmp, []byte("TWA"), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(opts.Dir, "notes.txt")
	if err := os.WriteFile(foreign, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, replayed := openWAL(t, opts)
	defer closeWAL(t, w)
	if err := batchesEqual(replayed, batches); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("leftover %s: %v", tmp, err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a file that is not the WAL's was touched: %v", err)
	}
}

// FuzzOpen writes arbitrary bytes as a WAL file, once as the newest file and
// once as an older one, and opens the log: it must never panic, must fail
// only with a CorruptionError, and a repair must be final (a second Open
// replays the same batches).
func FuzzOpen(f *testing.F) {
	b := genBatches(2, 3, 2, 20)
	// A version-2 file: its snapshot, plain batches and a producer's.
	valid := appendSnapshotFrame(appendHeader(nil), []ProducerState{{Stream: "stream-0", Producer: tiers.ProducerID{1}, Seq: 4, First: 0, Count: 1, At: 5}})
	for i := range b {
		if i == 1 {
			b[i].Producer, b[i].Seq, b[i].At = tiers.ProducerID{2}, 7, 99
		}
		valid = appendFrame(valid, &b[i])
	}
	f.Add(valid)
	v1 := appendHeader(nil)
	v1[4] = 1
	plain := genBatches(1, 2, 2, 8)
	for i := range plain {
		v1 = appendFrame(v1, &plain[i])
	}
	f.Add(v1)
	f.Add(valid[:len(valid)-7])
	f.Add(append(bytes.Clone(valid), make([]byte, 64)...))
	f.Add(appendHeader(nil))
	f.Add([]byte{})
	f.Add([]byte("TWA"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, asOlder := range []bool{false, true} {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, segmentName(1)), data, 0o644); err != nil {
				t.Fatal(err)
			}
			if asOlder {
				if err := os.WriteFile(filepath.Join(dir, segmentName(2)), appendHeader(nil), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var first []Batch
			w, err := Open(context.Background(), Options{Dir: dir, Sync: tiers.SyncNone}, func(b Batch) error {
				first = append(first, b)
				return nil
			})
			var producers []ProducerState
			if err == nil {
				producers = sortedProducers(w)
			}
			if err != nil {
				var ce *tiers.CorruptionError
				if !errors.As(err, &ce) {
					t.Fatalf("Open failed without a CorruptionError: %v", err)
				}
				continue
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var second []Batch
			w, err = Open(context.Background(), Options{Dir: dir, Sync: tiers.SyncNone}, func(b Batch) error {
				second = append(second, b)
				return nil
			})
			if err != nil {
				t.Fatalf("second Open after a successful one: %v", err)
			}
			again := sortedProducers(w)
			w.Close()
			if err := batchesEqual(second, first); err != nil {
				t.Fatalf("second Open replayed differently: %v", err)
			}
			if !slices.Equal(again, producers) {
				t.Fatalf("second Open's producer table differs:\n first  %v\n second %v", producers, again)
			}
		}
	})
}

// sortedProducers is w's producer table in a fixed order.
func sortedProducers(w *WAL) []ProducerState {
	ps := w.Producers()
	slices.SortFunc(ps, func(a, b ProducerState) int {
		if c := strings.Compare(a.Stream, b.Stream); c != 0 {
			return c
		}
		return slices.Compare(a.Producer[:], b.Producer[:])
	})
	return ps
}
