package hot

import (
	"context"
	"errors"
	"testing"

	"github.com/tierd/tierd/hot/wal"
	"github.com/tierd/tierd/tiers"
)

// TestJSONHintIsKept: the memory tier keeps each record's JSON hint, for a
// read, a scan and the persister of a sealed segment, so that the cold
// tier's conversion can skip its own JSON check; the WAL does not keep it,
// so a record replayed after a restart has no hint (the conversion then
// checks the value itself) and a hint is never invented.
func TestJSONHintIsKept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := &memPersister{}
	tr := openTier(t, dir, p, nil)
	batch := recs("s", 20, 0)
	for i := range batch {
		batch[i].JSON = i%3 != 0
	}
	if _, err := tr.Append(ctx, "s", batch[:12]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Seal(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Append(ctx, "s", batch[12:]); err != nil {
		t.Fatal(err)
	}
	check := func(what string, got []tiers.Record, want func(i int) bool) {
		t.Helper()
		for i, r := range got {
			if r.JSON != want(int(r.Offset)) {
				t.Fatalf("%s: record %d (offset %d) has JSON hint %v, want %v", what, i, r.Offset, r.JSON, want(int(r.Offset)))
			}
		}
	}
	given := func(i int) bool { return batch[i].JSON }
	got := readAll(t, tr, "s")
	if len(got) != 20 {
		t.Fatalf("scan read %d records, want 20", len(got))
	}
	check("scan", got, given)
	p.mu.Lock()
	persisted := append([]tiers.Record(nil), p.segs["s"]...)
	p.mu.Unlock()
	if len(persisted) != 12 {
		t.Fatalf("%d records persisted, want 12", len(persisted))
	}
	check("persisted segment", persisted, given)
	sn := tr.Snapshot("s")
	for _, off := range []uint64{0, 1, 13, 15} {
		r, ok, err := sn.Get(off)
		if err != nil || !ok {
			t.Fatalf("get %d: %v, %v", off, ok, err)
		}
		check("get", []tiers.Record{r}, given)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	tr = openTier(t, dir, p, nil)
	defer tr.Close()
	got = readAll(t, tr, "s")
	if len(got) < 8 || got[len(got)-1].Offset != 19 {
		t.Fatalf("after the restart the memory tier holds %d records, want at least offsets 12-19", len(got))
	}
	check("replayed from the WAL", got, func(int) bool { return false })
}

// TestBatchOverAWALFrameIsRefusedBeforeMemory: a batch the WAL could not
// hold is refused before any of it is in memory (so every record there
// is far below the 2 GiB a ref's length counts), with a 413's error.
func TestBatchOverAWALFrameIsRefusedBeforeMemory(t *testing.T) {
	tr := openTier(t, t.TempDir(), &memPersister{}, func(o *Options) { o.SegmentMaxBytes = 1 << 30 })
	defer tr.Close()
	big := []tiers.Record{{TS: 1, Value: make([]byte, wal.MaxFrameBytes)}}
	_, err := tr.Append(context.Background(), "s", big)
	if !errors.Is(err, tiers.ErrBatchTooLarge) {
		t.Fatalf("append of a %d-byte value: %v, want ErrBatchTooLarge", len(big[0].Value), err)
	}
	if sn := tr.Snapshot("s"); sn.Next != 0 {
		t.Fatalf("after the refusal the stream's next offset is %d, want 0", sn.Next)
	}
	if _, err := tr.Append(context.Background(), "s", recs("s", 3, 0)); err != nil {
		t.Fatalf("a normal append after the refusal: %v", err)
	}
}
