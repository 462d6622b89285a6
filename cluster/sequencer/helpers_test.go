package sequencer_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tierd/tierd/cluster/registry"
	"github.com/tierd/tierd/cluster/sequencer"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/internal/pgschema"
	"github.com/tierd/tierd/journal"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's cluster: a migrated database and a bucket.
type env struct {
	t      testing.TB
	ctx    context.Context
	pool   *pgxpool.Pool
	bucket objstore.Bucket
	mc     *testenv.MinIO
	pg     *testenv.Postgres
}

type envOpts struct {
	dedicatedMinIO, dedicatedPG bool
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx}
	if o.dedicatedPG {
		e.pg = testenv.StartDedicatedPostgres(t)
	} else {
		e.pg = testenv.StartPostgres(t)
	}
	cfg, err := pgxpool.ParseConfig(e.pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	if e.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.pool.Close)
	if _, err := pgschema.Migrate(ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	if o.dedicatedMinIO {
		e.mc = testenv.StartDedicatedMinIO(t)
	} else {
		e.mc = testenv.StartMinIO(t)
	}
	e.bucket, err = objstore.Open(ctx, e.mc.URL("minio"), objstore.Options{
		AccessKey: e.mc.AccessKey, SecretKey: e.mc.SecretKey,
		MaxRetries: 1, ProbeInterval: 100 * time.Millisecond,
		Deadlines: objstore.Deadlines{ReadTimeout: 3 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.bucket.Close() })
	return e
}

// join registers a node; its Leave runs at cleanup.
func (e *env) join(id string) *registry.Registry {
	e.t.Helper()
	r, err := registry.Join(e.ctx, e.pool, id, "test", "", registry.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { r.Leave(context.Background()) })
	return r
}

// seq starts a sequencer for reg, closed at cleanup.
func (e *env) seq(reg *registry.Registry, o sequencer.Options) *sequencer.Sequencer {
	e.t.Helper()
	o.Pool, o.Bucket, o.Registry = e.pool, e.bucket, reg
	s, err := sequencer.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

// recs builds n records whose values name them.
func recs(tag string, n int) []tiers.Record {
	out := make([]tiers.Record, n)
	for i := range out {
		out[i] = tiers.Record{TS: int64(1000 + i), Key: fmt.Sprintf("k%d", i%3), Tags: []string{"t"}, Value: fmt.Appendf(nil, "%s/r%d", tag, i)}
	}
	return out
}

// ledger remembers what each acknowledged batch should hold, by stream and
// offset, and proves the catalog and the objects hold exactly that.
type ledger struct {
	mu   sync.Mutex
	want map[string]map[uint64]string // stream → offset → value
}

func newLedger() *ledger { return &ledger{want: map[string]map[uint64]string{}} }

// ack records an acknowledged batch; it fails the test if an offset was
// acknowledged to two different records.
func (l *ledger) ack(t testing.TB, stream string, res sequencer.Result, rs []tiers.Record) {
	t.Helper()
	if res.Count != len(rs) || res.Last-res.First+1 != uint64(len(rs)) {
		t.Errorf("result %+v for %d records", res, len(rs))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.want[stream]
	if m == nil {
		m = map[uint64]string{}
		l.want[stream] = m
	}
	for i := range rs {
		off := res.First + uint64(i)
		if old, ok := m[off]; ok && old != string(rs[i].Value) {
			t.Errorf("stream %s offset %d acknowledged twice: %q and %q", stream, off, old, rs[i].Value)
		}
		m[off] = string(rs[i].Value)
	}
}

// row is one journal_ranges row.
type row struct {
	stream      string
	first, last uint64
	key         string
	off, n      int64
}

func (e *env) ranges() []row {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT stream, first_offset, last_offset, object_key, byte_off, byte_len
		FROM journal_ranges ORDER BY stream, first_offset`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		var f, l int64
		if err := rows.Scan(&r.stream, &f, &l, &r.key, &r.off, &r.n); err != nil {
			e.t.Fatal(err)
		}
		r.first, r.last = uint64(f), uint64(l)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) nextOffsets() map[string]uint64 {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT stream, next_offset FROM cluster_streams`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			e.t.Fatal(err)
		}
		out[s] = uint64(n)
	}
	return out
}

// verify checks the whole database against the objects: per stream the
// ranges are dense from 0 to next_offset; every range's block decodes with
// the journal's checks to the records acknowledged at its offsets (every
// acknowledged offset present, so nothing acknowledged is lost); each
// object's live_ranges counts its rows. It returns the records per stream.
func (e *env) verify(l *ledger) map[string]int {
	e.t.Helper()
	next := e.nextOffsets()
	got := map[string]uint64{}
	counts := map[string]int{}
	perObject := map[string]int{}
	for _, r := range e.ranges() {
		if r.first != got[r.stream] {
			e.t.Fatalf("stream %s: range starts at %d, want %d (not dense)", r.stream, r.first, got[r.stream])
		}
		got[r.stream] = r.last + 1
		perObject[r.key]++
		rc, err := e.bucket.GetRange(e.ctx, r.key, r.off, r.n)
		if err != nil {
			e.t.Fatalf("range %+v: %v", r, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		blk, err := journal.DecodeBlock(b, journal.BlockCheck{Key: r.key, Pos: r.off, Stream: r.stream, Records: int(r.last - r.first + 1), First: r.first})
		if err != nil {
			e.t.Fatalf("range %+v: %v", r, err)
		}
		for _, rec := range blk.Records {
			counts[r.stream]++
			if l == nil {
				continue
			}
			if want, ok := l.want[r.stream][rec.Offset]; ok && want != string(rec.Value) {
				e.t.Fatalf("stream %s offset %d holds %q, acknowledged %q", r.stream, rec.Offset, rec.Value, want)
			}
		}
	}
	for s, n := range next {
		if got[s] != n {
			e.t.Fatalf("stream %s: ranges end at %d, next_offset %d", s, got[s], n)
		}
	}
	if l != nil {
		for s, m := range l.want {
			for off := range m {
				if off >= got[s] {
					e.t.Fatalf("stream %s: acknowledged offset %d is past the ranges (%d): lost", s, off, got[s])
				}
			}
		}
	}
	rows, err := e.pool.Query(e.ctx, `SELECT key, live_ranges FROM journal_objects`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int32
		if err := rows.Scan(&k, &n); err != nil {
			e.t.Fatal(err)
		}
		if int(n) != perObject[k] {
			e.t.Fatalf("object %s: live_ranges %d, %d rows", k, n, perObject[k])
		}
		delete(perObject, k)
	}
	if len(perObject) > 0 {
		e.t.Fatalf("ranges point at objects without a row: %v", perObject)
	}
	return counts
}

// objects lists the journal objects in the bucket.
func (e *env) objects() []string {
	e.t.Helper()
	var keys []string
	for a, err := range e.bucket.List(e.ctx, sequencer.JournalPrefix) {
		if err != nil {
			e.t.Fatal(err)
		}
		keys = append(keys, a.Key)
	}
	return keys
}

func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}
