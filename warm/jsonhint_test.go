package warm

import (
	"os"
	"testing"
)

// TestJSONHintRoundTrip: a version 3 file keeps every record's JSON hint,
// for a scan and a get, without changing the records or the digest; the
// same segment as a version 2 file reads back the same records, verified,
// with no hint at all.
func TestJSONHintRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{IndexInterval: 8})
	recs := genRecords(3, 200, 100)
	for i := range recs {
		recs[i].JSON = i%5 < 3
	}
	meta := commitSegment(t, s, "s", recs)
	if meta.Digest != digestOf(recs) {
		t.Fatal("the hints changed the segment's digest")
	}
	r := acquire(t, s, "s", 200)
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	got, err := collect(r, allQuery())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "version 3 scan", got, recs)
	for i := range got {
		if got[i].JSON != recs[i].JSON {
			t.Fatalf("scan: offset %d has JSON hint %v, written %v", got[i].Offset, got[i].JSON, recs[i].JSON)
		}
	}
	for _, i := range []int{0, 1, 3, 57, 99} {
		rec, err := r.Get(recs[i].Offset)
		if err != nil || rec.JSON != recs[i].JSON {
			t.Fatalf("get %d: JSON hint %v (%v), written %v", recs[i].Offset, rec.JSON, err, recs[i].JSON)
		}
	}
	r.Release()

	path := s.Path("s", 200)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, oldFile(b, formatV2), 0o644); err != nil {
		t.Fatal(err)
	}
	s.invalidate(segKey{"s", 200})
	r = acquire(t, s, "s", 200)
	if m := r.Meta(); m.Digest != meta.Digest || !m.SealedAt.Equal(meta.SealedAt) {
		t.Fatalf("version 2 file: meta %+v, want %+v", m, meta)
	}
	if err := r.Verify(); err != nil {
		t.Fatalf("version 2 file does not verify: %v", err)
	}
	got, err = collect(r, allQuery())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "version 2 scan", got, recs)
	for _, rec := range got {
		if rec.JSON {
			t.Fatalf("version 2 file: offset %d has a JSON hint", rec.Offset)
		}
	}
}
