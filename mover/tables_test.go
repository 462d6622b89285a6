package mover

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// recordingTables is a Tables that records its calls and, at each Remove,
// whether the segments' cold objects were still in the store: the order
// the deletion must keep. fail makes Remove fail.
type recordingTables struct {
	f         *fixture
	mu        sync.Mutex
	fail      error
	published []string
	removed   []tiers.SegmentMeta
	present   []bool // per removed segment: its object existed at Remove
}

func (r *recordingTables) Remove(ctx context.Context, stream string, segs []tiers.SegmentMeta) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	for _, m := range segs {
		if m.Stream != stream {
			return errors.New("a segment of another stream")
		}
		_, err := r.f.cold.Check(ctx, m)
		r.removed = append(r.removed, m)
		r.present = append(r.present, err == nil)
	}
	return nil
}

func (r *recordingTables) Published(stream string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published = append(r.published, stream)
}

// TestTablesHooks: an offload's commit is published; a deletion takes the
// segment out of its table while its object is still there, and a failed
// Remove leaves the object, the catalog entry and the intent, so the
// deletion is retried rather than leaving a table that lists a missing
// object.
func TestTablesHooks(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	tb := &recordingTables{f: f}
	o := Options{Catalog: f.cat, Warm: f.warm, Cold: f.cold, Config: f.cfg, Now: f.clk.Now, Tables: tb}
	mv := New(o)
	f.put(t, "s", 0, 50, t0)
	f.put(t, "s", 50, 50, t0)
	if _, err := mv.Offload(ctx, "s", 0, false); err != nil {
		t.Fatal(err)
	}
	if len(tb.published) != 1 || tb.published[0] != "s" {
		t.Fatalf("published after an offload: %q, want [s]", tb.published)
	}
	// An offload of a segment already cold commits nothing new.
	if _, err := mv.Offload(ctx, "s", 0, false); err != nil {
		t.Fatal(err)
	}
	if len(tb.published) != 1 {
		t.Fatalf("published %q after an offload that committed nothing", tb.published)
	}

	f.clk.Advance(8 * 24 * time.Hour)
	if err := mv.Execute(ctx, policy.Action{Kind: policy.Tombstone, Stream: "s", Base: 0}); err != nil {
		t.Fatal(err)
	}
	// The tombstoned records are no longer retained: the table is told.
	if len(tb.published) != 2 || tb.published[1] != "s" {
		t.Fatalf("published after a tombstone of a cold segment: %q, want [s s]", tb.published)
	}
	f.clk.Advance(2 * time.Hour)
	tb.fail = errors.New("catalog down")
	err := mv.Execute(ctx, policy.Action{Kind: policy.DeleteCold, Stream: "s", Base: 0})
	if err == nil || !errors.Is(err, tb.fail) {
		t.Fatalf("delete with a failing table: %v, want its error", err)
	}
	if n := f.coldObjects(t); n != 1 {
		t.Fatalf("%d objects after a failed table removal, want the object kept", n)
	}
	if _, err := f.cat.Segment(ctx, "s", 0); err != nil {
		t.Fatalf("segment forgotten after a failed table removal: %v", err)
	}
	if in, _ := f.cat.Intents(ctx); len(in) != 1 {
		t.Fatalf("intents after a failed table removal: %+v, want the deletion's", in)
	}

	// After a restart the interrupted deletion is finished, table first.
	tb.fail = nil
	mv = New(o)
	if err := mv.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if len(tb.removed) != 1 || tb.removed[0].Base != 0 || !tb.present[0] {
		t.Fatalf("removed %+v (object present: %v), want segment 0 removed while its object was there", tb.removed, tb.present)
	}
	if n := f.coldObjects(t); n != 0 {
		t.Fatalf("%d objects after the deletion finished", n)
	}
	if _, err := f.cat.Segment(ctx, "s", 0); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("deleted segment still catalogued: %v", err)
	}
}

// TestTablesRecoveredUploadIsPublished: an upload a crash interrupted
// after its object was written is committed at start-up, and published.
func TestTablesRecoveredUploadIsPublished(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	tb := &recordingTables{f: f}
	m := f.put(t, "s", 0, 20, t0)
	if err := f.cat.PutIntent(ctx, catalog.Intent{Stream: "s", Base: 0, Kind: catalog.IntentUpload, Key: cold.ObjectKey(m)}); err != nil {
		t.Fatal(err)
	}
	r, err := f.warm.Acquire("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.cold.Upload(ctx, m, r.Scan(tiers.AllRecords()))
	r.Release()
	if err != nil { // then the crash
		t.Fatal(err)
	}
	mv := New(Options{Catalog: f.cat, Warm: f.warm, Cold: f.cold, Config: f.cfg, Now: f.clk.Now, Tables: tb})
	if err := mv.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.segment(t, "s", 0).Placements.Has(tiers.Cold) {
		t.Fatal("the recovered upload was not committed")
	}
	if len(tb.published) != 1 || tb.published[0] != "s" {
		t.Fatalf("published %q after a recovered upload, want [s]", tb.published)
	}
}
