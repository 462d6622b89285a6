package warm

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"
	"time"
)

// TestSealedAtInFooter: the footer keeps the seal time the writer was told,
// to the nanosecond, so a catalog rebuilt from the file keeps the segment's
// age; a writer not told, or told a time Unix nanoseconds cannot hold,
// stores it as unknown.
func TestSealedAtInFooter(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{IndexInterval: 4})
	at := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.FixedZone("x", 3600))
	for i, tc := range []struct {
		set  time.Time
		want time.Time
	}{
		{at, at.UTC()},
		{time.Time{}, time.Time{}},
		{time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), time.Time{}},
		{time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}},
	} {
		base := uint64(i * 100)
		recs := genRecords(uint64(i), base, 10)
		w, err := s.Create("s", base)
		if err != nil {
			t.Fatal(err)
		}
		w.SetSealedAt(tc.set)
		for j := range recs {
			if err := w.Append(&recs[j]); err != nil {
				t.Fatal(err)
			}
		}
		meta, err := w.Commit(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !meta.SealedAt.Equal(tc.want) || meta.SealedAt.IsZero() != tc.want.IsZero() {
			t.Fatalf("set %v: Commit says sealed at %v, want %v", tc.set, meta.SealedAt, tc.want)
		}
		r := acquire(t, s, "s", base)
		if got := r.Meta().SealedAt; !got.Equal(tc.want) || got.IsZero() != tc.want.IsZero() || got.Location() != time.UTC {
			t.Fatalf("set %v: footer says sealed at %v, want %v", tc.set, got, tc.want)
		}
		if err := r.Verify(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadsVersion1: files written before the footer kept sealed_at read
// and verify as before, with an unknown seal time.
func TestReadsVersion1(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{IndexInterval: 4})
	recs := genRecords(7, 50, 40)
	w, err := s.Create("s", 50)
	if err != nil {
		t.Fatal(err)
	}
	w.SetSealedAt(time.Unix(1_800_000_000, 0))
	for j := range recs {
		if err := w.Append(&recs[j]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := s.Path("s", 50)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, v1File(b), 0o644); err != nil {
		t.Fatal(err)
	}
	s.invalidate(segKey{"s", 50})
	r := acquire(t, s, "s", 50)
	if m := r.Meta(); !m.SealedAt.IsZero() || m.Last != 89 || m.Digest != digestOf(recs) {
		t.Fatalf("version 1 file: meta %+v", m)
	}
	if err := r.Verify(); err != nil {
		t.Fatalf("version 1 file does not verify: %v", err)
	}
	got, err := collect(r, allQuery())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "version 1 scan", got, recs)
	for _, rec := range recs {
		if !r.MayContainKey(rec.Key) {
			t.Fatalf("version 1 key filter lost %q", rec.Key)
		}
	}
	// A negative sealed_at is damage, even with a valid footer checksum.
	bad := bytes.Clone(b)
	le := binary.LittleEndian
	flen := int(le.Uint32(bad[len(bad)-trailerLen:]))
	start := len(bad) - trailerLen - flen
	le.PutUint64(bad[start+88:], uint64(1)<<63)
	le.PutUint32(bad[len(bad)-trailerLen-crcLen:], crc32.Checksum(bad[start:len(bad)-trailerLen-crcLen], castagnoli))
	if _, err := parseLayout(path, bad); err == nil {
		t.Fatal("a negative sealed_at parsed")
	} else {
		asCorruption(t, "negative sealed_at", err)
	}
}
