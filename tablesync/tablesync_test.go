package tablesync

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// seg is segment [base, last] of stream, cold when cold.
func seg(stream string, base, last uint64, cold bool) tiers.SegmentMeta {
	m := tiers.SegmentMeta{
		Stream: stream, Base: base, Last: last, Count: last - base + 1,
		Bytes: int64(last-base+1) * 100, MinTS: t0.UnixNano() + int64(base), MaxTS: t0.UnixNano() + int64(last),
		SealedAt: t0, Digest: tiers.Digest{byte(base), byte(last)}, Placements: tiers.Of(tiers.Warm),
	}
	if cold {
		m.Placements, m.ColdBytes = tiers.Of(tiers.Cold), 1000
	}
	return m
}

// memTables is the Tables contract over a map: a table is the set of
// segment bases Sync found in the catalog (through CatalogSource, as the
// real publisher reads it). It counts syncs and fails them while fail is
// set. The real publisher (package tables) is tested over real stores in
// its own package and end to end in cmd/tierd.
type memTables struct {
	src    CatalogSource
	mu     sync.Mutex
	fail   error
	syncs  map[string]int
	tables map[string][]uint64
}

func newMemTables(cat catalog.Reads) *memTables {
	return &memTables{src: CatalogSource{Catalog: cat}, syncs: map[string]int{}, tables: map[string][]uint64{}}
}

func (m *memTables) Sync(ctx context.Context, stream string) (api.TableSync, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncs[stream]++
	if m.fail != nil {
		return api.TableSync{}, m.fail
	}
	segs, err := m.src.ColdSegments(ctx, stream)
	if err != nil {
		return api.TableSync{}, err
	}
	var want []uint64
	for _, s := range segs {
		want = append(want, s.Base)
	}
	res := api.TableSync{}
	for _, b := range want {
		if !slices.Contains(m.tables[stream], b) {
			res.Added++
		}
	}
	for _, b := range m.tables[stream] {
		if !slices.Contains(want, b) {
			res.Removed++
		}
	}
	m.tables[stream] = want
	return res, nil
}

func (m *memTables) Remove(ctx context.Context, stream string, segs []tiers.SegmentMeta) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.tables[stream] = slices.DeleteFunc(m.tables[stream], func(b uint64) bool {
		return slices.ContainsFunc(segs, func(s tiers.SegmentMeta) bool { return s.Base == b })
	})
	return nil
}

func (m *memTables) Describe(ctx context.Context, stream string) (api.Table, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tables[stream]
	if !ok {
		return api.Table{}, ErrNoTable
	}
	return api.Table{Table: "tierd." + stream, Files: int64(len(t))}, nil
}

func (m *memTables) Files(ctx context.Context, stream string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tables[stream]
	if !ok {
		return nil, ErrNoTable
	}
	var out []string
	for _, b := range t {
		out = append(out, fmt.Sprintf("stream=%s/%d", stream, b))
	}
	return out, nil
}

func (m *memTables) state(stream string) (syncs int, bases []uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncs[stream], slices.Clone(m.tables[stream])
}

func openCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func put(t *testing.T, c *catalog.Catalog, ms ...tiers.SegmentMeta) {
	t.Helper()
	for _, m := range ms {
		if err := c.PutSegment(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// eventually polls cond for up to a minute: a pass takes milliseconds, a
// hang shows as a failure, not as a stuck test.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("after a minute: %s", what)
}

// TestCatalogSource: a table holds the retained cold segments only: not
// warm-only ones, not tombstoned ones; an unknown stream holds none.
func TestCatalogSource(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	put(t, c, seg("a", 0, 9, true), seg("a", 10, 19, true), seg("a", 20, 29, false), seg("b", 0, 4, true))
	if _, err := c.Tombstone(ctx, "a", 0, t0.Add(time.Hour), func(*tiers.SegmentMeta) error { return nil }); err != nil {
		t.Fatal(err)
	}
	src := CatalogSource{Catalog: c}
	segs, err := src.ColdSegments(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0].Base != 10 {
		t.Fatalf("cold segments of a: %+v, want [10, 19] only", segs)
	}
	if segs, err := src.ColdSegments(ctx, "nope"); err != nil || len(segs) != 0 {
		t.Fatalf("unknown stream: %v, %v", segs, err)
	}
	names, err := src.StreamNames(ctx)
	if err != nil || !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("stream names %q, %v", names, err)
	}
}

// TestLoop: at start every stream is synced (the repair after a crash
// between a cold commit and its snapshot); Published streams are synced
// within an interval, several placements in one sync; a failed sync is
// counted and retried until it works.
func TestLoop(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	put(t, c, seg("a", 0, 9, true), seg("b", 0, 9, true))
	mt := newMemTables(c)
	reg := prometheus.NewRegistry()
	l := New(Options{Tables: mt, Streams: CatalogSource{Catalog: c}.StreamNames, Interval: 20 * time.Millisecond, Registerer: reg})
	l.Start()
	defer l.Close()
	for _, s := range []string{"a", "b"} {
		eventually(t, "the start-up sync of "+s, func() bool { _, b := mt.state(s); return len(b) == 1 })
	}

	// Two placements, one interval: the table gets both.
	mt.mu.Lock() // hold the syncs until both are committed
	put(t, c, seg("a", 10, 19, true))
	l.Published("a")
	put(t, c, seg("a", 20, 29, true))
	l.Published("a")
	mt.mu.Unlock()
	eventually(t, "the published segments in a's table", func() bool { _, b := mt.state("a"); return slices.Equal(b, []uint64{0, 10, 20}) })
	if n, _ := mt.state("b"); n != 1 {
		t.Fatalf("b synced %d times, want once: only published streams are synced after the start", n)
	}

	// A failing sync is retried until it works.
	mt.mu.Lock()
	mt.fail = errors.New("catalog unavailable")
	before := mt.syncs["b"]
	mt.mu.Unlock()
	put(t, c, seg("b", 10, 19, true))
	l.Published("b")
	eventually(t, "two failed syncs of b", func() bool { n, _ := mt.state("b"); return n >= before+2 })
	if got := value(l.metrics.syncs.WithLabelValues(resultError)); got < 2 {
		t.Fatalf("tierd_tables_syncs_total{result=error} = %v, want >= 2", got)
	}
	mt.mu.Lock()
	mt.fail = nil
	mt.mu.Unlock()
	eventually(t, "b's table after the store came back", func() bool { _, b := mt.state("b"); return slices.Equal(b, []uint64{0, 10}) })
	eventually(t, "no stream pending", func() bool { return value(l.metrics.dirty) == 0 })

	// Sync and Describe on demand; Remove.
	rep, err := l.SyncAll(ctx)
	if err != nil || len(rep.Streams) != 2 || rep.Failed != 0 || rep.Streams[0].Stream != "a" {
		t.Fatalf("SyncAll: %+v, %v", rep, err)
	}
	if err := l.Remove(ctx, "a", []tiers.SegmentMeta{seg("a", 0, 9, true)}); err != nil {
		t.Fatal(err)
	}
	if tb, err := l.Describe(ctx, "a"); err != nil || tb.Files != 2 || tb.Stream != "a" {
		t.Fatalf("Describe(a) = %+v, %v; want 2 files", tb, err)
	}
	if _, err := l.Describe(ctx, "nope"); !errors.Is(err, ErrNoTable) {
		t.Fatalf("Describe of a stream without a table: %v, want ErrNoTable", err)
	}
}

// TestSyncAllReportsEachStream: one stream's failure is in its result;
// the others are synced.
func TestSyncAllReportsEachStream(t *testing.T) {
	ctx := context.Background()
	c := openCatalog(t)
	put(t, c, seg("a", 0, 9, true), seg("b", 0, 9, true))
	mt := &failOne{memTables: newMemTables(c), stream: "a"}
	l := New(Options{Tables: mt, Streams: CatalogSource{Catalog: c}.StreamNames})
	rep, err := l.SyncAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 1 || len(rep.Streams) != 2 || rep.Streams[0].Error == nil || rep.Streams[0].Error.Code != api.CodeTablesUnavailable ||
		rep.Streams[1].Error != nil || rep.Streams[1].Added != 1 {
		t.Fatalf("SyncAll: %+v", rep)
	}
}

// failOne fails the syncs of one stream as unavailable.
type failOne struct {
	*memTables
	stream string
}

func (f *failOne) Sync(ctx context.Context, stream string) (api.TableSync, error) {
	if stream == f.stream {
		return api.TableSync{}, ErrUnavailable
	}
	return f.memTables.Sync(ctx, stream)
}

// value reads a counter's or gauge's value.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestNotASegment(t *testing.T) {
	for _, c := range []struct {
		key  string
		size int64
		want bool
	}{
		{"_iceberg/tierd/s/metadata/v1.metadata.json", 900, true},
		{"_iceberg/", 0, true},
		{"", 0, true},
		{"stream=s/", 0, true},
		{"stream=s/", 5, false}, // not empty: not a marker
		{"stream=s/date=2026-03-02/00000000000000000000-00000000000000000009.parquet", 100, false},
		{"stray.txt", 0, false},
		{"x_iceberg/a", 1, false},
	} {
		if got := NotASegment(c.key, c.size); got != c.want {
			t.Errorf("NotASegment(%q, %d) = %v, want %v", c.key, c.size, got, c.want)
		}
	}
}

