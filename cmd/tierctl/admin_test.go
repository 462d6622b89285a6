package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/hot"
	"github.com/tierd/tierd/internal/boot"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/server"
	"github.com/tierd/tierd/tiers"
)

// adminServer is a real engine with a cold tier on a file store, a
// migrator (run on demand only) and the real API over httptest.
type adminServer struct {
	url     string
	eng     *engine.Engine
	dataDir string
	coldDir string
}

// testConfig has tiny ages for streams "s*" (policy fast: out of memory
// at 1ms, uploaded at 5ms) and the default policy (10m in memory, warm
// forever) for the others.
func testConfig(dataDir, coldDir string) policy.Config {
	cfg := policy.Default()
	cfg.DataDir = dataDir
	cfg.Cold.Store = (&url.URL{Scheme: "file", Path: coldDir}).String()
	cfg.Policies = []policy.Policy{{Name: "fast", Streams: []string{"s*"}, HotMaxAge: time.Millisecond, WarmMaxAge: 5 * time.Millisecond}}
	return cfg
}

// openEngine opens an engine on cfg as tierd does (same cold store
// opening), with 1 KiB segments sealed by size or Flush.
func openEngine(t *testing.T, cfg policy.Config) *engine.Engine {
	t.Helper()
	ctx := context.Background()
	ct, err := boot.OpenCold(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("OpenCold: %v", err)
	}
	eng, err := engine.Open(ctx, engine.Options{DataDir: cfg.DataDir, SegmentMaxBytes: 1024, SegmentMaxAge: time.Hour, HotResidency: time.Hour, Cold: ct,
		// As tierd: each stream's residency is its policy's hot.max_age,
		// which the hot tier's own loop enforces, ticking often enough.
		StreamPolicy: func(stream string) hot.StreamPolicy {
			return hot.StreamPolicy{Residency: cfg.PolicyFor(stream).HotMaxAge}
		},
		HotTick: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	return eng
}

func newAdminServer(t *testing.T, mopts func(*migrator.Options)) *adminServer {
	t.Helper()
	dir := t.TempDir()
	s := &adminServer{dataDir: filepath.Join(dir, "data"), coldDir: filepath.Join(dir, "cold")}
	cfg := testConfig(s.dataDir, s.coldDir)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	s.eng = openEngine(t, cfg)
	opts := migrator.Options{Config: cfg}
	if mopts != nil {
		mopts(&opts)
	}
	m, err := migrator.New(s.eng, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(s.eng, server.Options{Migrator: m}))
	t.Cleanup(func() {
		srv.Close()
		s.eng.Close(context.Background())
	})
	s.url = srv.URL
	return s
}

// populate appends n records of about 150 bytes to each stream in batches
// of 3 (several 1 KiB segments), persists them all warm, and appends one
// more record to each, which stays in the active segment. It returns each
// stream's sealed segments' bases.
func (s *adminServer) populate(t *testing.T, n int, streams ...string) map[string][]uint64 {
	t.Helper()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, `{"key":"k%d","value":{"i":%d,"pad":"%0120d"}}`+"\n", i%3, i, i)
	}
	for _, st := range streams {
		// A batch goes into one segment: small batches make several.
		mustRun(t, s.url, in.String(), "append", st, "--batch", "3")
	}
	// Flush seals every stream's active segment.
	if err := s.eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	bases := map[string][]uint64{}
	for _, st := range streams {
		mustRun(t, s.url, `{"value":"active"}`, "append", st)
		for _, seg := range s.segments(t, st) {
			if !seg.Active {
				bases[st] = append(bases[st], seg.Base)
			}
		}
		if len(bases[st]) < 3 {
			t.Fatalf("%s: only %d sealed segments; the test wants several", st, len(bases[st]))
		}
	}
	return bases
}

// pastFastAges waits until the streams' sealed segments are older than the
// fast policy's ages and its hot.max_age (1ms) has taken them out of
// memory: the hot tier's own loop does that, with no migrate run.
func (s *adminServer) pastFastAges(t *testing.T, streams ...string) {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
	deadline := time.Now().Add(time.Minute) // a pass takes a tick (20ms)
	for _, st := range streams {
		for {
			segs, err := s.eng.Segments(context.Background(), st)
			if err != nil {
				t.Fatal(err)
			}
			resident := 0
			for _, seg := range segs {
				if !seg.Active && seg.Placements.Has(tiers.Hot) {
					resident++
				}
			}
			if resident == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d sealed segments still in memory a minute past hot.max_age", st, resident)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (s *adminServer) segments(t *testing.T, stream string) []client.Segment {
	t.Helper()
	var segs []client.Segment
	decodeJSON(t, mustRun(t, s.url, "", "segments", stream, "-o", "json"), &segs)
	return segs
}

func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, out)
	}
}

