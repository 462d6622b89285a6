package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/tiers"
)

func open(t *testing.T, dir string, mod func(*Options)) *Engine {
	t.Helper()
	o := Options{DataDir: dir, SegmentMaxBytes: 16 << 10, SegmentMaxAge: time.Hour, HotResidency: time.Hour}
	if mod != nil {
		mod(&o)
	}
	e, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func batch(n, from int) []tiers.Record {
	out := make([]tiers.Record, n)
	for i := range out {
		k := from + i
		out[i] = tiers.Record{TS: int64(1_000_000 + k), Key: fmt.Sprintf("k%d", k%5), Tags: []string{fmt.Sprintf("t%d", k%3)}, Value: []byte(fmt.Sprintf(`{"n":%d,"pad":"%0100d"}`, k, k))}
	}
	return out
}

func readAll(t *testing.T, e *Engine, stream string, q tiers.Query) []Item {
	t.Helper()
	var out []Item
	for it, err := range e.Read(context.Background(), stream, q) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, it)
	}
	return out
}

// fill appends n records in batches of 10 and returns them with offsets.
func fill(t *testing.T, e *Engine, stream string, n int) []tiers.Record {
	t.Helper()
	var all []tiers.Record
	for i := 0; i < n; i += 10 {
		b := batch(10, i)
		for {
			_, err := e.Append(context.Background(), stream, b)
			if errors.Is(err, tiers.ErrBackpressure) {
				time.Sleep(time.Millisecond) // the flusher catches up; retry as a producer would
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		all = append(all, b...)
	}
	return all
}

func TestReadsSpanWarmAndHotInOffsetOrder(t *testing.T) {
	e := open(t, t.TempDir(), func(o *Options) { o.HotMaxBytes = 64 << 10 })
	defer e.Close(context.Background())
	want := fill(t, e, "s", 2000)
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, e, "s", tiers.AllRecords())
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	tiersSeen := map[tiers.Placement]int{}
	for i := range got {
		if !got[i].Record.Equal(&want[i]) {
			t.Fatalf("record %d differs: %+v", i, got[i].Record)
		}
		tiersSeen[got[i].Tier]++
	}
	if tiersSeen[tiers.Warm] == 0 || tiersSeen[tiers.Hot] == 0 {
		t.Fatalf("expected reads from both warm and hot with a small memory budget, got %v", tiersSeen)
	}
	// Filters give what filtering the input gives, across the tier boundary.
	for _, q := range []tiers.Query{
		{From: 100, To: 1900, Since: 1_000_500, Until: 1_001_700, Key: "k3", HasKey: true},
		{From: 0, To: ^uint64(0), Since: -1 << 63, Until: 1<<63 - 1, Tag: "t2", Limit: 77},
		{From: 1990, To: 5000, Since: -1 << 63, Until: 1<<63 - 1},
	} {
		var exp []tiers.Record
		for i := range want {
			if q.Match(&want[i]) && (q.Limit == 0 || len(exp) < q.Limit) {
				exp = append(exp, want[i])
			}
		}
		got := readAll(t, e, "s", q)
		if len(got) != len(exp) {
			t.Fatalf("query %+v: %d records, want %d", q, len(got), len(exp))
		}
		for i := range got {
			if !got[i].Record.Equal(&exp[i]) {
				t.Fatalf("query %+v: record %d differs", q, i)
			}
		}
	}
}

func TestSegmentsListingAndReopen(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir, nil)
	want := fill(t, e, "s", 500)
	segs, err := e.Segments(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 2 || !segs[len(segs)-1].Active {
		t.Fatalf("want sealed segments and an active one last, got %d", len(segs))
	}
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	segs, _ = e.Segments(context.Background(), "s")
	var next uint64
	for _, s := range segs {
		if s.Base != next || s.Active || !s.Placements.Has(tiers.Warm) || !s.Placements.Has(tiers.Hot) || s.Digest.IsZero() || s.SealedAt.IsZero() {
			t.Fatalf("after flush, segment %+v: want contiguous, sealed, hot+warm, with digest", s)
		}
		next = s.Last + 1
	}
	if next != 500 {
		t.Fatalf("segments cover up to %d, want 500", next)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// After a restart nothing is resident: every read is served warm.
	e = open(t, dir, nil)
	defer e.Close(context.Background())
	got := readAll(t, e, "s", tiers.AllRecords())
	if len(got) != 500 {
		t.Fatalf("after reopen read %d", len(got))
	}
	for i := range got {
		if !got[i].Record.Equal(&want[i]) || got[i].Tier != tiers.Warm {
			t.Fatalf("record %d: %+v from %v", i, got[i].Record, got[i].Tier)
		}
	}
	st, err := e.Streams(context.Background())
	if err != nil || len(st) != 1 || st[0].NextOffset != 500 || st[0].Records != 500 || st[0].Tiers[tiers.Warm].Segments != len(segs) {
		t.Fatalf("streams after reopen: %+v %v", st, err)
	}
	if r, err := e.Append(context.Background(), "s", batch(1, 0)); err != nil || r.First != 500 {
		t.Fatalf("append after reopen: %+v %v", r, err)
	}
}

func TestUncommittedWarmFileIsRemovedAndRecoveredFromWAL(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir, nil)
	want := fill(t, e, "s", 100)
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	more := fill(t, e, "s", 50)
	for i := range more {
		more[i].Offset = uint64(100 + i)
	}
	want = append(want, more...)
	e.Close(context.Background())
	// A crash between writing a segment file and the catalog commit leaves a
	// file the catalog never heard of; fake one with garbage in it.
	stray := filepath.Join(dir, "warm", "s", fmt.Sprintf("%020d.seg", 100))
	if err := os.WriteFile(stray, []byte("half a segment"), 0o644); err != nil {
		t.Fatal(err)
	}
	e = open(t, dir, nil)
	defer e.Close(context.Background())
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stray warm file still there: %v", err)
	}
	wantRecords(t, readAll(t, e, "s", tiers.AllRecords()), want)
}

