package compactor

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tierd/tierd/catalog/pgcatalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/journal"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's cluster: a PostgreSQL database with the cluster
// schema, a bucket (a real file store) holding journal objects and Parquet
// segments side by side as a node's does, and what the test wrote.
type env struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	bucket  objstore.Bucket
	cold    *cold.Tier
	cat     *pgcatalog.Catalog
	seq     int
	written map[string][]tiers.Record // by stream, in offset order
	// ts gives the ts of a stream's n-th record; nil: t0 + n × 100 ms.
	ts func(n int) int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b, err := objstore.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOn(t, b)
}

// newEnvOn is newEnv over bucket b.
func newEnvOn(t *testing.T, b objstore.Bucket) *env {
	t.Helper()
	return newEnvPG(t, b, testenv.StartPostgres(t))
}

// newEnvPG is newEnv over bucket b and the database of pg.
func newEnvPG(t *testing.T, b objstore.Bucket, pg *testenv.Postgres) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	pool, err := pgxpool.New(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	t.Cleanup(func() { b.Close() })
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir(), RowGroupRows: 7})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := pgcatalog.Open(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return &env{t: t, ctx: ctx, pool: pool, bucket: b, cold: ct, cat: cat, written: map[string][]tiers.Record{}}
}

// batch is one producer batch of n records for stream.
type batch struct {
	stream string
	n      int
}

// t0 is the ts of the first record written: records span two UTC days, so
// segments land in both date partitions.
var t0 = time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC).UnixNano()

