package reader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/tierd/tierd/tiers"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()

// fill commits objects holding batches of two interleaved streams and
// returns the model of stream "s".
func fill(e *env, objects int) []tiers.Record {
	var all []tiers.Record
	for i := range objects {
		c := e.commit(
			batch{"s", records(5, t0+int64(len(all))*int64(time.Second), i)},
			batch{"other", records(3, t0, i)},
			batch{"s", records(4, t0+int64(len(all)+5)*int64(time.Second), i+7)},
		)
		all = append(all, c.recs["s"]...)
	}
	return all
}

// TestReadFilters: every filter of tiers.Query and Limit, on journal
// ranges of several objects, give what q.Match says, in offset order.
func TestReadFilters(t *testing.T) {
	e := newEnv(t)
	all := fill(e, 4)
	r := e.reader(Options{CacheDir: t.TempDir()})
	q := func(f func(*tiers.Query)) tiers.Query {
		q := tiers.AllRecords()
		f(&q)
		return q
	}
	cases := []struct {
		name string
		q    tiers.Query
	}{
		{"all", tiers.AllRecords()},
		{"key", q(func(q *tiers.Query) { q.Key, q.HasKey = "k1", true })},
		{"no key", q(func(q *tiers.Query) { q.Key, q.HasKey = "", true })},
		{"tag", q(func(q *tiers.Query) { q.Tag = "even" })},
		{"since", q(func(q *tiers.Query) { q.Since = all[20].TS })},
		{"until", q(func(q *tiers.Query) { q.Until = all[7].TS })},
		{"ts window", q(func(q *tiers.Query) { q.Since, q.Until = all[10].TS, all[14].TS })},
		{"ts nothing", q(func(q *tiers.Query) { q.Since = all[len(all)-1].TS + 1 })},
		{"from", q(func(q *tiers.Query) { q.From = 11 })},
		{"from to", q(func(q *tiers.Query) { q.From, q.To = 6, 22 })},
		{"to in a block", q(func(q *tiers.Query) { q.To = 2 })},
		{"from past the end", q(func(q *tiers.Query) { q.From = 1000 })},
		{"limit", q(func(q *tiers.Query) { q.Limit = 7 })},
		{"limit with key and from", q(func(q *tiers.Query) { q.From, q.Key, q.HasKey, q.Limit = 3, "k2", true, 4 })},
		{"to beyond the end", q(func(q *tiers.Query) { q.From, q.To = 30, math.MaxUint64-1 })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readAll(t, r, "s", c.q)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, c.name, got, want(all, c.q))
		})
	}
	other, err := readAll(t, r, "other", tiers.AllRecords())
	if err != nil || len(other) != 12 {
		t.Fatalf("stream other: %d records, %v; want 12", len(other), err)
	}
}

// TestReadSources: a block comes from the memory cache when this node
// remembered its object, from the disk cache once fetched, else from the
// bucket; the stats count each.
func TestReadSources(t *testing.T) {
	e := newEnv(t)
	c1 := e.commit(batch{"s", records(3, t0, 0)})
	e.commit(batch{"s", records(3, t0, 1)})
	r := e.reader(Options{CacheDir: t.TempDir()})
	r.Remember(c1.key, c1.bytes)
	sources := func() []Source {
		got, err := readAll(t, r, "s", tiers.AllRecords())
		if err != nil || len(got) != 6 {
			t.Fatalf("%d records, %v", len(got), err)
		}
		var s []Source
		for _, it := range got {
			s = append(s, it.Source)
		}
		return s
	}
	if got := sources(); got[0] != Memory || got[3] != Journal {
		t.Fatalf("first read: sources %v, want memory then journal", got)
	}
	if got := sources(); got[0] != Memory || got[3] != DiskCache {
		t.Fatalf("second read: sources %v, want memory then disk-cache", got)
	}
	st := r.CacheStats()
	if st.MemHits != 2 || st.DiskHits != 1 || st.Fetches != 1 || st.MemBytes != int64(len(c1.bytes)) || st.DiskFiles != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReadUnknownStream: a stream cluster_streams does not have is
// tiers.ErrStreamNotFound; one it has with nothing committed reads empty.
func TestReadUnknownStream(t *testing.T) {
	e := newEnv(t)
	r := e.reader(Options{})
	if _, err := readAll(t, r, "nope", tiers.AllRecords()); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("unknown stream: %v, want ErrStreamNotFound", err)
	}
	if _, err := e.pool.Exec(e.ctx, `INSERT INTO cluster_streams (stream) VALUES ('empty')`); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, r, "empty", tiers.AllRecords()); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %d records, %v", len(got), err)
	}
}