func TestAppendRejectsBadInputAndChangesNothing(t *testing.T) {
	e := open(t, t.TempDir(), func(o *Options) { o.MaxRecordBytes = 200 })
	defer e.Close(context.Background())
	fill(t, e, "s", 10)
	cases := []struct {
		name   string
		stream string
		recs   []tiers.Record
		want   error
	}{
		{"bad stream name", "../etc", batch(1, 0), tiers.ErrInvalidStreamName},
		{"empty batch", "s", nil, tiers.ErrInvalidRecord},
		{"value too large", "s", []tiers.Record{{Value: []byte("ok")}, {Value: make([]byte, 201)}}, tiers.ErrRecordTooLarge},
		{"key too large", "s", []tiers.Record{{Key: string(make([]byte, 1025))}}, tiers.ErrKeyTooLarge},
		{"key not utf-8", "s", []tiers.Record{{Key: "\xff"}}, tiers.ErrInvalidRecord},
	}
	for _, c := range cases {
		if _, err := e.Append(context.Background(), c.stream, c.recs); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	if got := readAll(t, e, "s", tiers.AllRecords()); len(got) != 10 {
		t.Fatalf("bad batches changed the stream: %d records", len(got))
	}
	if _, err := e.Segments(context.Background(), "../etc"); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("a rejected stream exists: %v", err)
	}
}

// wantRecords fails unless got holds exactly want, in order.
func wantRecords(t *testing.T, got []Item, want []tiers.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !got[i].Record.Equal(&want[i]) {
			t.Fatalf("record %d differs: %+v, want %+v", i, got[i].Record, want[i])
		}
	}
}

// TestReopenOnTheSameRegistry: an engine closed and opened again in one
// process with one metrics registry (an embedding program, a test) opens,
// and its components keep counting into the same series.
func TestReopenOnTheSameRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		e := open(t, dir, func(o *Options) { o.Registerer = reg })
		fill(t, e, "s", 10)
		if err := e.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "tierd_warm_segments_committed_total" {
			if got := f.GetMetric()[0].GetCounter().GetValue(); got != 2 {
				t.Fatalf("segments committed across both opens: %v, want 2", got)
			}
			return
		}
	}
	t.Fatal("tierd_warm_segments_committed_total not gathered")
}
