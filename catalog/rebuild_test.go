package catalog

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

func coldSeg(stream string, base, last uint64) tiers.SegmentMeta {
	m := seg(stream, base, last)
	m.Placements = tiers.Of(tiers.Cold)
	m.ColdBytes = int64(base) + 1000
	return m
}

func TestRebuild(t *testing.T) {
	ctx := context.Background()
	conflicting := coldSeg("a", 20, 29)
	conflicting.Digest = tiers.Digest{0xee}
	longer := coldSeg("b", 0, 14)
	invalid := seg("a", 50, 49) // last < base
	sealedLater := coldSeg("a", 0, 9)
	sealedLater.SealedAt = sealedLater.SealedAt.Add(time.Hour)
	warm := []tiers.SegmentMeta{
		seg("a", 0, 9), seg("a", 10, 19), seg("a", 20, 29),
		seg("b", 0, 9),
		seg("a", 10, 19), // an identical duplicate merges
		invalid,
	}
	warm[0].Placements = 0 // given placements are ignored
	cold := []tiers.SegmentMeta{
		sealedLater,          // also warm: both placements, warm's SealedAt
		coldSeg("a", 30, 39), // cold only
		conflicting,          // same base as a warm one, other digest
		longer,               // same base as warm b/0, other last
		coldSeg("b", 10, 19), // cold only
		coldSeg("b", 15, 24), // overlaps b/10
		coldSeg("c", 100, 199),
	}
	path := filepath.Join(t.TempDir(), "catalog.db")
	rep, err := Rebuild(ctx, path, warm, cold, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Streams != 3 || rep.Segments != 7 {
		t.Fatalf("report %+v, want 3 streams and 7 segments", rep)
	}
	wantConflicts := []string{"a [20, 29]", "b [0, 14]", "b [15, 24]", "a [50, 49]"}
	if len(rep.Conflicts) != len(wantConflicts) {
		t.Fatalf("conflicts %q, want %d", rep.Conflicts, len(wantConflicts))
	}
	for _, w := range wantConflicts {
		found := false
		for _, c := range rep.Conflicts {
			found = found || strings.Contains(c, w)
		}
		if !found {
			t.Errorf("no conflict names %s: %q", w, rep.Conflicts)
		}
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left behind: %v", err)
	}

	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	both := seg("a", 0, 9)
	both.Placements, both.ColdBytes = tiers.Of(tiers.Warm, tiers.Cold), 1000
	want := map[string][]tiers.SegmentMeta{
		"a": {both, seg("a", 10, 19), seg("a", 20, 29), coldSeg("a", 30, 39)},
		"b": {seg("b", 0, 9), coldSeg("b", 10, 19)},
		"c": {coldSeg("c", 100, 199)},
	}
	for stream, ms := range want {
		got, err := c.Segments(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ms) {
			t.Fatalf("%s: segments %v, want %v", stream, bases(got), bases(ms))
		}
		for i := range ms {
			sameMeta(t, got[i], ms[i])
		}
	}
	infos, err := c.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{"a": 40, "b": 20, "c": 200}
	for _, info := range infos {
		if info.NextOffset != next[info.Name] {
			t.Errorf("%s: next offset %d, want %d", info.Name, info.NextOffset, next[info.Name])
		}
		if first := want[info.Name][0].SealedAt; !info.CreatedAt.Equal(first) {
			t.Errorf("%s: created %v, want the first seal %v", info.Name, info.CreatedAt, first)
		}
	}
	// The rebuilt catalog is fully usable.
	if err := c.PutSegment(ctx, seg("a", 40, 49)); err != nil {
		t.Fatal(err)
	}
}

func TestRebuildRefusesExisting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.db")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Rebuild(ctx, path, []tiers.SegmentMeta{seg("s", 0, 9)}, nil, Options{}); !errors.Is(err, ErrExists) {
		t.Fatalf("Rebuild over an existing file = %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatalf("existing file changed to %q", b)
	}
	// Moved aside, with a leftover temporary file from an interrupted run.
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", []byte("junk from a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Rebuild(ctx, path, []tiers.SegmentMeta{seg("s", 0, 9)}, nil, Options{})
	if err != nil || rep.Segments != 1 || len(rep.Conflicts) != 0 {
		t.Fatalf("Rebuild = %+v, %v", rep, err)
	}
}

func TestRebuildCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	path := filepath.Join(t.TempDir(), "catalog.db")
	if _, err := Rebuild(ctx, path, []tiers.SegmentMeta{seg("s", 0, 9)}, nil, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Rebuild with a canceled context = %v", err)
	}
	for _, p := range []string{path, path + ".tmp"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s exists after a failed rebuild: %v", p, err)
		}
	}
}

// TestSchemaV1Upgrade opens a catalog as builds before schema version 2 wrote
// it — schema 1, no intents or errors buckets, version-1 segment values — and
// checks it reads, takes intents and is marked version 2.
func TestSchemaV1Upgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	m := seg("s", 0, 9)
	m.Placements = tiers.Of(tiers.Warm, tiers.Cold)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket([]byte(bucketMeta))
		if err := meta.Put([]byte(keySchema), []byte{1}); err != nil {
			return err
		}
		streams, _ := tx.CreateBucket([]byte(bucketStreams))
		sv := streamValue{CreatedAt: t0, Segments: 1, Records: 10, Bytes: uint64(m.Bytes), NextOffset: 10}
		if err := streams.Put([]byte("s"), encodeStreamV1(&sv)); err != nil {
			return err
		}
		segs, _ := tx.CreateBucket([]byte(bucketSegments))
		s, err := segs.CreateBucket([]byte("s"))
		if err != nil {
			return err
		}
		return s.Put(segmentKey(0), encodeSegmentV1(&m))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Segment(ctx, "s", 0)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, got, m)
	if err := c.PutIntent(ctx, Intent{Stream: "s", Base: 0, Kind: IntentDropWarm}); err != nil {
		t.Fatal(err)
	}
	var ver []byte
	c.db.View(func(tx *bolt.Tx) error {
		ver = append(ver, tx.Bucket([]byte(bucketMeta)).Get([]byte(keySchema))...)
		return nil
	})
	if v, _ := binary.Uvarint(ver); v != schemaVersion {
		t.Fatalf("schema version after open %d, want %d", v, schemaVersion)
	}
	c.Close()
}
