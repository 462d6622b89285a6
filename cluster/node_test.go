package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/testenv"
	"github.com/tierd/tierd/tiers"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// world is what the nodes of one test share: a real PostgreSQL database
// and a real MinIO bucket.
type world struct {
	t   *testing.T
	ctx context.Context
	pg  *testenv.Postgres
	mc  *testenv.MinIO
	cfg policy.Config
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), pg: testenv.StartPostgres(t), mc: testenv.StartMinIO(t)}
	w.cfg = policy.Default()
	w.cfg.Cluster.Catalog = policy.DSN(w.pg.DSN)
	return w
}

// open opens node id with its data directory dir, closed at the end of
// the test unless the test closes it first.
func (w *world) open(id, dir string) *Node {
	w.t.Helper()
	b, err := objstore.Open(w.ctx, w.mc.URL("minio"), objstore.Options{AccessKey: w.mc.AccessKey, SecretKey: w.mc.SecretKey})
	if err != nil {
		w.t.Fatal(err)
	}
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: filepath.Join(dir, "cold-spool")})
	if err != nil {
		w.t.Fatal(err)
	}
	cfg := w.cfg
	n, err := Open(w.ctx, Options{
		DSN: w.pg.DSN, NodeID: id, Version: "test", DataDir: dir,
		Cold: ct, Bucket: b, Config: &cfg, FlushInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{w.t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		ct.Close()
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// writesRefused is tierd_writes_refused in reg, by cause.
func writesRefused(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tierd_writes_refused" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

// testWriter logs through t.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// batch makes count records numbered from i, with keys, tags and ts that
// the filters can tell apart.
func batch(i, count int) []tiers.Record {
	out := make([]tiers.Record, count)
	for j := range out {
		k := i + j
		out[j] = tiers.Record{TS: int64(1_700_000_000_000_000_000 + k*1000), Key: fmt.Sprintf("k%d", k%3), Value: []byte(fmt.Sprintf("value %d", k))}
		if k%2 == 0 {
			out[j].Tags = []string{"even"}
		}
	}
	return out
}

// readAll reads stream through n with q.
func readAll(t *testing.T, n *Node, stream string, q tiers.Query) ([]tiers.Record, []tiers.Placement) {
	t.Helper()
	var recs []tiers.Record
	var where []tiers.Placement
	for it, err := range n.Read(context.Background(), stream, q) {
		if err != nil {
			t.Fatalf("read %s through %s: %v", stream, n.NodeID(), err)
		}
		recs = append(recs, it.Record)
		where = append(where, it.Tier)
	}
	return recs, where
}

// same compares records field by field (a nil and an empty Tags or Value
// are the same).
func same(t *testing.T, what string, got, want []tiers.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || g.TS != w.TS || g.Key != w.Key || string(g.Value) != string(w.Value) ||
			len(g.Tags) != len(w.Tags) || (len(w.Tags) > 0 && !reflect.DeepEqual(g.Tags, w.Tags)) {
			t.Fatalf("%s: record %d is %+v, want %+v", what, i, g, w)
		}
	}
}

// appendN appends batches of size records to stream through n and
// returns every record with the offset it got.
func appendN(t *testing.T, n *Node, stream string, from, batches, size int) []tiers.Record {
	t.Helper()
	var all []tiers.Record
	for b := range batches {
		recs := batch(from+b*size, size)
		res, err := n.AppendAs(context.Background(), stream, tiers.Producer{}, recs)
		if err != nil {
			t.Fatalf("append through %s: %v", n.NodeID(), err)
		}
		if res.Count != size || res.Last != res.First+uint64(size)-1 || res.Duplicate {
			t.Fatalf("append through %s: %+v", n.NodeID(), res)
		}
		for i := range recs {
			recs[i].Offset = res.First + uint64(i)
		}
		all = append(all, recs...)
	}
	return all
}

func filter(recs []tiers.Record, q tiers.Query) []tiers.Record {
	var out []tiers.Record
	for i := range recs {
		if q.Match(&recs[i]) {
			out = append(out, recs[i])
		}
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func TestAppendOnOneNodeReadOnAnother(t *testing.T) {
	w := newWorld(t)
	a := w.open("a", t.TempDir())
	b := w.open("b", t.TempDir())
	want := appendN(t, a, "s", 0, 4, 25)
	for i, r := range want {
		if r.Offset != uint64(i) {
			t.Fatalf("offset %d at %d: offsets are not dense", r.Offset, i)
		}
	}
	// Right after the acknowledgements, through the other node: the
	// journal objects, fetched by ranged GETs.
	got, where := readAll(t, b, "s", tiers.AllRecords())
	same(t, "all through b", got, want)
	for i, p := range where {
		if p != tiers.Warm {
			t.Fatalf("record %d through b came from %s, want warm (the journal)", i, p)
		}
	}
	got, where = readAll(t, a, "s", tiers.AllRecords())
	same(t, "all through a", got, want)
	if where[0] != tiers.Hot {
		t.Fatalf("a read its own fresh write from %s, want hot (its memory)", where[0])
	}
	queries := map[string]tiers.Query{}
	q := tiers.AllRecords()
	q.From, q.To = 17, 61
	queries["offsets"] = q
	q = tiers.AllRecords()
	q.Key, q.HasKey = "k1", true
	queries["key"] = q
	q = tiers.AllRecords()
	q.Tag = "even"
	queries["tag"] = q
	q = tiers.AllRecords()
	q.Since, q.Until = want[30].TS, want[40].TS
	queries["time"] = q
	q = tiers.AllRecords()
	q.From, q.Limit = 90, 3
	queries["limit"] = q
	for name, q := range queries {
		got, _ := readAll(t, b, "s", q)
		same(t, name+" through b", got, filter(want, q))
	}

	// An idempotent producer's retry through the other node is a duplicate
	// with the first attempt's offsets.
	p := tiers.Producer{ID: tiers.ProducerID{1}, Seq: 1}
	first, err := a.AppendAs(w.ctx, "s", p, batch(100, 5))
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.AppendAs(w.ctx, "s", p, batch(100, 5))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.First != first.First || again.Last != first.Last {
		t.Fatalf("retry through b answered %+v, want a duplicate of %+v", again, first)
	}

	// Bad input is refused as the engine refuses it, before anything.
	if _, err := a.AppendAs(w.ctx, "bad/name", tiers.Producer{}, batch(0, 1)); !errors.Is(err, tiers.ErrInvalidStreamName) {
		t.Fatalf("bad stream name: %v", err)
	}
	if _, err := a.AppendAs(w.ctx, "s", tiers.Producer{}, nil); !errors.Is(err, tiers.ErrInvalidRecord) {
		t.Fatalf("empty batch: %v", err)
	}
	big := batch(0, 1)
	big[0].Value = make([]byte, tiers.DefaultMaxRecordBytes+1)
	if _, err := a.AppendAs(w.ctx, "s", tiers.Producer{}, big); !errors.Is(err, tiers.ErrRecordTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
	for it, err := range b.Read(w.ctx, "nosuch", tiers.AllRecords()) {
		if !errors.Is(err, tiers.ErrStreamNotFound) {
			t.Fatalf("unknown stream: %+v, %v", it, err)
		}
	}
	if _, err := b.Segments(w.ctx, "nosuch"); !errors.Is(err, tiers.ErrStreamNotFound) {
		t.Fatalf("segments of an unknown stream: %v", err)
	}
}

func TestWaitForWokenByAnotherNode(t *testing.T) {
	w := newWorld(t)
	a := w.open("a", t.TempDir())
	b := w.open("b", t.TempDir())
	woke := make(chan error, 1)
	ctx, cancel := context.WithTimeout(w.ctx, 2*time.Minute) // a hang, not a timing goal
	defer cancel()
	go func() { woke <- b.WaitFor(ctx, "w", 0) }()
	time.Sleep(200 * time.Millisecond) // let the wait start: it must be woken, not find the record there
	appendN(t, a, "w", 0, 1, 3)
	if err := <-woke; err != nil {
		t.Fatalf("wait on b for a's append: %v", err)
	}
	got, _ := readAll(t, b, "w", tiers.AllRecords())
	if len(got) != 3 {
		t.Fatalf("after the wake b reads %d records, want 3", len(got))
	}
}

func TestListingsVerifyAndCompaction(t *testing.T) {
	w := newWorld(t)
	a := w.open("a", t.TempDir())
	b := w.open("b", t.TempDir())
	want := appendN(t, a, "s", 0, 5, 10)

	// Before compaction: one active pseudo-segment, in the journal.
	for _, n := range []*Node{a, b} {
		segs, err := n.Segments(w.ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) != 1 || !segs[0].Active || segs[0].Base != 0 || segs[0].Last != 49 || segs[0].Count != 50 ||
			segs[0].Placements != tiers.Of(tiers.Warm) || segs[0].MinTS != want[0].TS || segs[0].MaxTS != want[49].TS {
			t.Fatalf("segments through %s before compaction: %+v", n.NodeID(), segs)
		}
		checkStreams(t, n, 50, map[tiers.Placement]int{tiers.Warm: 1})
		checkVerify(t, n, "s", 5)
		checkVerify(t, n, "", 5)
	}

	// Seal compacts the journal into one cold segment.
	res, err := b.Seal(w.ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Sealed || !res.HasSegment || res.Segment.Base != 0 || res.Segment.Last != 49 || res.Segment.Placements != tiers.Of(tiers.Cold) {
		t.Fatalf("seal: %+v", res)
	}
	more := appendN(t, b, "s", 50, 2, 5)
	for _, n := range []*Node{a, b} {
		segs, err := n.Segments(w.ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) != 2 || segs[0].Active || segs[0].Placements != tiers.Of(tiers.Cold) || segs[0].Last != 49 || segs[0].Digest.IsZero() ||
			!segs[1].Active || segs[1].Base != 50 || segs[1].Last != 59 || segs[1].Placements != tiers.Of(tiers.Warm) {
			t.Fatalf("segments through %s after compaction: %+v", n.NodeID(), segs)
		}
		checkStreams(t, n, 60, map[tiers.Placement]int{tiers.Cold: 1, tiers.Warm: 1})
		checkVerify(t, n, "s", 1+2)
		got, where := readAll(t, n, "s", tiers.AllRecords())
		same(t, "after compaction through "+n.NodeID(), got, append(append([]tiers.Record{}, want...), more...))
		if where[0] != tiers.Cold {
			t.Fatalf("offset 0 through %s came from %s after compaction, want cold", n.NodeID(), where[0])
		}
	}
	// A copy of the segment's object under another day is claimed by
	// nothing, and holds nothing only it holds: orphan_cold.
	key := cold.ObjectKey(res.Segment.SegmentMeta)
	i := strings.Index(key, "date=")
	stray := key[:i] + "date=1999-01-01" + key[i+len("date=2006-01-02"):]
	if err := a.opts.Bucket.Put(w.ctx, stray, strings.NewReader("not parquet"), int64(len("not parquet"))); err != nil {
		t.Fatal(err)
	}
	// The Iceberg tables' metadata beside the segments is no orphan.
	meta := "_iceberg/tierd/s/metadata/00001-x.metadata.json"
	if err := a.opts.Bucket.Put(w.ctx, meta, strings.NewReader("{}"), 2); err != nil {
		t.Fatal(err)
	}
	rep, err := b.Verify(w.ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != "orphan_cold" || rep.Findings[0].Path != stray || rep.ColdObjects != 2 {
		t.Fatalf("verify with a stray object: %+v (%d objects)", rep.Findings, rep.ColdObjects)
	}
	if err := a.opts.Bucket.Delete(w.ctx, stray); err != nil {
		t.Fatal(err)
	}
	m, err := a.Offload(w.ctx, "s", 0, false)
	if err != nil || m.Last != 49 {
		t.Fatalf("offload of a cold segment: %+v, %v", m, err)
	}
	if _, err := a.Offload(w.ctx, "s", 50, false); !errors.Is(err, engine.ErrNotPersisted) {
		t.Fatalf("offload of journal offsets: %v, want engine.ErrNotPersisted", err)
	}
	ret, err := b.Retention(w.ctx, "s")
	if err != nil || ret.First != 0 || ret.Next != 60 || !ret.HasFirstTS || ret.FirstTS != want[0].TS {
		t.Fatalf("retention: %+v, %v", ret, err)
	}
	if h := a.WriteHealth(); h.Cause != "" {
		t.Fatalf("write health: %+v", h)
	}
	st := a.Status(w.ctx)
	if st.Streams != 1 || st.Writes != "ok" || st.WarmSegments != 2 || st.Mode != "cluster" || st.NodeID != "a" || st.Epoch != a.Epoch() {
		t.Fatalf("status: %+v", st)
	}
	cs, err := a.ClusterStatus(w.ctx)
	if err != nil || cs.Self != "a" || len(cs.Nodes) != 2 || cs.Nodes[0].NodeID != "a" || cs.Nodes[1].NodeID != "b" ||
		!cs.Nodes[0].Live || cs.Nodes[0].Epoch < 1 || cs.Nodes[0].State() != "live" {
		t.Fatalf("cluster status: %+v, %v", cs, err)
	}
	if err := b.Close(w.ctx); err != nil {
		t.Fatal(err)
	}
	if cs, err = a.ClusterStatus(w.ctx); err != nil || cs.Nodes[1].State() != "stopped" {
		t.Fatalf("cluster status after b left: %+v, %v", cs, err)
	}
}

// checkStreams checks n's listing of the one stream "s".
func checkStreams(t *testing.T, n *Node, next uint64, segsIn map[tiers.Placement]int) {
	t.Helper()
	infos, err := n.Streams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Name != "s" || infos[0].NextOffset != next || infos[0].Records != next || len(infos[0].Tiers) != len(segsIn) {
		t.Fatalf("streams through %s: %+v", n.NodeID(), infos)
	}
	for p, c := range segsIn {
		if infos[0].Tiers[p].Segments != c {
			t.Fatalf("streams through %s: %s holds %+v, want %d segments", n.NodeID(), p, infos[0].Tiers[p], c)
		}
	}
	ts, err := n.Tiers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range segsIn {
		if ts[p].Segments != c || ts[p].Streams != 1 {
			t.Fatalf("tiers through %s: %s is %+v", n.NodeID(), p, ts[p])
		}
	}
}

// checkVerify runs verify through n and wants it clean, with checked
// segments and journal ranges.
func checkVerify(t *testing.T, n *Node, stream string, checked int) {
	t.Helper()
	rep, err := n.Verify(context.Background(), stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Fatalf("verify %q through %s: %+v", stream, n.NodeID(), rep.Findings)
	}
	if len(rep.Streams) != 1 || rep.Streams[0].Segments != checked {
		t.Fatalf("verify %q through %s checked %+v, want %d segments and ranges", stream, n.NodeID(), rep.Streams, checked)
	}
}

func TestVerifyFindsADamagedJournalObject(t *testing.T) {
	w := newWorld(t)
	a := w.open("a", t.TempDir())
	appendN(t, a, "s", 0, 1, 10)
	var key string
	var off, size int64
	if err := a.pool.QueryRow(w.ctx, `SELECT object_key, byte_off, byte_len FROM journal_ranges WHERE stream = 's'`).Scan(&key, &off, &size); err != nil {
		t.Fatal(err)
	}
	// Flip one byte inside the block, in the store.
	rc, err := a.opts.Bucket.Get(w.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	body[off+size/2] ^= 0xff
	if err := a.opts.Bucket.Put(w.ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Verify(w.ctx, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != "digest" || rep.Findings[0].Path != key {
		t.Fatalf("verify of a damaged block: %+v", rep.Findings)
	}
}

func TestRestartWithDataDirDeletedLosesNothing(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	a := w.open("a", dir)
	epoch := a.Epoch()
	want := appendN(t, a, "s", 0, 3, 7)
	if got, _ := readAll(t, a, "s", tiers.AllRecords()); len(got) != len(want) {
		t.Fatalf("%d records before the restart", len(got))
	}
	if err := a.Close(w.ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	a = w.open("a", dir)
	if a.Epoch() <= epoch {
		t.Fatalf("epoch %d after a restart, was %d", a.Epoch(), epoch)
	}
	got, _ := readAll(t, a, "s", tiers.AllRecords())
	same(t, "after the restart", got, want)
	more := appendN(t, a, "s", 21, 1, 4)
	if more[0].Offset != 21 {
		t.Fatalf("the first append after the restart got offset %d, want 21", more[0].Offset)
	}
	checkVerify(t, a, "s", 4)
	q := tiers.AllRecords()
	q.To = math.MaxUint64
	got, _ = readAll(t, a, "s", q)
	same(t, "after the restart and an append", got, append(want, more...))
}

func TestRetentionDeletesParquetSegments(t *testing.T) {
	w := newWorld(t)
	w.cfg.Policies = []policy.Policy{{Name: "short", Streams: []string{"*"}, WarmMaxAge: time.Millisecond, ColdMaxAge: 50 * time.Millisecond}}
	w.cfg.Cold.DeleteDelay = 50 * time.Millisecond
	a := w.open("a", t.TempDir())
	b := w.open("b", t.TempDir())
	appendN(t, a, "s", 0, 2, 10)
	res, err := a.Seal(w.ctx, "s")
	if err != nil || !res.Sealed {
		t.Fatalf("seal: %+v, %v", res, err)
	}
	key := cold.ObjectKey(res.Segment.SegmentMeta)
	more := appendN(t, a, "s", 20, 1, 5)
	time.Sleep(100 * time.Millisecond) // past cold.max_age
	mig, err := migrator.New(b.Executor(), migrator.Options{Config: w.cfg})
	if err != nil {
		t.Fatal(err)
	}
	// Tombstone, then, past delete_delay, delete: each run does what is
	// due, and a second node finds done what the first did.
	deadline := time.Now().Add(time.Minute) // a hang, not a timing goal
	for {
		if _, err := mig.Run(w.ctx, "", false); err != nil {
			t.Fatal(err)
		}
		if _, err := a.cat.Segment(w.ctx, "s", 0); errors.Is(err, tiers.ErrSegmentNotFound) {
			break
		}
		if time.Now().After(deadline) {
			segs, _ := a.Segments(w.ctx, "s")
			t.Fatalf("retention did not delete the segment: %+v", segs)
		}
		time.Sleep(60 * time.Millisecond)
	}
	if _, err := a.opts.Bucket.Stat(w.ctx, key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("the deleted segment's object %s: %v", key, err)
	}
	for it, err := range a.Read(w.ctx, "s", tiers.AllRecords()) {
		if !errors.Is(err, tiers.ErrExpired) {
			t.Fatalf("a read from 0 after retention: %+v, %v, want tiers.ErrExpired", it, err)
		}
	}
	q := tiers.AllRecords()
	q.FromRetained = true
	got, _ := readAll(t, b, "s", q)
	same(t, "the retained records", got, more)
	ret, err := b.Retention(w.ctx, "s")
	if err != nil || ret.First != 20 || ret.Next != 25 {
		t.Fatalf("retention: %+v, %v", ret, err)
	}
	segs, err := b.Segments(w.ctx, "s")
	if err != nil || len(segs) != 1 || segs[0].Base != 20 || !segs[0].Active {
		t.Fatalf("segments after retention: %+v, %v", segs, err)
	}
	checkVerify(t, b, "s", 1)
}

func TestFencedByARestartOfItsNodeID(t *testing.T) {
	w := newWorld(t)
	old := w.open("a", t.TempDir())
	appendN(t, old, "s", 0, 1, 3)
	cur := w.open("a", t.TempDir()) // the same node id started again: a newer epoch
	if cur.Epoch() <= old.Epoch() {
		t.Fatalf("epochs %d then %d", old.Epoch(), cur.Epoch())
	}
	if _, err := old.AppendAs(w.ctx, "s", tiers.Producer{}, batch(3, 2)); err == nil {
		t.Fatal("the fenced process's append was acknowledged")
	}
	if h := old.WriteHealth(); h.Cause != CauseFenced {
		t.Fatalf("the fenced process's write health: %+v", h)
	}
	reg := prometheus.NewRegistry()
	old.bindMetrics(reg)
	if got := writesRefused(t, reg); !reflect.DeepEqual(got, map[string]float64{CauseFenced: 1, tiers.CauseStorage: 0}) {
		t.Fatalf("tierd_writes_refused of the fenced process: %v", got)
	}
	more := appendN(t, cur, "s", 3, 1, 2)
	if more[0].Offset != 3 {
		t.Fatalf("the new process's append got offset %d, want 3: nothing of the refused batch may hold an offset", more[0].Offset)
	}
	if h := cur.WriteHealth(); h.Cause != "" {
		t.Fatalf("the new process's write health: %+v", h)
	}
}

func TestWriteHealthFollowsPostgreSQL(t *testing.T) {
	w := newWorld(t)
	pg := testenv.StartDedicatedPostgres(t)
	w.pg = pg
	w.cfg.Cluster.Catalog = policy.DSN(pg.DSN)
	a := w.open("a", t.TempDir())
	appendN(t, a, "s", 0, 1, 3)
	pg.Stop()
	deadline := time.Now().Add(time.Minute) // a hang, not a timing goal
	for a.WriteHealth().Cause != tiers.CauseStorage {
		if time.Now().After(deadline) {
			t.Fatalf("write health with PostgreSQL stopped: %+v", a.WriteHealth())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	_, err := a.AppendAs(ctx, "s", tiers.Producer{}, batch(3, 1))
	cancel()
	if !errors.Is(err, tiers.ErrStorageUnavailable) {
		t.Fatalf("an append with PostgreSQL stopped: %v, want tiers.ErrStorageUnavailable", err)
	}
	pg.Start()
	for a.WriteHealth().Cause != "" {
		if time.Now().After(deadline.Add(time.Minute)) {
			t.Fatalf("write health with PostgreSQL back: %+v", a.WriteHealth())
		}
		time.Sleep(100 * time.Millisecond)
	}
	more := appendN(t, a, "s", 3, 1, 2)
	if more[0].Offset != 3 {
		t.Fatalf("the append after the outage got offset %d, want 3", more[0].Offset)
	}
	checkVerify(t, a, "s", 2)
}

func TestWriteHealthFollowsTheStore(t *testing.T) {
	w := newWorld(t)
	w.mc = testenv.StartDedicatedMinIO(t)
	a := w.open("a", t.TempDir())
	b := w.open("b", t.TempDir())
	want := appendN(t, a, "s", 0, 1, 3)
	w.mc.Stop()
	ctx, cancel := context.WithTimeout(w.ctx, time.Minute)
	_, err := a.AppendAs(ctx, "s", tiers.Producer{}, batch(3, 1))
	cancel()
	if !errors.Is(err, tiers.ErrStorageUnavailable) {
		t.Fatalf("an append with the store stopped: %v, want tiers.ErrStorageUnavailable", err)
	}
	if h := a.WriteHealth(); h.Cause != tiers.CauseStorage {
		t.Fatalf("write health with the store stopped: %+v", h)
	}
	w.mc.Restart()
	deadline := time.Now().Add(time.Minute) // a hang, not a timing goal
	for a.WriteHealth().Cause != "" {       // no append needed to see it back
		if time.Now().After(deadline) {
			t.Fatalf("write health with the store back: %+v", a.WriteHealth())
		}
		time.Sleep(200 * time.Millisecond)
	}
	more := appendN(t, a, "s", 3, 1, 2)
	if more[0].Offset != 3 {
		t.Fatalf("the append after the outage got offset %d, want 3", more[0].Offset)
	}
	got, _ := readAll(t, b, "s", tiers.AllRecords())
	same(t, "after the outage", got, append(want, more...))
	checkVerify(t, b, "s", 2)
}