// readAll returns stream's records as the read verb prints them, without
// the tier that served each.
func readAll(t *testing.T, addr, stream string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(mustRun(t, addr, "", "read", stream, "--limit", "100000")), "\n") {
		var m map[string]any
		decodeJSON(t, l, &m)
		delete(m, "tier")
		b, _ := json.Marshal(m)
		out = append(out, string(b))
	}
	return out
}

func TestExplain(t *testing.T) {
	s := newAdminServer(t, nil)
	bases := s.populate(t, 30, "s1", "other")["s1"]
	s.pastFastAges(t, "s1")

	var ex client.Explanation
	decodeJSON(t, mustRun(t, s.url, "", "explain", "s1", "-o", "json"), &ex)
	if ex.Stream != "s1" || ex.Policy != (client.Policy{Name: "fast", HotMaxAge: "1ms", WarmMaxAge: "5ms"}) || ex.Now.IsZero() {
		t.Fatalf("explain s1: stream %q, policy %+v, now %v", ex.Stream, ex.Policy, ex.Now)
	}
	if len(ex.Segments) != len(bases)+1 {
		t.Fatalf("explain s1: %d segments, want %d sealed + the active one", len(ex.Segments), len(bases))
	}
	for i, seg := range ex.Segments[:len(bases)] {
		if seg.Base != bases[i] || seg.Age == "" || seg.Next == nil {
			t.Fatalf("segment %d: %+v", i, seg)
		}
		// Out of memory at hot.max_age by the hot tier; the upload is due.
		if n := seg.Next; n.Action != "upload" || n.In != "0s" || !strings.Contains(n.Reason, "warm.max_age") || n.Due.After(ex.Now) ||
			strings.Join(seg.Tiers, ",") != "warm" {
			t.Errorf("segment %d next: %+v", seg.Base, *n)
		}
	}
	if act := ex.Segments[len(bases)]; !act.Active || act.Next != nil || !strings.Contains(act.Note, "active") {
		t.Errorf("active segment: %+v", act)
	}

	// The default policy keeps a segment in memory for 10m: next is
	// evict-hot, the hot tier's rule forecast, due in about that long.
	var other client.Explanation
	decodeJSON(t, mustRun(t, s.url, "", "explain", "other", "-o", "json"), &other)
	if other.Policy.Name != "default" || other.Policy.WarmMaxAge != "" {
		t.Fatalf("explain other: policy %+v", other.Policy)
	}
	if n := other.Segments[0].Next; n == nil || n.Action != "evict-hot" || n.In == "0s" || !n.Due.After(other.Now) || n.Due.Sub(other.Now) > 10*time.Minute ||
		!strings.Contains(n.Reason, "hot.max_age 10m") || !strings.Contains(n.Reason, "hot.max_bytes") {
		t.Errorf("explain other: next %+v", n)
	}

	out := mustRun(t, s.url, "", "explain", "s1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "stream s1: policy fast (hot 1ms, warm 5ms, cold forever)" {
		t.Errorf("explain table, first line %q", lines[0])
	}
	if got := strings.Join(strings.Fields(lines[2]), " "); got != "BASE LAST TIERS AGE NEXT DUE_IN REASON LAST_ERROR" {
		t.Errorf("explain table header %q", got)
	}
	rows := lines[3:]
	if len(rows) != len(bases)+1 {
		t.Fatalf("explain table has %d rows, want %d:\n%s", len(rows), len(bases)+1, out)
	}
	for i, r := range rows[:len(bases)] {
		f := strings.Fields(r)
		if f[0] != fmt.Sprint(bases[i]) || f[2] != "warm" || f[4] != "upload" || f[5] != "now" || !strings.Contains(r, "warm.max_age") || f[len(f)-1] != "-" {
			t.Errorf("explain row %q", r)
		}
	}
	if r := rows[len(bases)]; !strings.Contains(r, "active:") {
		t.Errorf("active row %q", r)
	}

	if r := tierctl(t, s.url, "", "explain", "nope"); r.code != 1 || !strings.Contains(r.stderr, "error: stream_not_found: ") {
		t.Errorf("explain nope: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestMigrateDryRunThenRun(t *testing.T) {
	s := newAdminServer(t, nil)
	bases := s.populate(t, 30, "s1", "other")["s1"]
	s.pastFastAges(t, "s1")
	records := readAll(t, s.url, "s1")
	before := mustRun(t, s.url, "", "segments", "s1", "-o", "json")

	// A dry run plans, for each sealed segment, the upload (the hot tier
	// took it out of memory already), and changes nothing.
	var plan client.MigrateReport
	decodeJSON(t, mustRun(t, s.url, "", "migrate", "--dry-run", "--stream", "s1", "-o", "json"), &plan)
	var want []string
	for _, b := range bases {
		want = append(want, fmt.Sprintf("upload s1@%d", b))
	}
	if got := actions(plan); !plan.DryRun || plan.Failed != 0 || !slices.Equal(got, want) {
		t.Fatalf("dry run: dry_run %v, failed %d, actions %v, want %v", plan.DryRun, plan.Failed, got, want)
	}
	for _, act := range plan.Actions {
		if act.Reason == "" || act.Policy != "fast" || act.Bytes <= 0 || act.Error != "" {
			t.Errorf("planned action %+v", act)
		}
	}
	out := mustRun(t, s.url, "", "migrate", "--dry-run")
	if !strings.HasPrefix(out, "ACTION") || strings.Contains(out, "ERROR") || !strings.Contains(out, "\n"+fmt.Sprint(len(want))+" actions planned (dry run: nothing changed)\n") {
		t.Errorf("dry run table:\n%s", out)
	}
	if after := mustRun(t, s.url, "", "segments", "s1", "-o", "json"); after != before {
		t.Fatalf("a dry run changed the segments:\nbefore %s\nafter %s", before, after)
	}

	// The run: uploaded (the warm copy stays until the next run drops
	// it).
	out = mustRun(t, s.url, "", "migrate", "--stream", "s1")
	if !strings.Contains(out, fmt.Sprintf("\n%d actions, 0 failed, 0 skipped (backing off)\n", len(want))) || !strings.Contains(out, "ERROR") {
		t.Fatalf("run table:\n%s", out)
	}
	for _, seg := range s.segments(t, "s1") {
		if !seg.Active && strings.Join(seg.Tiers, ",") != "warm,cold" {
			t.Errorf("after the first run, segment %d is %v, want warm,cold", seg.Base, seg.Tiers)
		}
	}
	var rep client.MigrateReport
	decodeJSON(t, mustRun(t, s.url, "", "migrate", "-o", "json"), &rep)
	want = want[:0]
	for _, b := range bases {
		want = append(want, fmt.Sprintf("drop-warm s1@%d", b))
	}
	// "other" is under the default policy: nothing is due for it.
	if got := actions(rep); rep.DryRun || rep.Failed != 0 || !slices.Equal(got, want) {
		t.Fatalf("second run: %+v, actions %v, want %v", rep, got, want)
	}
	for _, seg := range s.segments(t, "s1") {
		if !seg.Active && strings.Join(seg.Tiers, ",") != "cold" {
			t.Errorf("after the second run, segment %d is %v, want cold", seg.Base, seg.Tiers)
		}
	}
	if got := readAll(t, s.url, "s1"); !slices.Equal(got, records) {
		t.Errorf("records read from cold differ from those written")
	}
	if out := mustRun(t, s.url, "", "migrate"); out != "0 actions, 0 failed, 0 skipped (backing off)\n" {
		t.Errorf("a run with nothing to do printed %q", out)
	}
	if out := mustRun(t, s.url, "", "verify"); !strings.Contains(out, "OK: ") {
		t.Errorf("verify after migration:\n%s", out)
	}
}

func actions(rep client.MigrateReport) []string {
	var out []string
	for _, a := range rep.Actions {
		out = append(out, fmt.Sprintf("%s %s@%d", a.Action, a.Stream, a.Base))
	}
	return out
}

// TestMigrateFailure: with the cold store gone every upload fails: the run
// says so and exits 1, explain shows each segment's error, and the next
// run skips the segments while they back off.
func TestMigrateFailure(t *testing.T) {
	s := newAdminServer(t, func(o *migrator.Options) { o.MinBackoff = time.Hour })
	bases := s.populate(t, 30, "s1")["s1"]
	s.pastFastAges(t, "s1")
	if err := os.RemoveAll(s.coldDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.coldDir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := len(bases)
	r := tierctl(t, s.url, "", "migrate")
	if r.code != 1 {
		t.Fatalf("migrate with the cold store gone: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("\n%d actions, %d failed, 0 skipped (backing off)\n", n, n)) ||
		!strings.Contains(r.stderr, fmt.Sprintf("error: %d of %d actions failed", n, n)) {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "upload ") && strings.HasSuffix(strings.TrimSpace(l), " -") {
			t.Errorf("failed upload without its error: %q", l)
		}
	}

	var ex client.Explanation
	decodeJSON(t, mustRun(t, s.url, "", "explain", "s1", "-o", "json"), &ex)
	for _, seg := range ex.Segments[:n] {
		if seg.LastError == nil || seg.LastError.Error == "" || seg.LastError.Attempts != 1 || seg.LastError.At.IsZero() || seg.LastError.RetryAt.IsZero() {
			t.Errorf("segment %d: last error %+v", seg.Base, seg.LastError)
		}
		if seg.Next == nil || seg.Next.Action != "upload" {
			t.Errorf("segment %d: next %+v", seg.Base, seg.Next)
		}
	}
	out := mustRun(t, s.url, "", "explain", "s1")
	for _, l := range strings.Split(out, "\n")[3 : 3+n] {
		// The last column holds single-spaced text after a column gap.
		cell := l[strings.LastIndex(l, "  ")+2:]
		if cell == "-" || cell == "" || len([]rune(cell)) > lastErrorWidth {
			t.Errorf("row without its (shortened) last error: %q", l)
		}
	}

	var rep client.MigrateReport
	decodeJSON(t, mustRun(t, s.url, "", "migrate", "-o", "json"), &rep)
	if len(rep.Actions) != 0 || rep.Skipped != n || rep.Failed != 0 {
		t.Errorf("run while backing off: %+v", rep)
	}
}

func TestVerify(t *testing.T) {
	s := newAdminServer(t, nil)
	otherBases := s.populate(t, 30, "s1", "other")["other"]
	s.pastFastAges(t, "s1")
	mustRun(t, s.url, "", "migrate")
	mustRun(t, s.url, "", "migrate") // s1 now cold only, other warm and hot (and its active segment in memory)

	var rep client.VerifyReport
	decodeJSON(t, mustRun(t, s.url, "", "verify", "-o", "json"), &rep)
	if !rep.OK || len(rep.Findings) != 0 || len(rep.Streams) != 2 || rep.ColdObjects == 0 || rep.WarmFiles == 0 {
		t.Fatalf("verify a clean archive: %+v", rep)
	}
	for _, sc := range rep.Streams {
		// Next is the persisted end: the active segment is not checked.
		if sc.First != 0 || sc.Next != 30 || sc.Segments < 3 || sc.Placements != sc.Segments {
			t.Errorf("stream check %+v", sc)
		}
	}
	out := mustRun(t, s.url, "", "verify")
	if !strings.HasPrefix(out, "STREAM") || !strings.Contains(out, "\nOK: 2 streams, ") {
		t.Errorf("verify table:\n%s", out)
	}

	// A stray object in the cold store is an orphan.
	stray := filepath.Join(s.coldDir, "stream=s1", "date=2026-01-01", "stray.bin")
	if err := os.MkdirAll(filepath.Dir(stray), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := tierctl(t, s.url, "", "verify")
	if r.code != 1 || !strings.Contains(r.stdout, "orphan_cold") || !strings.Contains(r.stdout, "stream=s1/date=2026-01-01/stray.bin") ||
		!strings.Contains(r.stdout, "\nFAILED: 1 problem (1 orphan_cold) in 2 streams, ") || !strings.Contains(r.stderr, "error: verify found 1 problem") {
		t.Fatalf("verify with a stray object: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// --stream other sees none of s1's objects.
	if r := tierctl(t, s.url, "", "verify", "--stream", "other"); r.code != 0 {
		t.Errorf("verify --stream other: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.Remove(stray); err != nil {
		t.Fatal(err)
	}

	// A damaged warm file fails its digest check.
	warmFile := filepath.Join(s.dataDir, "warm", "other", fmt.Sprintf("%020d.seg", otherBases[1]))
	flipByte(t, warmFile)
	r = tierctl(t, s.url, "", "verify", "-o", "json")
	rep = client.VerifyReport{}
	decodeJSON(t, r.stdout, &rep)
	if r.code != 1 || rep.OK || len(rep.Findings) != 1 {
		t.Fatalf("verify with a damaged warm file: exit %d, %+v", r.code, rep)
	}
	if f := rep.Findings[0]; f.Kind != api.FindingDigest || f.Stream != "other" || f.Base == nil || *f.Base != otherBases[1] || f.Tier != "warm" || f.Path != warmFile {
		t.Errorf("finding %+v", f)
	}

}

func TestAdminWithoutMigrator(t *testing.T) {
	s := newServer(t) // no migrator
	mustRun(t, s.url, `{"value":1}`, "append", "a")
	for _, args := range [][]string{{"explain", "a"}, {"migrate"}, {"migrate", "--dry-run"}} {
		if r := tierctl(t, s.url, "", args...); r.code != 1 || !strings.Contains(r.stderr, "error: migrator_disabled: ") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if r := tierctl(t, s.url, "", "verify"); r.code != 0 {
		t.Errorf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestAdminUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"explain"}, "explain wants one argument, STREAM"},
		{[]string{"migrate", "x"}, "takes no arguments"},
		{[]string{"verify", "--stream"}, "flag needs an argument"},
		{[]string{"catalog", "rebuild"}, "needs --config FILE"},
	} {
		if r := tierctl(t, "http://127.0.0.1:1", "", c.args...); r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q", c.args, r.code, r.stderr)
		}
	}
	for _, verb := range []string{"explain", "migrate", "verify", "catalog rebuild"} {
		r := tierctl(t, "", "", append(strings.Fields(verb), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "tierctl "+verb) {
			t.Errorf("%s --help: exit %d\n%s", verb, r.code, r.stdout)
		}
	}
}

// segmentState is what a rebuilt catalog must reproduce of a segment.
type segmentState struct {
	Base, Last, Count uint64
	Digest            string
	Tiers             string
}

// snapshot opens an engine on cfg and returns every stream's segments and
// records.
func snapshot(t *testing.T, cfg policy.Config, streams []string) (map[string][]segmentState, map[string][]tiers.Record) {
	t.Helper()
	ctx := context.Background()
	eng := openEngine(t, cfg)
	defer eng.Close(ctx)
	segs, recs := map[string][]segmentState{}, map[string][]tiers.Record{}
	for _, st := range streams {
		infos, err := eng.Segments(ctx, st)
		if err != nil {
			t.Fatalf("segments of %s: %v", st, err)
		}
		for _, si := range infos {
			segs[st] = append(segs[st], segmentState{si.Base, si.Last, si.Count, si.Digest.String(), strings.Join(si.Placements.Strings(), ",")})
		}
		for it, err := range eng.Read(ctx, st, tiers.AllRecords()) {
			if err != nil {
				t.Fatalf("read %s: %v", st, err)
			}
			recs[st] = append(recs[st], it.Record)
		}
	}
	return segs, recs
}

func TestCatalogRebuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dataDir, coldDir := filepath.Join(dir, "data"), filepath.Join(dir, "cold")
	config := filepath.Join(dir, "tierd.yaml")
	yaml := fmt.Sprintf("data_dir: %s\ncold: {store: %q}\n", dataDir, (&url.URL{Scheme: "file", Path: coldDir}).String())
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(config)
	if err != nil {
		t.Fatal(err)
	}

	// Two streams: segments warm only, warm and cold, and cold only.
	eng := openEngine(t, cfg)
	streams := []string{"alpha", "beta"}
	for si, st := range streams {
		for i := range 40 {
			rec := tiers.Record{TS: int64(1_800_000_000_000_000_000 + i), Key: fmt.Sprintf("k%d", i%4), Tags: []string{"t"}, Value: fmt.Appendf(nil, `{"s":%d,"i":%d,"pad":"%0100d"}`, si, i, i)}
			if _, err := eng.Append(ctx, st, []tiers.Record{rec}); err != nil {
				t.Fatal(err)
			}
		}
		if err := eng.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		infos, err := eng.Segments(ctx, st)
		if err != nil || len(infos) < 4 {
			t.Fatalf("segments of %s: %d, %v", st, len(infos), err)
		}
		if _, err := eng.Offload(ctx, st, infos[0].Base, false); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Offload(ctx, st, infos[1].Base, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wantSegs, wantRecs := snapshot(t, cfg, streams)
	if !strings.Contains(fmt.Sprint(wantSegs), "warm,cold") || !strings.Contains(fmt.Sprint(wantSegs), " cold}") {
		t.Fatalf("the test wants warm, cold and warm+cold segments: %v", wantSegs)
	}

	catalogPath := filepath.Join(dataDir, "catalog.db")
	if err := os.Remove(catalogPath); err != nil {
		t.Fatal(err)
	}
	r := tierctl(t, "http://127.0.0.1:1", "", "catalog", "rebuild", "--config", config, "-o", "json")
	if r.code != 0 {
		t.Fatalf("catalog rebuild: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("stderr is not a terminal, yet: %q", r.stderr)
	}
	var rep rebuildReport
	decodeJSON(t, r.stdout, &rep)
	nSegs := len(wantSegs["alpha"]) + len(wantSegs["beta"])
	if rep.Catalog != catalogPath || rep.Streams != 2 || rep.Segments != nSegs || rep.WarmFiles != nSegs-2 || rep.ColdObjects != 4 ||
		len(rep.Conflicts) != 0 || len(rep.Unreadable) != 0 {
		t.Fatalf("rebuild report %+v (want %d segments)", rep, nSegs)
	}
	gotSegs, gotRecs := snapshot(t, cfg, streams)
	for _, st := range streams {
		if !slices.Equal(gotSegs[st], wantSegs[st]) {
			t.Errorf("%s segments after rebuild:\n got %v\nwant %v", st, gotSegs[st], wantSegs[st])
		}
		if len(gotRecs[st]) != 40 || fmt.Sprint(gotRecs[st]) != fmt.Sprint(wantRecs[st]) {
			t.Errorf("%s records after rebuild differ (%d records)", st, len(gotRecs[st]))
		}
	}

	// Over an existing catalog: refused, saying what to do.
	r = tierctl(t, "http://127.0.0.1:1", "", "catalog", "rebuild", "--config", config)
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") || !strings.Contains(r.stderr, catalogPath) || !strings.Contains(r.stderr, "stop tierd") {
		t.Errorf("rebuild over a catalog: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The table, with a stray object reported as unreadable; --data-dir
	// overrides the file's data_dir.
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(dataDir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(moved, "catalog.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(coldDir, "stray.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = tierctl(t, "http://127.0.0.1:1", "", "catalog", "rebuild", "--config", config, "--data-dir", moved)
	want := []string{
		fmt.Sprintf("rebuilt %s: 2 streams, %d segments\n", filepath.Join(moved, "catalog.db"), nSegs),
		fmt.Sprintf("read %d warm files and 5 cold objects\n", nSegs-2),
		"1 unreadable file or object, not catalogued:\n  cold stray.txt: not a segment object\n",
	}
	for _, w := range want {
		if r.code != 0 || !strings.Contains(r.stdout, w) {
			t.Errorf("rebuild table: exit %d, want %q in\n%s%s", r.code, w, r.stdout, r.stderr)
		}
	}

	// A data_dir that does not exist gets no catalog.
	r = tierctl(t, "http://127.0.0.1:1", "", "catalog", "rebuild", "--config", config, "--data-dir", filepath.Join(dir, "typo"))
	if r.code != 1 || !strings.Contains(r.stderr, "no such file or directory") {
		t.Errorf("rebuild of a missing data_dir: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "typo")); err == nil {
		t.Errorf("rebuild created the missing data_dir")
	}
}

// flipByte damages the byte in the middle of file in place (the engine
// may have it mapped: a rewrite would truncate it under the mapping).
func flipByte(t *testing.T, file string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

func TestDueIn(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		due  time.Time
		in   string
		want string
	}{
		{now.Add(-time.Hour), "0s", "now"},
		{now, "0s", "now"},
		{now.Add(400 * time.Millisecond), "0s", "1s"}, // not due yet: not "now"
		{now.Add(90*time.Second + time.Millisecond), "1m30s", "1m31s"},
		{now.Add(10 * time.Minute), "10m", "10m"},
		{time.Time{}, "5m", "5m"},
	} {
		if got := dueIn(&client.NextAction{Due: c.due, In: c.in}, now); got != c.want {
			t.Errorf("dueIn(due %v, in %q) = %q, want %q", c.due, c.in, got, c.want)
		}
	}
	if got := shorten("cold: object store\tunavailable:\n upload", 20); got != "cold: object store …" {
		t.Errorf("shorten = %q", got)
	}
}