// write does what the write path does for one flush: one journal object
// holding the batches, PUT, then one transaction assigning dense offsets
// per stream (cluster_streams), one journal_ranges row per batch and the
// object's row with live_ranges = the batch count (0001_cluster.sql).
func (e *env) write(batches ...batch) string {
	e.t.Helper()
	e.seq++
	key := fmt.Sprintf("%stest-writer/1/%020d", JournalPrefix, e.seq)
	w, err := journal.NewWriter(journal.Header{NodeID: "test-writer", Epoch: 1, CreatedAt: time.Now().UnixNano()})
	if err != nil {
		e.t.Fatal(err)
	}
	recs := make([][]tiers.Record, len(batches))
	refs := make([]journal.BlockRef, len(batches))
	for i, bt := range batches {
		for k := range bt.n {
			n := len(e.written[bt.stream]) + k // its offset, if no other writer
			ts := t0 + int64(n)*int64(100*time.Millisecond)
			if e.ts != nil {
				ts = e.ts(n)
			}
			r := tiers.Record{TS: ts, Value: bytes.Repeat([]byte{byte(n)}, 20+n%50)}
			if n%3 != 0 {
				r.Key = fmt.Sprintf("k%d", n%5)
			}
			if n%4 == 1 {
				r.Tags = []string{"even", fmt.Sprintf("t%d", n%7)}
			}
			recs[i] = append(recs[i], r)
		}
		if refs[i], err = w.Add(bt.stream, tiers.Producer{}, recs[i]); err != nil {
			e.t.Fatal(err)
		}
	}
	obj := w.Finish()
	if err := e.bucket.Put(e.ctx, key, bytes.NewReader(obj), int64(len(obj))); err != nil {
		e.t.Fatal(err)
	}
	err = pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(e.ctx, `INSERT INTO journal_objects (key, node_id, epoch, size, live_ranges) VALUES ($1, 'test-writer', 1, $2, $3)`,
			key, len(obj), len(batches)); err != nil {
			return err
		}
		for i, bt := range batches {
			if _, err := tx.Exec(e.ctx, `INSERT INTO cluster_streams (stream) VALUES ($1) ON CONFLICT DO NOTHING`, bt.stream); err != nil {
				return err
			}
			var next int64
			if err := tx.QueryRow(e.ctx, `SELECT next_offset FROM cluster_streams WHERE stream = $1 FOR UPDATE`, bt.stream).Scan(&next); err != nil {
				return err
			}
			size := 0
			for k := range recs[i] {
				recs[i][k].Offset = uint64(next) + uint64(k)
				size += recs[i][k].Size()
			}
			last := next + int64(bt.n) - 1
			if _, err := tx.Exec(e.ctx, `
				INSERT INTO journal_ranges (stream, first_offset, last_offset, object_key, byte_off, byte_len, min_ts, max_ts, bytes)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				bt.stream, next, last, key, refs[i].Pos, refs[i].Len, refs[i].MinTS, refs[i].MaxTS, size); err != nil {
				return err
			}
			if _, err := tx.Exec(e.ctx, `UPDATE cluster_streams SET next_offset = $2 WHERE stream = $1`, bt.stream, last+1); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for i, bt := range batches {
		e.written[bt.stream] = append(e.written[bt.stream], recs[i]...)
	}
	return key
}

// compactor returns a Compactor of node id with short test timings: a
// 400ms lease, no gc delay to speak of, segments of about maxBytes record
// bytes and every range due at once.
func (e *env) compactor(id string, maxBytes int64, tweak func(*Options)) *Compactor {
	e.t.Helper()
	o := Options{
		Pool: e.pool, Bucket: e.bucket, Cold: e.cold, Catalog: e.cat, NodeID: id, Epoch: 1,
		Segment: func(string) policy.SegmentConfig {
			return policy.SegmentConfig{MaxBytes: maxBytes, MaxAge: time.Nanosecond}
		},
		GCDelay: time.Millisecond, Lease: 400 * time.Millisecond, RetryDelay: 50 * time.Millisecond,
		SpoolDir: e.t.TempDir(), Failpoint: func(string) error { return nil },
	}
	if tweak != nil {
		tweak(&o)
	}
	c, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// count runs a count(*) query.
func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// drained reports whether every journal range is compacted, every job
// done and every journal object collected.
func (e *env) drained() bool {
	return e.count(`SELECT (SELECT count(*) FROM journal_ranges) + (SELECT count(*) FROM compaction_jobs) + (SELECT count(*) FROM journal_objects)`) == 0
}

// runUntilDrained runs c until drained, with a bound that only a hang
// reaches.
func (e *env) runUntilDrained(c *Compactor) {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !e.drained() {
		if time.Now().After(deadline) {
			e.t.Fatalf("not drained after 90s: %d ranges, %d jobs, %d journal objects", e.count(`SELECT count(*) FROM journal_ranges`),
				e.count(`SELECT count(*) FROM compaction_jobs`), e.count(`SELECT count(*) FROM journal_objects`))
		}
		if _, err := c.RunOnce(e.ctx); err != nil {
			e.t.Logf("RunOnce: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkConverged asserts the end state: exactly one Parquet object per
// catalog segment and none besides, no journal object left, each stream's
// segments dense from 0 to its next offset, and every record read back
// from its segment equal to what was written.
func (e *env) checkConverged() {
	e.t.Helper()
	t := e.t
	for a, err := range e.bucket.List(e.ctx, JournalPrefix) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("journal object %s left after garbage collection", a.Key)
	}
	objects := map[string]int64{}
	for o, err := range e.cold.Objects(e.ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		if !o.Segment {
			t.Errorf("object %s is neither a journal object nor a segment", o.Key)
			continue
		}
		objects[o.Key] = o.Size
	}
	segs := e.segments()
	for _, s := range segs {
		if tiers.UTCDay(s.MinTS) != tiers.UTCDay(s.MaxTS) {
			t.Errorf("segment %s [%d, %d] holds ts %d..%d: two UTC days", s.Stream, s.Base, s.Last, s.MinTS, s.MaxTS)
		}
		key := cold.ObjectKey(s)
		size, ok := objects[key]
		switch {
		case !ok:
			t.Errorf("segment %s [%d, %d] has no object %s", s.Stream, s.Base, s.Last, key)
		case size != s.ColdBytes:
			t.Errorf("segment %s [%d, %d]: object of %d bytes, catalog says %d", s.Stream, s.Base, s.Last, size, s.ColdBytes)
		}
		delete(objects, key)
	}
	for k := range objects {
		t.Errorf("Parquet object %s belongs to no segment", k)
	}
	for stream, want := range e.written {
		var got []tiers.Record
		next := uint64(0)
		for _, s := range segs {
			if s.Stream != stream {
				continue
			}
			if s.Base != next {
				t.Fatalf("%s: segment at %d, want %d (offsets dense)", stream, s.Base, next)
			}
			for r, err := range e.cold.Scan(e.ctx, s, tiers.AllRecords()) {
				if err != nil {
					t.Fatalf("%s: scan [%d, %d]: %v", stream, s.Base, s.Last, err)
				}
				got = append(got, r)
			}
			next = s.Last + 1
		}
		if len(got) != len(want) {
			t.Fatalf("%s: read %d records back, wrote %d", stream, len(got), len(want))
		}
		for i := range want {
			if !got[i].Equal(&want[i]) {
				t.Fatalf("%s: record %d reads back as %+v, wrote %+v", stream, i, got[i], want[i])
			}
		}
	}
}

// segments lists every catalog segment, by stream and base.
func (e *env) segments() []tiers.SegmentMeta {
	e.t.Helper()
	streams, err := e.cat.Streams(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []tiers.SegmentMeta
	for _, s := range streams {
		segs, err := e.cat.Segments(e.ctx, s.Name)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, segs...)
	}
	return out
}

// The cluster's catalog is the compactor's.
var _ Catalog = (*pgcatalog.Catalog)(nil)