// gatedTables is memTables whose syncs wait at a gate, counting how many
// are in flight at once; failFor makes the syncs of those streams fail.
type gatedTables struct {
	*memTables
	gate    chan struct{}
	mu      sync.Mutex
	now     int
	most    int
	failFor map[string]bool
}

func (g *gatedTables) Sync(ctx context.Context, stream string) (api.TableSync, error) {
	g.mu.Lock()
	g.now++
	g.most = max(g.most, g.now)
	fail := g.failFor[stream]
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.now--; g.mu.Unlock() }()
	select {
	case <-g.gate:
	case <-ctx.Done():
		return api.TableSync{}, ctx.Err()
	}
	if fail {
		g.memTables.mu.Lock()
		g.memTables.syncs[stream]++
		g.memTables.mu.Unlock()
		return api.TableSync{}, errors.New("store unavailable")
	}
	return g.memTables.Sync(ctx, stream)
}

// TestStartupSyncsStreamsAtOnce: the start-up sync of many streams runs
// roundWorkers syncs at a time, never more, syncs every stream once, and
// keeps a stream whose sync failed for the next round.
func TestStartupSyncsStreamsAtOnce(t *testing.T) {
	c := openCatalog(t)
	var names []string
	for i := range 12 {
		s := string(rune('a' + i))
		names = append(names, s)
		put(t, c, seg(s, 0, 9, true))
	}
	g := &gatedTables{memTables: newMemTables(c), gate: make(chan struct{}), failFor: map[string]bool{"c": true, "k": true}}
	l := New(Options{Tables: g, Streams: CatalogSource{Catalog: c}.StreamNames, Interval: time.Hour, Registerer: prometheus.NewRegistry()})
	l.Start()
	defer l.Close()
	eventually(t, "syncs in flight at once", func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.now == roundWorkers })
	time.Sleep(20 * time.Millisecond) // a fifth would start now if the loop allowed it
	close(g.gate)
	eventually(t, "the failed streams marked for the next round", func() bool { return value(l.metrics.dirty) == 2 })
	g.mu.Lock()
	most := g.most
	g.mu.Unlock()
	if most != roundWorkers {
		t.Fatalf("at most %d syncs ran at once, want %d", most, roundWorkers)
	}
	for _, s := range names {
		n, bases := g.state(s)
		if n != 1 {
			t.Errorf("%s synced %d times in the start-up round, want once", s, n)
		}
		if ok := !g.failFor[s]; ok != slices.Equal(bases, []uint64{0}) {
			t.Errorf("%s's table holds %v after the round", s, bases)
		}
	}
}
