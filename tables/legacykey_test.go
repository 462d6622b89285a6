package tables

import (
	"bytes"
	"context"
	"testing"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/pqfile"
)

// TestLegacyKeyPublished: a segment of a stream whose name is now
// percent-encoded in keys (2026 -> stream=%32026) but whose object was
// written before, at the raw key (stream=2026), is published from where it
// is, and a segment at the new key beside it too: the table holds both
// segments' records, each file once.
func TestLegacyKeyPublished(t *testing.T) {
	s := fileStore(t)
	ctx := context.Background()
	const stream = "2026"
	old := putSegment(t, s, stream, records(0, 20, 1e18, 1e6), pqfile.Options{})
	body := readObject(t, s, cold.ObjectKey(old))
	if cold.ObjectKey(old) == cold.LegacyObjectKey(old) {
		t.Fatalf("stream %s is not encoded: %s", stream, cold.ObjectKey(old))
	}
	if err := s.bucket.Put(ctx, cold.LegacyObjectKey(old), bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if err := s.bucket.Delete(ctx, cold.ObjectKey(old)); err != nil {
		t.Fatal(err)
	}
	recent := putSegment(t, s, stream, records(20, 20, 1e18+20e6, 1e6), pqfile.Options{})
	src := newSource()
	src.add(old, recent)
	p := open(t, s, src)
	res := mustSync(t, p, stream)
	if res.Added != 2 || len(res.Skipped) != 0 {
		t.Fatalf("sync: %+v, want 2 added, none skipped", res)
	}
	files := plannedFiles(t, loadTable(t, p, stream))
	want := map[string]bool{p.root + "/" + cold.LegacyObjectKey(old): true, p.fileURI(recent): true}
	if len(files) != 2 || !want[files[0]] || !want[files[1]] {
		t.Fatalf("table files %v, want %v", files, want)
	}
	sameRecords(t, scanRecords(t, loadTable(t, p, stream)), records(0, 40, 1e18, 1e6))
	// A second Sync keeps the legacy file (it is the segment's object).
	if res := mustSync(t, p, stream); res.Added != 0 || res.Removed != 0 {
		t.Fatalf("second sync changed the table: %+v", res)
	}
}
