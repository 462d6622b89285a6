package wal

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/tierd/tierd/tiers"
)

// producerTable reads w's table as a map for comparisons.
func producerMap(w *WAL) map[ProducerKey]ProducerState {
	m := map[ProducerKey]ProducerState{}
	for _, st := range w.Producers() {
		st.At = 0 // the clock of the write, not compared
		m[ProducerKey{st.Stream, st.Producer}] = st
	}
	return m
}

func producerBatch(stream string, p ProducerID, seq, first uint64, n int) Batch {
	b := Batch{Stream: stream, Producer: p, Seq: seq}
	for i := range n {
		b.Records = append(b.Records, tiers.Record{Offset: first + uint64(i), Value: []byte("v")})
	}
	return b
}

func TestProducerTableSurvivesReopenAndCheckpoint(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 1 << 10} // small files: many rotations
	w, _ := openWAL(t, opts)
	p1, p2 := ProducerID{1}, ProducerID{2}
	next := map[string]uint64{}
	want := map[ProducerKey]ProducerState{}
	for i := range 60 {
		stream := []string{"a", "b"}[i%2]
		p := []ProducerID{p1, p2}[i/2%2]
		seq := uint64(i + 1)
		b := producerBatch(stream, p, seq, next[stream], 3)
		writeBatches(t, w, []Batch{b})
		want[ProducerKey{stream, p}] = ProducerState{Stream: stream, Producer: p, Seq: seq, First: next[stream], Count: 3}
		next[stream] += 3
	}
	writeBatches(t, w, []Batch{{Stream: "a", Records: []tiers.Record{{Offset: next["a"]}}}}) // no producer
	if got := producerMap(w); !maps.Equal(got, want) {
		t.Fatalf("table while open:\n got %v\nwant %v", got, want)
	}
	if w.Stats().Files < 5 {
		t.Fatalf("only %d files: the test needs rotations", w.Stats().Files)
	}
	// Every frame persisted: the checkpoint deletes all but the newest file,
	// whose head snapshot must now carry the whole table.
	if _, err := w.Checkpoint(func(string) uint64 { return 1 << 62 }); err != nil {
		t.Fatal(err)
	}
	closeWAL(t, w)
	w, replayed := openWAL(t, opts)
	if got := producerMap(w); !maps.Equal(got, want) {
		t.Fatalf("table after checkpoint and reopen (%d batches replayed):\n got %v\nwant %v", len(replayed), got, want)
	}
	// Once more with nothing written in between: the new file's snapshot is
	// all there is.
	if _, err := w.Checkpoint(func(string) uint64 { return 1 << 62 }); err != nil {
		t.Fatal(err)
	}
	closeWAL(t, w)
	w, _ = openWAL(t, opts)
	defer closeWAL(t, w)
	if got := producerMap(w); !maps.Equal(got, want) {
		t.Fatalf("table after a second reopen:\n got %v\nwant %v", got, want)
	}
	if w.Stats().Files != 2 {
		t.Fatalf("%d files, want the kept one and the new one", w.Stats().Files)
	}
}

func TestProducerTableExpires(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	opts := Options{Dir: dir, ProducerTTL: time.Hour, Now: clock}
	w, _ := openWAL(t, opts)
	writeBatches(t, w, []Batch{producerBatch("s", ProducerID{1}, 1, 0, 1)})
	now = now.Add(30 * time.Minute)
	writeBatches(t, w, []Batch{producerBatch("s", ProducerID{2}, 1, 1, 1)})
	closeWAL(t, w)
	now = now.Add(45 * time.Minute) // producer 1 is 75 minutes old, 2 is 45
	w, _ = openWAL(t, opts)         // the new file's snapshot drops 1 …
	if _, err := w.Checkpoint(func(string) uint64 { return 1 << 62 }); err != nil {
		t.Fatal(err) // … and the file that held its batch goes
	}
	closeWAL(t, w)
	w, _ = openWAL(t, opts)
	defer closeWAL(t, w)
	got := slices.Collect(maps.Keys(producerMap(w)))
	if len(got) != 1 || got[0].Producer != (ProducerID{2}) {
		t.Fatalf("producers after expiry: %v, want only producer 2", got)
	}
}

func TestProducerBatchValidation(t *testing.T) {
	for _, b := range []Batch{
		producerBatch("s", ProducerID{1}, 0, 0, 1),         // sequence 0
		{Stream: "s", Seq: 4, Records: []tiers.Record{{}}}, // a sequence without a producer
	} {
		if _, err := AppendFrame(nil, &b); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("AppendFrame(%+v) = %v, want ErrInvalidBatch", b, err)
		}
	}
	for _, s := range []string{"", "0123", "00000000000000000000000000000000", "0123456789ABCDEF0123456789abcdef", "zz23456789abcdef0123456789abcdef"} {
		if _, err := ParseProducerID(s); err == nil {
			t.Errorf("ParseProducerID(%q) accepted", s)
		}
	}
	id, err := ParseProducerID("0123456789abcdef0123456789abcdef")
	if err != nil || id.String() != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("ParseProducerID round trip: %v %v", id, err)
	}
}
