package catalog

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

// TestTombstoneOldestFirst: Tombstone takes the segment asked for and every
// live one below it, moves the watermark past it and writes the marker;
// a refused justification, or a gap above the watermark, changes nothing.
func TestTombstoneOldestFirst(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, _ := openT(t, Options{RetentionDir: dir})
	put(t, c, seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 29), seg("s", 30, 39))

	// A refusal of any segment of the run refuses all of it.
	var asked []uint64
	refuse := errors.New("policy keeps it")
	_, err := c.Tombstone(ctx, "s", 20, tombAt, func(m *tiers.SegmentMeta) error {
		asked = append(asked, m.Base)
		if m.Base == 10 {
			return refuse
		}
		return nil
	})
	if !errors.Is(err, refuse) || !slices.Equal(asked, []uint64{0, 10}) {
		t.Fatalf("refused tombstone: %v after asking about %v", err, asked)
	}
	if cv, _ := c.Coverage(ctx, "s"); cv.First != 0 || len(cv.Tombstoned) != 0 {
		t.Fatalf("a refused tombstone changed the catalog: %+v", cv)
	}
	if _, ok, _ := readMarker(dir, "s"); ok {
		t.Fatal("a refused tombstone wrote the marker")
	}

	done := tombstone(t, c, "s", 10)
	if !slices.Equal(bases(done), []uint64{0, 10}) {
		t.Fatalf("tombstoned %v, want 0 and 10", bases(done))
	}
	if from, ok, err := readMarker(dir, "s"); err != nil || !ok || from != 20 {
		t.Fatalf("marker %d %v %v, want 20", from, ok, err)
	}
	from, next, first, ok, err := c.Retained(ctx, "s")
	if err != nil || from != 20 || next != 40 || !ok || first.Base != 20 {
		t.Fatalf("Retained = %d %d %+v %v %v", from, next, first, ok, err)
	}
	segs, retained, err := c.Locate(ctx, "s", 0, 39)
	if err != nil || retained != 20 || len(segs) != 4 || segs[0].Tombstoned.IsZero() || !segs[2].Tombstoned.IsZero() {
		t.Fatalf("Locate = %v, %d, %v", segs, retained, err)
	}
	// Repeating it changes nothing, not even the tombstone time.
	again, err := c.Tombstone(ctx, "s", 10, tombAt.Add(time.Hour), justified)
	if err != nil || len(again) != 0 {
		t.Fatalf("repeated tombstone: %v, %v", again, err)
	}
	if m, _ := c.Segment(ctx, "s", 10); !m.Tombstoned.Equal(tombAt) {
		t.Fatalf("repeated tombstone moved the time to %v", m.Tombstoned)
	}
	// Deleted by retention: never catalogued again.
	for _, b := range []uint64{0, 10} {
		if err := c.CommitDelete(ctx, "s", b); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PutSegment(ctx, seg("s", 10, 19)); !errors.Is(err, ErrInvalidSegment) {
		t.Fatalf("PutSegment below the watermark: %v, want ErrInvalidSegment", err)
	}
	// A tombstone before the seal is refused, whatever the justification says.
	if _, err := c.Tombstone(ctx, "s", 20, t0.Add(-time.Hour), justified); !errors.Is(err, ErrInvalidSegment) {
		t.Fatalf("tombstone before the seal: %v", err)
	}
	// A segment missing above the watermark is damage, not a reason to
	// skip it.
	if err := c.DeleteSegment(ctx, "s", 20); err != nil {
		t.Fatal(err)
	}
	_, err = c.Tombstone(ctx, "s", 30, tombAt, justified)
	var ce *tiers.CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrRetainedGap) {
		t.Fatalf("tombstone across a gap: %v, want a corruption error wrapping ErrRetainedGap", err)
	}
}

