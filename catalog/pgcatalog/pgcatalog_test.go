package pgcatalog_test

import (
	"context"
	"errors"
	"math"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/catalog/pgcatalog"
	"github.com/tierd/tierd/internal/pgschema"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

// seg returns a valid warm segment [base, last] of stream.
func seg(stream string, base, last uint64) tiers.SegmentMeta {
	return tiers.SegmentMeta{
		Stream: stream, Base: base, Last: last, Count: last - base + 1,
		Bytes: int64(last-base+1) * 100, MinTS: int64(base), MaxTS: int64(last),
		SealedAt:   t0,
		Digest:     tiers.Digest{byte(base), byte(last)},
		Placements: tiers.Of(tiers.Warm),
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// mustPut registers segments or fails the test.
func mustPut(t *testing.T, c *pgcatalog.Catalog, ms ...tiers.SegmentMeta) {
	t.Helper()
	for _, m := range ms {
		if err := c.PutSegment(context.Background(), m); err != nil {
			t.Fatalf("PutSegment(%s [%d, %d]): %v", m.Stream, m.Base, m.Last, err)
		}
	}
}

func streamsOf(t *testing.T, c *pgcatalog.Catalog) []catalog.StreamInfo {
	t.Helper()
	infos, err := c.Streams(context.Background())
	if err != nil {
		t.Fatalf("Streams: %v", err)
	}
	return infos
}

// TestPutSegmentTx: a segment put in the caller's transaction is invisible
// until the caller commits, gone with a rollback, and refused without
// spoiling the transaction.
func TestPutSegmentTx(t *testing.T) {
	ctx := testCtx(t)
	c, pool := openCatalog(t, testenv.StartPostgres(t).DSN)
	defer c.Close()

	t.Run("commit", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if err := c.PutSegmentTx(ctx, tx, seg("s", 0, 9)); err != nil {
			t.Fatalf("PutSegmentTx: %v", err)
		}
		// A refusal leaves the transaction usable.
		if err := c.PutSegmentTx(ctx, tx, seg("s", 5, 14)); !errors.Is(err, catalog.ErrOverlap) {
			t.Fatalf("PutSegmentTx of an overlapping segment: %v, want ErrOverlap", err)
		}
		bad := seg("s", 10, 19)
		bad.Count++
		if err := c.PutSegmentTx(ctx, tx, bad); !errors.Is(err, catalog.ErrInvalidSegment) {
			t.Fatalf("PutSegmentTx of an invalid segment: %v, want ErrInvalidSegment", err)
		}
		if err := c.PutSegmentTx(ctx, tx, seg("s", 10, 19)); err != nil {
			t.Fatalf("PutSegmentTx after refusals: %v", err)
		}
		// The caller's own change, committed with the segments.
		if _, err := tx.Exec(ctx, `INSERT INTO cluster_streams (stream, next_offset) VALUES ('s', 20)`); err != nil {
			t.Fatal(err)
		}
		if infos := streamsOf(t, c); len(infos) != 0 {
			t.Fatalf("before the commit, Streams = %+v; want nothing", infos)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		infos := streamsOf(t, c)
		if len(infos) != 1 || infos[0].Segments != 2 || infos[0].NextOffset != 20 || infos[0].Records != 20 {
			t.Fatalf("after the commit, Streams = %+v; want s with 2 segments up to 20", infos)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PutSegmentTx(ctx, tx, seg("s", 20, 29)); err != nil {
			t.Fatal(err)
		}
		if err := c.PutSegmentTx(ctx, tx, seg("r", 0, 9)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		infos := streamsOf(t, c)
		if len(infos) != 1 || infos[0].Name != "s" || infos[0].NextOffset != 20 || infos[0].Segments != 2 {
			t.Fatalf("after a rollback, Streams = %+v; want s alone, as before", infos)
		}
		if _, err := c.Segment(ctx, "s", 20); !errors.Is(err, tiers.ErrSegmentNotFound) {
			t.Fatalf("a rolled back segment: %v, want ErrSegmentNotFound", err)
		}
	})

	t.Run("holds the stream against other writers", func(t *testing.T) {
		other, _ := openCatalog(t, testenv.StartPostgres(t).DSN) // a database of its own: unrelated
		defer other.Close()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if err := c.PutSegmentTx(ctx, tx, seg("s", 20, 29)); err != nil {
			t.Fatal(err)
		}
		// A second node's PutSegment of an overlapping segment waits for the
		// transaction, then sees its segment.
		done := make(chan error, 1)
		go func() { done <- c.PutSegment(ctx, seg("s", 25, 34)) }()
		select {
		case err := <-done:
			t.Fatalf("PutSegment beside an uncommitted overlapping segment returned %v before the commit", err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, catalog.ErrOverlap) {
			t.Fatalf("PutSegment after the overlapping commit: %v, want ErrOverlap", err)
		}
	})

	t.Run("closed", func(t *testing.T) {
		c2, _ := openCatalog(t, testenv.StartPostgres(t).DSN)
		c2.Close()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if err := c2.PutSegmentTx(ctx, tx, seg("s", 100, 109)); !errors.Is(err, tiers.ErrClosed) {
			t.Fatalf("PutSegmentTx after Close: %v, want ErrClosed", err)
		}
	})
}

// TestConcurrentNodes: two Catalogs on pools of their own (two nodes)
// putting overlapping segments of one stream at once: each put wins or is
// refused with ErrOverlap, the winners never overlap, and the totals count
// each once.
func TestConcurrentNodes(t *testing.T) {
	ctx := testCtx(t)
	dsn := testenv.StartPostgres(t).DSN
	a, _ := openCatalog(t, dsn)
	b, _ := openCatalog(t, dsn)
	defer a.Close()
	defer b.Close()
	const n = 40
	var wg sync.WaitGroup
	errc := make(chan error, 4*n)
	put := func(c *pgcatalog.Catalog, shift uint64) {
		defer wg.Done()
		for i := uint64(0); i < n; i++ {
			err := c.PutSegment(ctx, seg("s", i*10+shift, i*10+shift+9))
			if err != nil && !errors.Is(err, catalog.ErrOverlap) {
				errc <- err
			}
		}
	}
	for _, w := range []struct {
		c     *pgcatalog.Catalog
		shift uint64
	}{{a, 0}, {b, 5}, {a, 3}, {b, 0}} {
		wg.Add(1)
		go put(w.c, w.shift)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("a concurrent PutSegment failed: %v", err)
	}
	segs, err := a.Segments(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	var records, bytes uint64
	for i, m := range segs {
		if i > 0 && m.Base <= segs[i-1].Last {
			t.Fatalf("segments [%d, %d] and [%d, %d] overlap", segs[i-1].Base, segs[i-1].Last, m.Base, m.Last)
		}
		records += m.Count
		bytes += uint64(m.Bytes)
	}
	in := streamsOf(t, b)[0]
	if in.Segments != len(segs) || in.Records != records || uint64(in.Bytes) != bytes || in.NextOffset != segs[len(segs)-1].Last+1 {
		t.Fatalf("stream %+v; its %d segments hold %d records, %d bytes, up to %d", in, len(segs), records, bytes, segs[len(segs)-1].Last)
	}
	cv, err := b.Coverage(ctx, "s")
	if err != nil || len(cv.Overlaps) != 0 {
		t.Fatalf("Coverage = %+v, %v; want no overlap", cv, err)
	}
}

// TestDamagedRows: a row no build of tierd writes (an operator's edit with
// the checks dropped, another version's bug) is a *tiers.CorruptionError
// wrapping catalog.ErrDamaged on every read that meets it, and refuses
// the writes that would build on it.
func TestDamagedRows(t *testing.T) {
	ctx := testCtx(t)
	cases := []struct {
		name string
		sql  []string
		// reads are the calls that must report the damage.
		reads []string
	}{
		{"unknown placement", []string{
			`ALTER TABLE catalog_segments DROP CONSTRAINT catalog_segments_placements`,
			`UPDATE catalog_segments SET placements = '{warm,frozen}' WHERE base = 10`,
		}, []string{"Segment", "Segments", "Locate", "Coverage", "UpdateSegment", "PutNeighbour", "Tombstone"}},
		{"hot stored", []string{
			`ALTER TABLE catalog_segments DROP CONSTRAINT catalog_segments_placements`,
			`UPDATE catalog_segments SET placements = '{hot,warm}' WHERE base = 10`,
		}, []string{"Segment", "Segments", "Locate", "UpdateSegment"}},
		{"NULL placement", []string{
			`ALTER TABLE catalog_segments DROP CONSTRAINT catalog_segments_placements`,
			`UPDATE catalog_segments SET placements = '{warm,NULL}' WHERE base = 10`,
		}, []string{"Segment", "Segments", "Locate"}},
		{"no placement", []string{
			`ALTER TABLE catalog_segments DROP CONSTRAINT catalog_segments_placements`,
			`UPDATE catalog_segments SET placements = '{}' WHERE base = 10`,
		}, []string{"Segment", "Segments"}},
		{"last before base", []string{
			`ALTER TABLE catalog_segments DROP CONSTRAINT catalog_segments_dense`,
			`UPDATE catalog_segments SET last_offset = 9, count = 0 WHERE base = 10`,
		}, []string{"Segment", "Segments", "Coverage", "UpdateSegment"}},
		{"count not dense", []string{
			`ALTER TABLE catalog_segments DROP CONSTRAINT catalog_segments_dense`,
			`UPDATE catalog_segments SET count = 3 WHERE base = 10`,
		}, []string{"Segment", "Segments", "Locate"}},
		{"short digest", []string{
			`ALTER TABLE catalog_segments DROP CONSTRAINT catalog_segments_digest_check`,
			`UPDATE catalog_segments SET digest = '\x0102' WHERE base = 10`,
		}, []string{"Segment", "Segments"}},
		{"cold bytes without cold", []string{
			`ALTER TABLE catalog_segments DROP CONSTRAINT catalog_segments_placements`,
			`UPDATE catalog_segments SET cold_bytes = 5 WHERE base = 10`,
		}, []string{"Segment", "Segments"}},
		{"tombstoned before its seal", []string{
			`ALTER TABLE catalog_segments DROP CONSTRAINT catalog_segments_times`,
			`UPDATE catalog_segments SET tombstoned = sealed_at - interval '1 hour' WHERE base = 10`,
		}, []string{"Segment", "Segments"}},
		{"watermark past the next offset", []string{
			`ALTER TABLE catalog_streams DROP CONSTRAINT catalog_streams_watermark`,
			`UPDATE catalog_streams SET retained_from = next_offset + 1`,
		}, []string{"Streams", "Segments", "Locate", "Retained", "PutNeighbour", "Tombstone"}},
		{"totals below a segment", []string{
			`UPDATE catalog_streams SET segments = 1, records = 5`,
		}, []string{"CommitDelete"}},
		{"segment past the next offset", []string{
			`UPDATE catalog_streams SET next_offset = 15`,
		}, []string{"Coverage"}},
		{"intent without kind", []string{
			`ALTER TABLE catalog_intents DROP CONSTRAINT catalog_intents_kind_check`,
			`UPDATE catalog_intents SET kind = ''`,
		}, []string{"Intents", "Intent", "CommitMove"}},
		{"failure without attempts", []string{
			`ALTER TABLE catalog_failures DROP CONSTRAINT catalog_failures_attempts_check`,
			`UPDATE catalog_failures SET attempts = 0`,
		}, []string{"Failures", "LastError"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, pool := openCatalog(t, testenv.StartPostgres(t).DSN)
			defer c.Close()
			mustPut(t, c, seg("s", 0, 9), seg("s", 10, 19))
			if _, err := c.Tombstone(ctx, "s", 0, t0.Add(time.Hour), func(*tiers.SegmentMeta) error { return nil }); err != nil {
				t.Fatal(err)
			}
			if err := c.PutIntent(ctx, catalog.Intent{Stream: "s", Base: 0, Kind: catalog.IntentDeleteWarm, Key: "k"}); err != nil {
				t.Fatal(err)
			}
			if err := c.RecordFailure(ctx, "s", 10, "boom"); err != nil {
				t.Fatal(err)
			}
			for _, q := range tc.sql {
				if _, err := pool.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			calls := map[string]func() error{
				"Streams":  func() error { _, err := c.Streams(ctx); return err },
				"Segment":  func() error { _, err := c.Segment(ctx, "s", 10); return err },
				"Segments": func() error { _, err := c.Segments(ctx, "s"); return err },
				"Locate":   func() error { _, _, err := c.Locate(ctx, "s", 12, 12); return err },
				"Retained": func() error { _, _, _, _, err := c.Retained(ctx, "s"); return err },
				"Coverage": func() error { _, err := c.Coverage(ctx, "s"); return err },
				"UpdateSegment": func() error {
					_, err := c.UpdateSegment(ctx, "s", 10, func(m *tiers.SegmentMeta) error {
						m.Placements, m.ColdBytes = tiers.Of(tiers.Warm, tiers.Cold), 1
						return nil
					})
					return err
				},
				"PutNeighbour": func() error { return c.PutSegment(ctx, seg("s", 20, 29)) },
				"Tombstone": func() error {
					_, err := c.Tombstone(ctx, "s", 10, t0.Add(time.Hour), func(*tiers.SegmentMeta) error { return nil })
					return err
				},
				"CommitDelete": func() error { return c.CommitDelete(ctx, "s", 0) },
				"Intents":      func() error { _, err := c.Intents(ctx); return err },
				"Intent":       func() error { _, _, err := c.Intent(ctx, "s", 0); return err },
				"CommitMove": func() error {
					_, err := c.CommitMove(ctx, "s", 0, func(*tiers.SegmentMeta) error { return nil })
					return err
				},
				"Failures":  func() error { _, err := c.Failures(ctx); return err },
				"LastError": func() error { _, _, err := c.LastError(ctx, "s", 10); return err },
			}
			var before []any
			dump := func() []any {
				var rows []any
				for _, table := range []string{"catalog_streams", "catalog_segments", "catalog_intents", "catalog_failures"} {
					var s string
					if err := pool.QueryRow(ctx, `SELECT coalesce(string_agg(t::text, ';' ORDER BY t::text), '') FROM `+table+` t`).Scan(&s); err != nil {
						t.Fatal(err)
					}
					rows = append(rows, s)
				}
				return rows
			}
			before = dump()
			for _, name := range tc.reads {
				err := calls[name]()
				var ce *tiers.CorruptionError
				if !errors.As(err, &ce) || !errors.Is(err, catalog.ErrDamaged) {
					t.Errorf("%s on a damaged row: %v, want a *tiers.CorruptionError wrapping catalog.ErrDamaged", name, err)
				}
			}
			if after := dump(); !slices.Equal(after, before) {
				t.Fatalf("calls meeting damage changed the tables:\n%v\nwere\n%v", after, before)
			}
		})
	}
}

// TestOffsetRange: offsets are bigint; a segment reaching past them is
// refused, lookups past them find nothing, ranges past them are clamped.
func TestOffsetRange(t *testing.T) {
	ctx := testCtx(t)
	c, _ := openCatalog(t, testenv.StartPostgres(t).DSN)
	defer c.Close()
	top := uint64(math.MaxInt64 - 1) // the highest: the next offset is MaxInt64
	mustPut(t, c, seg("s", top-9, top))
	if err := c.PutSegment(ctx, seg("s", top+1, top+1)); !errors.Is(err, catalog.ErrInvalidSegment) {
		t.Fatalf("PutSegment of offset %d: %v, want ErrInvalidSegment", top+1, err)
	}
	if in := streamsOf(t, c)[0]; in.NextOffset != math.MaxInt64 {
		t.Fatalf("next offset %d, want %d", in.NextOffset, int64(math.MaxInt64))
	}
	if _, err := c.Segment(ctx, "s", math.MaxUint64); !errors.Is(err, tiers.ErrSegmentNotFound) {
		t.Fatalf("Segment past the range: %v", err)
	}
	got, _, err := c.Locate(ctx, "s", top-5, math.MaxUint64)
	if err != nil || len(got) != 1 || got[0].Base != top-9 {
		t.Fatalf("Locate to MaxUint64 = %+v, %v", got, err)
	}
	if got, _, err := c.Locate(ctx, "s", math.MaxUint64-1, math.MaxUint64); err != nil || len(got) != 0 {
		t.Fatalf("Locate past the range = %+v, %v", got, err)
	}
	if in, ok, err := c.Intent(ctx, "s", math.MaxUint64); ok || err != nil {
		t.Fatalf("Intent past the range = %+v %v %v", in, ok, err)
	}
}

// TestOpenRefusesNewerSchema: a database a newer tierd migrated is not
// served.
func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := testCtx(t)
	pool := newPool(t, testenv.StartPostgres(t).DSN)
	if _, err := pgschema.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO tierd_schema (version, name) VALUES ($1, 'from_the_future')", pgschema.Latest()+1); err != nil {
		t.Fatal(err)
	}
	if c, err := pgcatalog.Open(ctx, pool); !errors.Is(err, pgschema.ErrSchemaNewer) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Open on a newer schema: %v, want ErrSchemaNewer", err)
	}
}

// TestServerOutage: with PostgreSQL stopped every call fails within its
// deadline with an error wrapping tiers.ErrStorageUnavailable (nothing
// written); once it is back the same Catalog (and pool) serves again,
// with everything committed before the outage and nothing of the failed
// calls.
func TestServerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the PostgreSQL stop and restart")
	}
	ctx := testCtx(t)
	pg := testenv.StartDedicatedPostgres(t)
	c, _ := openCatalog(t, pg.DSN)
	defer c.Close()
	mustPut(t, c, seg("s", 0, 9), seg("s", 10, 19))
	if err := c.PutIntent(ctx, catalog.Intent{Stream: "s", Base: 10, Kind: catalog.IntentUpload, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	pg.Stop()
	calls := map[string]func(ctx context.Context) error{
		"Streams":    func(ctx context.Context) error { _, err := c.Streams(ctx); return err },
		"Locate":     func(ctx context.Context) error { _, _, err := c.Locate(ctx, "s", 0, 100); return err },
		"PutSegment": func(ctx context.Context) error { return c.PutSegment(ctx, seg("s", 20, 29)) },
		"CommitMove": func(ctx context.Context) error {
			_, err := c.CommitMove(ctx, "s", 10, func(m *tiers.SegmentMeta) error {
				m.Placements, m.ColdBytes = tiers.Of(tiers.Cold), 5
				return nil
			})
			return err
		},
		"RecordFailure": func(ctx context.Context) error { return c.RecordFailure(ctx, "s", 10, "x") },
	}
	for name, call := range calls {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		start := time.Now()
		err := call(cctx)
		cancel()
		if !errors.Is(err, tiers.ErrStorageUnavailable) {
			t.Errorf("%s with PostgreSQL stopped: %v, want ErrStorageUnavailable", name, err)
		}
		if d := time.Since(start); d > 20*time.Second+5*time.Second {
			t.Errorf("%s took %v, past its deadline", name, d)
		}
	}
	pool2, err := pgxpool.New(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pool2.Close()
	if _, err := pgcatalog.Open(ctx, pool2); !errors.Is(err, tiers.ErrStorageUnavailable) {
		t.Errorf("Open with PostgreSQL stopped: %v, want ErrStorageUnavailable", err)
	}

	pg.Start()
	// The pool reconnects; a call may meet one more dead connection.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := c.Streams(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Streams a minute after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	segs, err := c.Segments(ctx, "s")
	if err != nil || len(segs) != 2 || segs[1].Placements != tiers.Of(tiers.Warm) {
		t.Fatalf("after the restart, Segments = %+v, %v; want the two segments as before", segs, err)
	}
	if _, ok, err := c.LastError(ctx, "s", 10); ok || err != nil {
		t.Fatalf("a failed RecordFailure left a failure: %v %v", ok, err)
	}
	for _, name := range []string{"PutSegment", "CommitMove", "RecordFailure"} {
		if err := calls[name](ctx); err != nil {
			t.Fatalf("%s after the restart: %v", name, err)
		}
	}
	in := streamsOf(t, c)[0]
	if in.Segments != 3 || in.NextOffset != 30 {
		t.Fatalf("after the restart and the writes, stream = %+v", in)
	}
	if m, err := c.Segment(ctx, "s", 10); err != nil || m.Placements != tiers.Of(tiers.Cold) {
		t.Fatalf("CommitMove after the restart: %+v, %v", m, err)
	}
}

// TestUnansweringServer: a server that accepts connections and never
// answers costs a call its deadline, no more, and is an outage.
func TestUnansweringServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, conn)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	pool := newPool(t, "postgres://tierd@"+ln.Addr().String()+"/tierd?sslmode=disable")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	c, err := pgcatalog.Open(ctx, pool)
	if err == nil {
		c.Close()
		t.Fatal("Open against a server that never answers succeeded")
	}
	if !errors.Is(err, tiers.ErrStorageUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open against a server that never answers: %v, want ErrStorageUnavailable and the deadline", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Open took %v with a 2s deadline", d)
	}
}

// TestCloseWaitsForCalls: Close lets a call in flight finish (here one
// waiting for a row lock) and refuses later ones, so that the caller may
// close the pool as soon as Close returns.
func TestCloseWaitsForCalls(t *testing.T) {
	ctx := testCtx(t)
	c, pool := openCatalog(t, testenv.StartPostgres(t).DSN)
	mustPut(t, c, seg("s", 0, 9))
	// Another node's transaction holds the stream.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := c.PutSegmentTx(ctx, tx, seg("s", 10, 19)); err != nil {
		t.Fatal(err)
	}
	call := make(chan error, 1)
	go func() { call <- c.PutSegment(ctx, seg("s", 20, 29)) }()
	time.Sleep(200 * time.Millisecond) // let it reach the lock
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a call was in flight", err)
	case err := <-call:
		t.Fatalf("PutSegment returned (%v) while the stream was held", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-call; err != nil {
		t.Fatalf("the call in flight during Close: %v, want it to finish", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Streams(ctx); !errors.Is(err, tiers.ErrClosed) {
		t.Fatalf("Streams after Close: %v, want ErrClosed", err)
	}
	pool.Close()
	if err := c.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

// An unknown commit is the API's outcome_unknown (503, retry), never an
// internal error: the server maps tiers.ErrOutcomeUnknown.
func TestCommitUnknownIsOutcomeUnknown(t *testing.T) {
	if !errors.Is(pgcatalog.ErrCommitUnknown, tiers.ErrOutcomeUnknown) {
		t.Fatal("pgcatalog.ErrCommitUnknown does not wrap tiers.ErrOutcomeUnknown")
	}
}