// TestReadAcrossColdBoundary: offsets below the first live journal range
// come from the catalog's cold segments, the rest from the journal, in one
// dense offset order, with every filter applied on both sides.
func TestReadAcrossColdBoundary(t *testing.T) {
	e := newEnv(t)
	all := fill(e, 5)
	e.compact("s", all[8].Offset)  // the first object's two ranges
	e.compact("s", all[17].Offset) // and the second's
	r := e.reader(Options{CacheDir: t.TempDir()})
	got, err := readAll(t, r, "s", tiers.AllRecords())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "all", got, all)
	for i, it := range got {
		if src := map[bool]Source{true: ColdSegment, false: Journal}[i <= 17]; it.Source != src {
			t.Fatalf("offset %d from %s, want %s", it.Offset, it.Source, src)
		}
	}
	for _, q := range []tiers.Query{
		{From: 5, To: 25, Since: math.MinInt64, Until: math.MaxInt64},
		{From: 0, To: math.MaxUint64, Since: all[12].TS, Until: all[30].TS, Tag: "even"},
		{From: 16, To: math.MaxUint64, Since: math.MinInt64, Until: math.MaxInt64, Key: "k0", HasKey: true, Limit: 5},
	} {
		got, err := readAll(t, r, "s", q)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, "filtered", got, want(all, q))
	}
}

// TestReadRetention mirrors engine's fitRetention: offsets below the
// watermark named by a read are expired, a read that did not name its
// start begins at the watermark.
func TestReadRetention(t *testing.T) {
	e := newEnv(t)
	all := fill(e, 3)
	seg := e.compact("s", all[8].Offset)
	if _, err := e.catalog.Tombstone(e.ctx, "s", seg.Base, time.Now(), func(*tiers.SegmentMeta) error { return nil }); err != nil {
		t.Fatal(err)
	}
	r := e.reader(Options{})
	if _, err := readAll(t, r, "s", tiers.AllRecords()); !errors.Is(err, tiers.ErrExpired) {
		t.Fatalf("read from 0: %v, want ErrExpired", err)
	}
	q := tiers.AllRecords()
	q.FromRetained = true
	got, err := readAll(t, r, "s", q)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "from retained", got, all[9:])
	q.Until = all[3].TS
	if _, err := readAll(t, r, "s", q); !errors.Is(err, tiers.ErrExpired) {
		t.Fatalf("until before the first retained record: %v, want ErrExpired", err)
	}
	ret, err := r.Retention(e.ctx, "s")
	if err != nil || ret.First != 9 || !ret.HasFirstTS || ret.FirstTS != all[9].TS || ret.Next != uint64(len(all)) {
		t.Fatalf("Retention = %+v, %v", ret, err)
	}
}

// TestReadCorruptJournal: a flipped byte in a journal object is a
// *tiers.CorruptionError, and no record of the damaged block is served.
func TestReadCorruptJournal(t *testing.T) {
	e := newEnv(t)
	c1 := e.commit(batch{"s", records(4, t0, 0)})
	c2 := e.commit(batch{"s", records(4, t0, 1)})
	b := append([]byte(nil), c2.bytes...)
	b[c2.refs[0].Pos+c2.refs[0].Len-10] ^= 0x20 // inside a record of the block
	e.put(c2.key, b)
	r := e.reader(Options{CacheDir: t.TempDir()})
	got, err := readAll(t, r, "s", tiers.AllRecords())
	var ce *tiers.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("read: %v, want a CorruptionError", err)
	}
	sameRecords(t, "before the damage", got, c1.recs["s"])
	// The damage is not cached: the bucket is asked again.
	if _, err := readAll(t, r, "s", tiers.AllRecords()); !errors.As(err, &ce) {
		t.Fatalf("second read: %v, want a CorruptionError", err)
	}

	// A row that does not match its block (another record count) is
	// damage too.
	if _, err := e.pool.Exec(e.ctx, `UPDATE journal_ranges SET last_offset = last_offset - 1 WHERE stream = 's' AND first_offset = 0`); err != nil {
		t.Fatal(err)
	}
	got, err = readAll(t, r, "s", tiers.AllRecords())
	if !errors.As(err, &ce) || len(got) != 0 {
		t.Fatalf("mismatched row: %d records, %v; want none and a CorruptionError", len(got), err)
	}
}