// TestMarkers: the marker round-trips, is refused when damaged in any bit,
// never moves back, and is brought up to the catalog at open.
func TestMarkers(t *testing.T) {
	b := encodeMarker("IF2406", 12345)
	if s, from, err := decodeMarker(b); err != nil || s != "IF2406" || from != 12345 {
		t.Fatalf("decode: %q %d %v", s, from, err)
	}
	for bit := 0; bit < 8*len(b); bit++ {
		d := bytes.Clone(b)
		d[bit/8] ^= 1 << (bit % 8)
		if _, _, err := decodeMarker(d); err == nil {
			t.Fatalf("bit %d flipped decoded", bit)
		}
	}
	for cut := range b {
		if _, _, err := decodeMarker(b[:cut]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", cut)
		}
	}

	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "catalog.db")
	c, err := Open(path, Options{RetentionDir: dir, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, seg("s", 0, 9), seg("s", 10, 19), seg("t", 0, 9))
	tombstone(t, c, "s", 0)
	tombstone(t, c, "t", 0)
	c.Close()
	// A lost marker is written again at open; a damaged one too; one ahead
	// of the catalog is left (never moved back).
	if err := os.Remove(markerPath(dir, "s")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(markerPath(dir, "t"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeMarker(dir, "u", 99); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, markerTemp+"s-123"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, problems, err := readMarkers(dir); err != nil || len(problems) != 1 {
		t.Fatalf("readMarkers with a damaged marker: %v %v", problems, err)
	}
	c, err = Open(path, Options{RetentionDir: dir, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	marks, problems, err := readMarkers(dir)
	if err != nil || len(problems) != 0 || marks["s"] != 10 || marks["t"] != 10 || marks["u"] != 99 || len(marks) != 3 {
		t.Fatalf("markers after open: %v %v %v", marks, problems, err)
	}
	if _, err := os.Stat(filepath.Join(dir, markerTemp+"s-123")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temp marker: %v", err)
	}
	if err := writeMarkerNoBack(c, "s", 5); err != nil || marks["s"] != 10 {
		t.Fatal(err)
	}
	if from, _, _ := readMarker(dir, "s"); from != 10 {
		t.Fatalf("marker moved back to %d", from)
	}
	_ = ctx
}

func writeMarkerNoBack(c *Catalog, stream string, from uint64) error {
	return c.writeMarkerTx(stream, from)
}

// TestRebuildKeepsRetention: a rebuilt catalog gets each marked stream's
// watermark back: its next offset does not go below it, segments found
// below it are catalogued tombstoned, and a stream whose every segment was
// deleted is known again. A damaged marker stops the rebuild.
func TestRebuildKeepsRetention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := writeMarker(dir, "a", 20); err != nil {
		t.Fatal(err)
	}
	if err := writeMarker(dir, "gone", 500); err != nil {
		t.Fatal(err)
	}
	warm := []tiers.SegmentMeta{seg("a", 10, 19), seg("a", 20, 29), seg("b", 0, 9)}
	path := filepath.Join(t.TempDir(), "catalog.db")
	now := t0.Add(48 * time.Hour)
	rep, err := Rebuild(ctx, path, warm, nil, Options{RetentionDir: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Markers != 2 || rep.Expired != 1 || rep.Streams != 3 {
		t.Fatalf("report %+v", rep)
	}
	c, err := Open(path, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	infos, err := c.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]uint64{"a": {20, 30}, "b": {0, 10}, "gone": {500, 500}}
	for _, info := range infos {
		if w := want[info.Name]; info.RetainedFrom != w[0] || info.NextOffset != w[1] {
			t.Errorf("%s: retained from %d, next %d; want %v", info.Name, info.RetainedFrom, info.NextOffset, w)
		}
	}
	m, err := c.Segment(ctx, "a", 10)
	if err != nil || !m.Tombstoned.Equal(now) {
		t.Fatalf("segment below the watermark: %+v %v, want tombstoned now", m, err)
	}
	if cv, err := c.Coverage(ctx, "a"); err != nil || len(cv.Gaps)+len(cv.Misplaced) != 0 {
		t.Fatalf("coverage of the rebuilt stream: %+v %v", cv, err)
	}

	if err := os.WriteFile(markerPath(dir, "a"), []byte("TDRM junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	path2 := filepath.Join(t.TempDir(), "catalog.db")
	if _, err := Rebuild(ctx, path2, warm, nil, Options{RetentionDir: dir}); !errors.Is(err, ErrDamagedMarker) {
		t.Fatalf("rebuild with a damaged marker: %v", err)
	}
	if _, err := os.Stat(path2); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused rebuild left a catalog: %v", err)
	}
}

// TestSchema2Upgrade: a catalog as schema 2 builds wrote it opens, every
// value rewritten with its checksum, each stream given the watermark its
// tombstones imply, in one transaction; a damaged value stops it.
func TestSchema2Upgrade(t *testing.T) {
	ctx := context.Background()
	build := func(t *testing.T, damage bool) string {
		path := filepath.Join(t.TempDir(), "catalog.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		segs := []tiers.SegmentMeta{tombstoned(seg("s", 0, 9)), seg("s", 10, 19), seg("s", 20, 29)}
		segs[1].SealedAt = time.Time{} // builds before schema 3 allowed it
		if damage {
			segs[2].Tombstoned = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			meta, _ := tx.CreateBucket([]byte(bucketMeta))
			meta.Put([]byte(keySchema), []byte{2})
			streams, _ := tx.CreateBucket([]byte(bucketStreams))
			sv := streamValue{CreatedAt: t0, Segments: 3, Records: 30, Bytes: 3000, NextOffset: 30}
			streams.Put([]byte("s"), encodeStreamV1(&sv))
			top, _ := tx.CreateBucket([]byte(bucketSegments))
			b, _ := top.CreateBucket([]byte("s"))
			for _, m := range segs {
				b.Put(segmentKey(m.Base), encodeSegmentV2(&m))
			}
			ins, _ := tx.CreateBucket([]byte(bucketIntents))
			ib, _ := ins.CreateBucket([]byte("s"))
			ib.Put(segmentKey(0), []byte{1, 11, 'd', 'e', 'l', 'e', 't', 'e', '_', 'c', 'o', 'l', 'd', 0, 0, 0, 0, 0})
			errs, _ := tx.CreateBucket([]byte(bucketErrors))
			eb, _ := errs.CreateBucket([]byte("s"))
			eb.Put(segmentKey(10), []byte{1, 2, 0, 0, 1, 1, 'x'})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("upgrade", func(t *testing.T) {
		path := build(t, false)
		now := t0.Add(time.Hour)
		c, err := Open(path, Options{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		infos, err := c.Streams(ctx)
		if err != nil || len(infos) != 1 || infos[0].RetainedFrom != 10 || infos[0].NextOffset != 30 {
			t.Fatalf("streams after the upgrade: %+v %v", infos, err)
		}
		m, err := c.Segment(ctx, "s", 10)
		if err != nil || !m.SealedAt.Equal(now) {
			t.Fatalf("segment without a seal time: %+v %v, want sealed now", m, err)
		}
		if in, ok, err := c.Intent(ctx, "s", 0); err != nil || !ok || in.Kind != IntentDeleteCold {
			t.Fatalf("intent after the upgrade: %+v %v %v", in, ok, err)
		}
		if f, ok, err := c.LastError(ctx, "s", 10); err != nil || !ok || f.Err != "x" {
			t.Fatalf("failure after the upgrade: %+v %v %v", f, ok, err)
		}
		// Every value is now checksummed: the schema-3 decoders accept them.
		if err := c.db.View(func(tx *bolt.Tx) error { _, err := c.checkTx(tx, false); return err }); err != nil {
			t.Fatalf("a value was left in an old version: %v", err)
		}
	})
	t.Run("damaged value", func(t *testing.T) {
		path := build(t, true)
		before, _ := os.ReadFile(path)
		_, err := Open(path, Options{})
		var ce *tiers.CorruptionError
		if !errors.As(err, &ce) || !errors.Is(err, ErrDamaged) {
			t.Fatalf("upgrade of a damaged catalog: %v", err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatal("a refused upgrade changed the file")
		}
	})
}

// FuzzDecodeMarker decodes arbitrary bytes as a retention marker: an error,
// never a panic, and what decodes encodes back to the same bytes.
func FuzzDecodeMarker(f *testing.F) {
	f.Add(encodeMarker("IF2406", 12345))
	f.Add(encodeMarker("s", 0))
	f.Add([]byte("TDRM"))
	f.Fuzz(func(t *testing.T, b []byte) {
		stream, from, err := decodeMarker(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeMarker(stream, from), b) {
			t.Fatalf("marker of %q at %d does not encode back to its bytes", stream, from)
		}
	})
}

// TestMarkerIsOverwrittenInPlace: once a stream has a marker, moving its
// watermark rewrites the same file (no new disk block, so retention works
// on a full disk), and the new value is what a rebuild reads.
func TestMarkerIsOverwrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	c, _ := openT(t, Options{RetentionDir: dir})
	put(t, c, seg("s", 0, 9), seg("s", 10, 19), seg("s", 20, 29))
	tombstone(t, c, "s", 0)
	before, err := os.Stat(markerPath(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	tombstone(t, c, "s", 10)
	after, err := os.Stat(markerPath(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("the marker was replaced, not overwritten in place")
	}
	if from, ok, err := readMarker(dir, "s"); err != nil || !ok || from != 20 {
		t.Fatalf("marker %d %v %v, want 20", from, ok, err)
	}
}
