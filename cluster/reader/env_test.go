package reader

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tierd/tierd/catalog/pgcatalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/journal"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is a cluster's shared state for one test: a real PostgreSQL with the
// cluster schema and the PostgreSQL catalog, a real MinIO bucket and a cold
// tier over it. It plays the sequencer (commit) and the compactor (compact) with
// plain SQL, as the schema in internal/pgschema defines them.
type env struct {
	t       testing.TB
	ctx     context.Context
	pg      *testenv.Postgres
	pool    *pgxpool.Pool
	bucket  objstore.Bucket
	catalog *pgcatalog.Catalog
	cold    *cold.Tier
	seq     int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvPG(t, testenv.StartPostgres(t))
}

func newEnvPG(t testing.TB, pg *testenv.Postgres) *env {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	mc := testenv.StartMinIO(t)
	b, err := objstore.Open(ctx, mc.URL("minio"), objstore.Options{AccessKey: mc.AccessKey, SecretKey: mc.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	cat, err := pgcatalog.Open(ctx, pool) // migrates: the cluster tables too
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return &env{t: t, ctx: ctx, pg: pg, pool: pool, bucket: b, catalog: cat, cold: ct}
}

// reader opens a Reader over the env, closed when the test ends.
func (e *env) reader(o Options) *Reader {
	e.t.Helper()
	o.Pool, o.Bucket, o.Cold, o.Catalog = e.pool, e.bucket, e.cold, e.catalog
	r, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { r.Close() })
	return r
}

// batch is one append of a test: records of one stream.
type batch struct {
	stream string
	recs   []tiers.Record
}

// committed is what commit wrote.
type committed struct {
	key   string
	bytes []byte
	// recs are the batches' records with their assigned offsets, by
	// stream, in offset order.
	recs map[string][]tiers.Record
	refs []journal.BlockRef
}

// commit does what the sequencer does for one flush: one journal object
// holding the batches, PUT under _journal/<node>/<epoch>/<seq>, then one
// transaction assigning dense offsets per stream, inserting a
// journal_ranges row per batch and the journal_objects row, moving
// next_offset and notifying tierd_commits.
func (e *env) commit(batches ...batch) committed {
	e.t.Helper()
	e.seq++
	const node, epoch = "node-a", 1
	w, err := journal.NewWriter(journal.Header{NodeID: node, Epoch: epoch, CreatedAt: time.Now().UnixNano()})
	if err != nil {
		e.t.Fatal(err)
	}
	c := committed{key: fmt.Sprintf("_journal/%s/%d/%020d", node, epoch, e.seq), recs: map[string][]tiers.Record{}}
	for _, b := range batches {
		ref, err := w.Add(b.stream, tiers.Producer{}, b.recs)
		if err != nil {
			e.t.Fatal(err)
		}
		c.refs = append(c.refs, ref)
	}
	c.bytes = append([]byte(nil), w.Finish()...)
	if err := e.bucket.Put(e.ctx, c.key, bytes.NewReader(c.bytes), int64(len(c.bytes))); err != nil {
		e.t.Fatal(err)
	}
	err = pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(e.ctx, `INSERT INTO journal_objects (key, node_id, epoch, size, live_ranges) VALUES ($1, $2, $3, $4, $5)`,
			c.key, node, epoch, len(c.bytes), len(batches)); err != nil {
			return err
		}
		next := map[string]int64{}
		for i, b := range batches {
			if _, ok := next[b.stream]; !ok {
				if _, err := tx.Exec(e.ctx, `INSERT INTO cluster_streams (stream) VALUES ($1) ON CONFLICT DO NOTHING`, b.stream); err != nil {
					return err
				}
				var n int64
				if err := tx.QueryRow(e.ctx, `SELECT next_offset FROM cluster_streams WHERE stream = $1 FOR UPDATE`, b.stream).Scan(&n); err != nil {
					return err
				}
				next[b.stream] = n
			}
			first := next[b.stream]
			var size int64
			for j, r := range b.recs {
				r.Offset = uint64(first) + uint64(j)
				size += int64(r.Size())
				c.recs[b.stream] = append(c.recs[b.stream], r)
			}
			ref := c.refs[i]
			if _, err := tx.Exec(e.ctx, `INSERT INTO journal_ranges (stream, first_offset, last_offset, object_key, byte_off, byte_len, min_ts, max_ts, bytes)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				b.stream, first, first+int64(len(b.recs))-1, c.key, ref.Pos, ref.Len, ref.MinTS, ref.MaxTS, size); err != nil {
				return err
			}
			next[b.stream] = first + int64(len(b.recs))
		}
		for s, n := range next {
			if _, err := tx.Exec(e.ctx, `UPDATE cluster_streams SET next_offset = $2 WHERE stream = $1`, s, n); err != nil {
				return err
			}
			if _, err := tx.Exec(e.ctx, `SELECT pg_notify('tierd_commits', $1)`, fmt.Sprintf("%s:%d", s, n)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// compact does what the compactor does to a stream's oldest journal
// ranges up to offset last (a range boundary): reads their records back
// from the objects, uploads them as one Parquet segment, and in one
// transaction registers it in the catalog and deletes the ranges,
// releasing objects at 0 live ranges.
// It returns the segment.
func (e *env) compact(stream string, last uint64) tiers.SegmentMeta {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT first_offset, last_offset, object_key, byte_off, byte_len FROM journal_ranges
		WHERE stream = $1 AND last_offset <= $2 ORDER BY first_offset`, stream, int64(last))
	if err != nil {
		e.t.Fatal(err)
	}
	var recs []tiers.Record
	keys := map[string]int{}
	for rows.Next() {
		var f, l, off, n int64
		var key string
		if err := rows.Scan(&f, &l, &key, &off, &n); err != nil {
			e.t.Fatal(err)
		}
		b := e.get(key)[off : off+n]
		blk, err := journal.DecodeBlock(b, journal.BlockCheck{Key: key, Pos: off, Stream: stream, Records: int(l - f + 1), First: uint64(f)})
		if err != nil {
			e.t.Fatal(err)
		}
		recs = append(recs, blk.Records...)
		keys[key]++
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	if len(recs) == 0 || recs[len(recs)-1].Offset != last {
		e.t.Fatalf("compact %s up to %d: ranges end at a different offset", stream, last)
	}
	m := segmentOf(stream, recs)
	size, err := e.cold.Upload(e.ctx, m, seqOf(recs))
	if err != nil {
		e.t.Fatal(err)
	}
	m.Placements, m.ColdBytes = tiers.Of(tiers.Cold), size
	err = pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		if err := e.catalog.PutSegmentTx(e.ctx, tx, m); err != nil {
			return err
		}
		if _, err := tx.Exec(e.ctx, `DELETE FROM journal_ranges WHERE stream = $1 AND first_offset >= $2 AND last_offset <= $3`, stream, int64(m.Base), int64(m.Last)); err != nil {
			return err
		}
		for k, n := range keys {
			if _, err := tx.Exec(e.ctx, `UPDATE journal_objects SET live_ranges = live_ranges - $2,
				released_at = CASE WHEN live_ranges = $2 THEN now() END WHERE key = $1`, k, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// get reads a whole object.
func (e *env) get(key string) []byte {
	e.t.Helper()
	rc, err := e.bucket.Get(e.ctx, key)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		e.t.Fatal(err)
	}
	return buf.Bytes()
}

// put replaces an object.
func (e *env) put(key string, b []byte) {
	e.t.Helper()
	if err := e.bucket.Put(e.ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		e.t.Fatal(err)
	}
}

func segmentOf(stream string, recs []tiers.Record) tiers.SegmentMeta {
	d := tiers.NewDigester()
	m := tiers.SegmentMeta{Stream: stream, Base: recs[0].Offset, Last: recs[len(recs)-1].Offset, Count: uint64(len(recs)),
		MinTS: math.MaxInt64, MaxTS: math.MinInt64, SealedAt: time.Unix(1_700_000_000, 0)}
	for i := range recs {
		d.Add(&recs[i])
		m.Bytes += int64(recs[i].Size())
		m.MinTS, m.MaxTS = min(m.MinTS, recs[i].TS), max(m.MaxTS, recs[i].TS)
	}
	m.Digest = d.Sum()
	return m
}

func seqOf(recs []tiers.Record) func(func(tiers.Record, error) bool) {
	return func(yield func(tiers.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// records makes n records with ts from ts0 (one second apart), keys k0..k2
// and every other one tagged "even".
func records(n int, ts0 int64, seed int) []tiers.Record {
	recs := make([]tiers.Record, n)
	for i := range recs {
		r := &recs[i]
		r.TS = ts0 + int64(i)*int64(time.Second)
		r.Key = fmt.Sprintf("k%d", (seed+i)%3)
		r.Value = []byte(fmt.Sprintf("value %d/%d", seed, i))
		if (seed+i)%2 == 0 {
			r.Tags = []string{"even"}
		}
	}
	return recs
}

// readAll collects a read: its items, and the error that ended it.
func readAll(t *testing.T, r *Reader, stream string, q tiers.Query) ([]Item, error) {
	t.Helper()
	var out []Item
	for it, err := range r.Read(context.Background(), stream, q) {
		if err != nil {
			return out, err
		}
		out = append(out, it)
	}
	return out, nil
}

// want filters a model of the stream by q as the reader must.
func want(all []tiers.Record, q tiers.Query) []tiers.Record {
	var out []tiers.Record
	for i := range all {
		if q.Match(&all[i]) {
			out = append(out, all[i])
			if q.Limit > 0 && len(out) == q.Limit {
				break
			}
		}
	}
	return out
}

// sameRecords compares a read's items with the model's records.
func sameRecords(t *testing.T, what string, got []Item, want []tiers.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i].Record, want[i]
		if g.Offset != w.Offset || g.TS != w.TS || g.Key != w.Key || !bytes.Equal(g.Value, w.Value) || fmt.Sprint(g.Tags) != fmt.Sprint(w.Tags) {
			t.Fatalf("%s: record %d is %+v, want %+v", what, i, g, w)
		}
	}
}