// TestReadJournalGap: offsets a journal range should hold and none does
// are a corruption error naming them, never silence.
func TestReadJournalGap(t *testing.T) {
	e := newEnv(t)
	all := fill(e, 3)
	if _, err := e.pool.Exec(e.ctx, `DELETE FROM journal_ranges WHERE stream = 's' AND first_offset = $1`, int64(all[9].Offset)); err != nil {
		t.Fatal(err)
	}
	r := e.reader(Options{})
	got, err := readAll(t, r, "s", tiers.AllRecords())
	if !errors.Is(err, ErrJournalGap) || len(got) != 9 {
		t.Fatalf("read over a gap: %d records, %v; want 9 and ErrJournalGap", len(got), err)
	}
	// The same offsets deleted at the start of the journal, with no
	// segment in the catalog: damage as well.
	if _, err := e.pool.Exec(e.ctx, `DELETE FROM journal_ranges WHERE stream = 's' AND first_offset < $1`, int64(all[9].Offset)); err != nil {
		t.Fatal(err)
	}
	var ce *tiers.CorruptionError
	if _, err := readAll(t, r, "s", tiers.AllRecords()); !errors.As(err, &ce) {
		t.Fatalf("read below the journal with no segment: %v, want a CorruptionError", err)
	}
}

// TestReadCompactedMeanwhile: ranges compacted and their object deleted
// between the planning of a read and the fetch of their blocks are read
// from the new segment: no error, no record lost or doubled.
func TestReadCompactedMeanwhile(t *testing.T) {
	e := newEnv(t)
	var all []tiers.Record
	var keys []string
	for i := range 4 {
		c := e.commit(batch{"s", records(5, t0+int64(len(all))*int64(time.Second), i)})
		all = append(all, c.recs["s"]...)
		keys = append(keys, c.key)
	}
	r := e.reader(Options{})
	var got []Item
	for it, err := range r.Read(context.Background(), "s", tiers.AllRecords()) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, it)
		if len(got) == 1 {
			// The read has listed every range and fetched the first
			// block; compaction and GC take the first three objects.
			e.compact("s", all[14].Offset)
			for _, k := range keys[1:3] {
				if err := e.bucket.Delete(e.ctx, k); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	sameRecords(t, "read beside compaction", got, all)
	if got[7].Source != ColdSegment || got[17].Source != Journal {
		t.Fatalf("sources: offset 7 from %s, 17 from %s", got[7].Source, got[17].Source)
	}
}

// TestReadPaged: a read longer than one planning page plans again where
// the page ends.
func TestReadPaged(t *testing.T) {
	e := newEnv(t)
	all := fill(e, 4)
	r := e.reader(Options{PlanRows: 3})
	got, err := readAll(t, r, "s", tiers.AllRecords())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "paged", got, all)
}

// TestReadFetchesOnlyWhatItNeeds: adjacent blocks of one object come in
// one ranged GET; a block whose ts range cannot match is not fetched.
func TestReadFetchesOnlyWhatItNeeds(t *testing.T) {
	e := newEnv(t)
	c := e.commit(
		batch{"s", records(4, t0, 0)},
		batch{"s", records(4, t0+100*int64(time.Second), 1)},
		batch{"s", records(4, t0+200*int64(time.Second), 2)},
	)
	all := c.recs["s"]
	r := e.reader(Options{})
	got, err := readAll(t, r, "s", tiers.AllRecords())
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "all", got, all)
	blocks := c.refs[0].Len + c.refs[1].Len + c.refs[2].Len
	if st := r.CacheStats(); st.Fetches != 1 || st.FetchedBytes != blocks {
		t.Fatalf("three adjacent blocks: %d GETs of %d bytes, want 1 of %d", st.Fetches, st.FetchedBytes, blocks)
	}
	q := tiers.AllRecords()
	q.Until = all[4].TS // only the first block can match
	got, err = readAll(t, r, "s", q)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "first block", got, want(all, q))
	if st := r.CacheStats(); st.Fetches != 2 || st.FetchedBytes != blocks+c.refs[0].Len {
		t.Fatalf("one block wanted: %d GETs of %d bytes in all, want 2 of %d", st.Fetches, st.FetchedBytes, blocks+c.refs[0].Len)
	}
}

// TestConcurrentReads: readers sharing the caches (a small disk cache,
// evicting as they go) all read every record, correctly.
func TestConcurrentReads(t *testing.T) {
	e := newEnv(t)
	all := fill(e, 6)
	r := e.reader(Options{CacheDir: t.TempDir(), CacheBytes: 3000, MaxFetchBytes: 512})
	errs := make(chan error, 6)
	for i := range 6 {
		go func() {
			q := tiers.AllRecords()
			q.From = uint64(i)
			var n int
			for it, err := range r.Read(context.Background(), "s", q) {
				if err != nil {
					errs <- err
					return
				}
				if w := all[int(q.From)+n]; it.Offset != w.Offset || string(it.Value) != string(w.Value) {
					errs <- fmt.Errorf("reader %d: got offset %d %q, want %d %q", i, it.Offset, it.Value, w.Offset, w.Value)
					return
				}
				n++
			}
			if n != len(all)-i {
				errs <- fmt.Errorf("reader %d: %d records, want %d", i, n, len(all)-i)
				return
			}
			errs <- nil
		}()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
