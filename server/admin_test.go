package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/internal/failpoint"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
)

// adminClock is the ingest and migrator clock of the admin tests.
type adminClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *adminClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *adminClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

var adminT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const adminForever = 100 * 365 * 24 * time.Hour

// adminEnv is a server over an engine with a file cold store, a fake
// clock, and (optionally) a migrator with policy "test": hot 1h, warm
// 24h, cold 7d, delete delay 1h.
type adminEnv struct {
	*testEnv
	clk      *adminClock
	cfg      policy.Config
	storeDir string
}

func newAdminEnv(t *testing.T, withMigrator bool) *adminEnv {
	t.Helper()
	clk := &adminClock{now: adminT0}
	storeDir := filepath.Join(t.TempDir(), "cold")
	storeURL := (&url.URL{Scheme: "file", Path: storeDir}).String()
	b, err := objstore.Open(context.Background(), storeURL, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := cold.New(cold.Options{Bucket: b, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	cfg := policy.Default()
	cfg.Cold.Store = storeURL
	cfg.Cold.DeleteDelay = time.Hour
	cfg.Policies = []policy.Policy{{Name: "test", Streams: []string{"*"}, HotMaxAge: time.Hour, WarmMaxAge: 24 * time.Hour, ColdMaxAge: 7 * 24 * time.Hour}}
	eng, err := engine.Open(context.Background(), engine.Options{
		DataDir: dataDir, Cold: ct, Now: clk.Now, Config: &cfg,
		// The hot tier's residency is the policy's hot.max_age, as tierd
		// sets it: the hot tier alone takes segments out of memory.
		SegmentMaxBytes: 4 << 10, SegmentMaxAge: adminForever, HotResidency: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	sopts := Options{Now: clk.Now}
	if withMigrator {
		if sopts.Migrator, err = migrator.New(eng, migrator.Options{Config: cfg, Now: clk.Now, MinBackoff: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(New(eng, sopts))
	t.Cleanup(func() {
		srv.Close()
		eng.Close(context.Background())
	})
	return &adminEnv{testEnv: &testEnv{t: t, eng: eng, srv: srv, dataDir: dataDir}, clk: clk, cfg: cfg, storeDir: storeDir}
}

// setClock moves the clock to t and runs a pass of the hot tier (Flush),
// which evicts what hot.max_age lets go at t, as its own loop does within
// a tick: tests see it at once.
func (e *adminEnv) setClock(t time.Time) {
	e.t.Helper()
	e.clk.Set(t)
	if err := e.eng.Flush(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// appendN appends n records to stream and flushes, so that every record is
// in a sealed, persisted segment.
func (e *adminEnv) appendN(stream string, n int) {
	e.t.Helper()
	for i := 0; i < n; i += 20 {
		var body strings.Builder
		for j := i; j < i+20 && j < n; j++ {
			fmt.Fprintf(&body, `{"key":"k%d","value":{"n":%d,"pad":"%060d"}}`+"\n", j%3, j, j)
		}
		e.mustAppend(stream, body.String())
	}
	if err := e.eng.Flush(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *adminEnv) segments(stream string) []segmentOut {
	e.t.Helper()
	r := e.do("GET", "/v1/streams/"+stream+"/segments", nil)
	var out []segmentOut
	if r.status != 200 {
		e.t.Fatalf("segments: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatalf("segments %s: %v", r.body, err)
	}
	return out
}

// migrate posts /v1/migrate?query and decodes the answer.
func (e *adminEnv) migrate(query string) migrateOut {
	e.t.Helper()
	r := e.do("POST", "/v1/migrate?"+query, nil)
	if r.status != 200 {
		e.t.Fatalf("migrate?%s: %d %s", query, r.status, r.body)
	}
	var out migrateOut
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		e.t.Fatalf("migrate answer %s: %v", r.body, err)
	}
	if out.Actions == nil {
		e.t.Fatalf("migrate answer %s: actions is not an array", r.body)
	}
	return out
}

func (e *adminEnv) explain(stream string) explainOut {
	e.t.Helper()
	r := e.do("GET", "/v1/streams/"+stream+"/explain", nil)
	if r.status != 200 {
		e.t.Fatalf("explain %s: %d %s", stream, r.status, r.body)
	}
	var out explainOut
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatalf("explain answer %s: %v", r.body, err)
	}
	return out
}

func (e *adminEnv) verify(query string) verifyOut {
	e.t.Helper()
	r := e.do("POST", "/v1/verify?"+query, nil)
	if r.status != 200 {
		e.t.Fatalf("verify?%s: %d %s", query, r.status, r.body)
	}
	var out verifyOut
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatalf("verify answer %s: %v", r.body, err)
	}
	return out
}

// objects counts the files in the cold store directory.
func (e *adminEnv) objects() int {
	n := 0
	filepath.WalkDir(e.storeDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// kinds counts a migrate answer's actions by kind, failing on any error.
func kinds(t *testing.T, out migrateOut) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, a := range out.Actions {
		if a.Error != "" {
			t.Fatalf("action %+v failed", a)
		}
		m[a.Action]++
	}
	return m
}

func TestAdminEndpointErrors(t *testing.T) {
	e := newAdminEnv(t, true)
	e.appendN("s", 100)
	e.setClock(adminT0.Add(25 * time.Hour)) // everything is due
	before := e.do("GET", "/v1/streams/s/segments", nil).body
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/v1/migrate?dry_run=maybe", 400, "invalid_parameter"},
		{"POST", "/v1/migrate?dry_run=", 400, "invalid_parameter"},
		{"POST", "/v1/migrate?force=1", 400, "invalid_parameter"},
		{"POST", "/v1/migrate?dry_run=false&force=1", 400, "invalid_parameter"},
		{"POST", "/v1/migrate?dry_run=false&dry_run=false", 400, "invalid_parameter"},
		{"POST", "/v1/migrate?stream=s&stream=s&dry_run=false", 400, "invalid_parameter"},
		{"POST", "/v1/migrate?dry_run=false&%zz", 400, "invalid_parameter"},
		{"POST", "/v1/migrate?stream=-bad&dry_run=false", 400, "invalid_stream_name"},
		{"POST", "/v1/migrate?stream=a%2Fb&dry_run=false", 400, "invalid_stream_name"},
		{"POST", "/v1/migrate?stream=&dry_run=false", 400, "invalid_stream_name"},
		{"POST", "/v1/migrate?stream=nope&dry_run=false", 404, "stream_not_found"},
		{"GET", "/v1/migrate", 405, "method_not_allowed"},
		{"GET", "/v1/streams/nope/explain", 404, "stream_not_found"},
		{"GET", "/v1/streams/-bad/explain", 400, "invalid_stream_name"},
		{"GET", "/v1/streams/s/explain?verbose=1", 400, "invalid_parameter"},
		{"POST", "/v1/streams/s/explain", 405, "method_not_allowed"},
		{"POST", "/v1/verify?stream=nope", 404, "stream_not_found"},
		{"POST", "/v1/verify?stream=-bad", 400, "invalid_stream_name"},
		{"POST", "/v1/verify?deep=1", 400, "invalid_parameter"},
		{"POST", "/v1/verify?stream=s&stream=s", 400, "invalid_parameter"},
		{"GET", "/v1/verify", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			wantError(t, e.do(c.method, c.path, nil), c.status, c.code)
		})
	}
	if after := e.do("GET", "/v1/streams/s/segments", nil).body; !bytes.Equal(before, after) {
		t.Fatalf("rejected requests changed the segments:\n%s\n%s", before, after)
	}
	if n := e.objects(); n != 0 {
		t.Fatalf("rejected requests uploaded %d objects", n)
	}
}

func TestAdminWithoutMigrator(t *testing.T) {
	e := newAdminEnv(t, false)
	e.appendN("s", 50)
	for _, path := range []string{"/v1/migrate", "/v1/migrate?dry_run=false", "/v1/migrate?stream=s"} {
		d := wantError(t, e.do("POST", path, nil), 409, "migrator_disabled")
		if !strings.Contains(d.Message, "migrator") {
			t.Errorf("%s: message %q", path, d.Message)
		}
	}
	wantError(t, e.do("GET", "/v1/streams/s/explain", nil), 409, "migrator_disabled")
	// verify needs no migrator.
	if v := e.verify(""); !v.OK {
		t.Fatalf("verify without a migrator: %+v", v)
	}
}

func TestMigrateDryRunThenRun(t *testing.T) {
	e := newAdminEnv(t, true)
	e.appendN("s", 200)
	e.appendN("other", 20)
	segs := e.segments("s")
	n := len(segs)
	if n < 3 {
		t.Fatalf("want several segments, got %d", n)
	}
	for _, s := range segs {
		if strings.Join(s.Tiers, ",") != "hot,warm" || s.Active {
			t.Fatalf("fresh segment %+v, want sealed hot,warm", s)
		}
	}
	recsBefore := e.read("s", "limit=100000")

	// Nothing is due yet.
	if out := e.migrate(""); !out.DryRun || len(out.Actions) != 0 || out.Failed != 0 {
		t.Fatalf("dry run of young segments: %+v", out)
	}
	e.setClock(adminT0.Add(25 * time.Hour))
	// Past hot.max_age the hot tier has let them go, with no migrate run.
	for _, s := range e.segments("s") {
		if strings.Join(s.Tiers, ",") != "warm" {
			t.Fatalf("segment %+v past hot.max_age, want warm only", s)
		}
	}
	before := e.do("GET", "/v1/streams/s/segments", nil).body
	for _, q := range []string{"", "dry_run=true", "dry_run=1&stream=s"} {
		out := e.migrate(q)
		if !out.DryRun || out.Failed != 0 {
			t.Fatalf("dry run ?%s: %+v", q, out)
		}
		got := kinds(t, out)
		wantN := n
		if !strings.Contains(q, "stream=") { // every stream
			wantN += len(e.segments("other"))
		}
		if got["upload"] != wantN || len(got) != 1 {
			t.Fatalf("dry run ?%s planned %v, want %d upload", q, got, wantN)
		}
		for _, a := range out.Actions {
			if a.Stream != "s" && strings.Contains(q, "stream=") {
				t.Fatalf("dry run ?%s planned %+v on another stream", q, a)
			}
			if a.Policy != "test" || a.Reason == "" || a.Due == "" {
				t.Fatalf("action %+v lacks policy, reason or due", a)
			}
		}
	}
	if after := e.do("GET", "/v1/streams/s/segments", nil).body; !bytes.Equal(before, after) {
		t.Fatalf("dry runs changed the segments:\n%s\n%s", before, after)
	}
	if c := e.objects(); c != 0 {
		t.Fatalf("dry runs uploaded %d objects", c)
	}

	out := e.migrate("dry_run=false&stream=s")
	if out.DryRun || out.Failed != 0 || out.Started == "" {
		t.Fatalf("run: %+v", out)
	}
	if got := kinds(t, out); got["upload"] != n || len(got) != 1 {
		t.Fatalf("run did %v", got)
	}
	for _, s := range e.segments("s") {
		if strings.Join(s.Tiers, ",") != "warm,cold" || s.ColdBytes <= 0 {
			t.Fatalf("after the run segment %+v, want warm,cold", s)
		}
	}
	if c := e.objects(); c != n {
		t.Fatalf("%d objects after uploading %d segments of s (other was not asked)", c, n)
	}
	if got := kinds(t, e.migrate("dry_run=false&stream=s")); got["drop-warm"] != n || len(got) != 1 {
		t.Fatalf("second run did %v, want %d drop-warm", got, n)
	}
	if out := e.migrate("dry_run=false&stream=s"); len(out.Actions) != 0 {
		t.Fatalf("third run did %+v, want nothing", out.Actions)
	}
	for _, s := range e.segments("s") {
		if strings.Join(s.Tiers, ",") != "cold" {
			t.Fatalf("after drop-warm segment %+v, want cold", s)
		}
	}
	recsAfter := e.read("s", "limit=100000")
	if len(recsAfter) != len(recsBefore) {
		t.Fatalf("read %d records after the moves, %d before", len(recsAfter), len(recsBefore))
	}
	for i := range recsAfter {
		if recsAfter[i].Offset != recsBefore[i].Offset || string(recsAfter[i].Value) != string(recsBefore[i].Value) || recsAfter[i].Tier != "cold" {
			t.Fatalf("record %d after the moves: %+v, before %+v", i, recsAfter[i], recsBefore[i])
		}
	}
	// The other stream's turn, with no stream named.
	if got := kinds(t, e.migrate("dry_run=false")); got["upload"] != len(e.segments("other")) {
		t.Fatalf("run over every stream did %v", got)
	}
}

func TestExplainEndpoint(t *testing.T) {
	e := newAdminEnv(t, true)
	e.appendN("s", 100)
	e.mustAppend("s", `{"key":"tail"}`) // the active segment
	ex := e.explain("s")
	want := policyOut{Name: "test", HotMaxAge: policy.FormatDuration(time.Hour), WarmMaxAge: policy.FormatDuration(24 * time.Hour), ColdMaxAge: policy.FormatDuration(7 * 24 * time.Hour)}
	if ex.Stream != "s" || ex.Policy != want || ex.Now != formatTime(adminT0) {
		t.Fatalf("explain: stream %q policy %+v now %q; want s, %+v, %s", ex.Stream, ex.Policy, ex.Now, want, formatTime(adminT0))
	}
	segs := e.segments("s")
	if len(ex.Segments) != len(segs) || len(segs) < 3 {
		t.Fatalf("explain lists %d segments, the listing %d", len(ex.Segments), len(segs))
	}
	last := ex.Segments[len(ex.Segments)-1]
	if !last.Active || last.Next != nil || last.Note == "" {
		t.Fatalf("active segment explained as %+v", last)
	}
	sealed := ex.Segments[:len(ex.Segments)-1]
	for i, s := range sealed {
		if s.Base != segs[i].Base || s.Next == nil {
			t.Fatalf("segment %d explained as %+v", i, s)
		}
		// The hot tier's rule, forecast: out of memory at hot.max_age.
		if s.Next.Action != "evict-hot" || s.Next.Due != formatTime(adminT0.Add(time.Hour)) || s.Next.In != "1h" ||
			!strings.Contains(s.Next.Reason, "hot.max_age 1h") || !strings.Contains(s.Next.Reason, "hot.max_bytes") {
			t.Fatalf("young segment %d: next %+v, want evict-hot in 1h", s.Base, s.Next)
		}
		if s.LastError != nil {
			t.Fatalf("segment %d has a last error %+v", s.Base, s.LastError)
		}
	}

	// An upload that fails shows in explain, with its retry time.
	e.setClock(adminT0.Add(25 * time.Hour))
	if err := failpoint.Enable(failpoint.MoveAfterWrite, "error"); err != nil {
		t.Fatal(err)
	}
	out := e.migrate("dry_run=false")
	failpoint.Disable(failpoint.MoveAfterWrite)
	if out.Failed != len(sealed) {
		t.Fatalf("run with uploads failing: %d failed, want %d: %+v", out.Failed, len(sealed), out.Actions)
	}
	ex = e.explain("s")
	for _, s := range ex.Segments[:len(sealed)] {
		if s.LastError == nil || !strings.Contains(s.LastError.Error, "injected") || s.LastError.Attempts != 1 || s.LastError.RetryAt == "" {
			t.Fatalf("segment %d after a failed upload: last error %+v", s.Base, s.LastError)
		}
		if s.Next == nil || s.Next.Action != "upload" || s.Next.In != "0s" {
			t.Fatalf("segment %d after a failed upload: next %+v, want upload now", s.Base, s.Next)
		}
	}
	// Backing off: the next run skips them; after the backoff they move.
	if out := e.migrate("dry_run=false"); out.Skipped != len(sealed) || len(out.Actions) != 0 {
		t.Fatalf("run during the backoff: %+v", out)
	}
	e.setClock(adminT0.Add(25*time.Hour + time.Minute))
	if got := kinds(t, e.migrate("dry_run=false")); got["upload"] != len(sealed) {
		t.Fatalf("retry did %v", got)
	}
	kinds(t, e.migrate("dry_run=false")) // drop-warm
	ex = e.explain("s")
	for _, s := range ex.Segments[:len(sealed)] {
		if s.LastError != nil {
			t.Fatalf("segment %d keeps last error %+v after moving", s.Base, s.LastError)
		}
		due := segTime(t, s.SealedAt).Add(7 * 24 * time.Hour)
		if strings.Join(s.Tiers, ",") != "cold" || s.Next == nil || s.Next.Action != "tombstone" || s.Next.Due != formatTime(due) ||
			s.Next.In != policy.FormatDuration(due.Sub(e.clk.Now())) {
			t.Fatalf("cold segment %+v: next %+v, want tombstone at %s", s.segmentOut, s.Next, formatTime(due))
		}
		if s.Age != policy.FormatDuration(25*time.Hour+time.Minute) {
			t.Fatalf("segment %d age %q", s.Base, s.Age)
		}
	}
}

func segTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v
}

func TestVerifyEndpoint(t *testing.T) {
	e := newAdminEnv(t, true)
	e.appendN("s", 200)
	e.setClock(adminT0.Add(25 * time.Hour))
	e.migrate("dry_run=false") // everything warm and cold
	segs := e.segments("s")
	v := e.verify("")
	if !v.OK || len(v.Findings) != 0 || len(v.Streams) != 1 {
		t.Fatalf("verify of a clean archive: %+v", v)
	}
	if sc := v.Streams[0]; sc.Stream != "s" || sc.First != 0 || sc.Next != 200 || sc.Segments != len(segs) || sc.Placements != 2*len(segs) {
		t.Fatalf("stream check %+v", sc)
	}
	if v.WarmFiles != len(segs) || v.ColdObjects != len(segs) {
		t.Fatalf("verify saw %d warm files and %d objects, want %d each", v.WarmFiles, v.ColdObjects, len(segs))
	}

	// Damage one warm file in place, under the running server.
	bad := segs[1]
	path := filepath.Join(e.dataDir, "warm", "s", fmt.Sprintf("%020d.seg", bad.Base))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte{b[len(b)/3] ^ 0x10}, int64(len(b)/3)); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	for _, q := range []string{"", "stream=s"} {
		v = e.verify(q)
		if v.OK || len(v.Findings) != 1 {
			t.Fatalf("verify?%s after damage: %+v", q, v)
		}
		f := v.Findings[0]
		if f.Kind != "digest" || f.Stream != "s" || f.Base == nil || *f.Base != bad.Base || f.Tier != "warm" || f.Path != path || f.Message == "" {
			t.Fatalf("finding %+v, want digest of s@%d warm %s", f, bad.Base, path)
		}
	}
}

func TestReadsOfExpiredOffsets(t *testing.T) {
	e := newAdminEnv(t, true)
	e.appendN("s", 100)
	e.setClock(adminT0.Add(72 * time.Hour))
	e.appendN("s", 100)
	all := e.read("s", "limit=100000")
	if len(all) != 200 {
		t.Fatalf("read %d records", len(all))
	}

	check := func(stage string) {
		t.Helper()
		segs := e.segments("s")
		first := segs[0].Base
		if segs[0].Tombstoned != "" {
			for _, s := range segs {
				if s.Tombstoned == "" {
					first = s.Base
					break
				}
			}
		}
		if first == 0 || first >= 200 {
			t.Fatalf("%s: first retained offset %d", stage, first)
		}
		for _, c := range []struct {
			query    string
			from, to uint64
		}{
			{"from=0", 0, first},
			{"from=3&to=5", 3, 6},
			{fmt.Sprintf("from=%d", first-1), first - 1, first},
			{fmt.Sprintf("from=0&to=%d", first+10), 0, first},
			{fmt.Sprintf("to=%d", first-1), 0, first},
		} {
			d := wantError(t, e.do("GET", "/v1/streams/s/records?"+c.query, nil), 410, "expired")
			if r := fmt.Sprintf("[%d, %d)", c.from, c.to); !strings.Contains(d.Message, r) {
				t.Errorf("%s: ?%s: message %q does not name %s", stage, c.query, d.Message, r)
			}
		}
		got := e.read("s", "limit=100000")
		if len(got) != 200-int(first) || got[0].Offset != first {
			t.Fatalf("%s: read without from: %d records from %d, want %d from %d", stage, len(got), got[0].Offset, 200-first, first)
		}
		for i := range got {
			if got[i].Offset != all[int(first)+i].Offset || string(got[i].Value) != string(all[int(first)+i].Value) {
				t.Fatalf("%s: record %d differs", stage, i)
			}
		}
		if got := e.read("s", fmt.Sprintf("from=%d&limit=5", first)); len(got) != 5 || got[0].Offset != first {
			t.Fatalf("%s: read from the first retained offset: %+v", stage, got)
		}
		// By time: the old records were ingested at t0, the young at t0+3d.
		ts := func(d time.Duration) string { return url.QueryEscape(formatTime(adminT0.Add(d))) }
		d := wantError(t, e.do("GET", "/v1/streams/s/records?until="+ts(24*time.Hour), nil), 410, "expired")
		if !strings.Contains(d.Message, fmt.Sprintf("offset %d", first)) {
			t.Errorf("%s: until before the first retained record: message %q does not name offset %d", stage, d.Message, first)
		}
		if got := e.read("s", "since="+ts(0)+"&until="+ts(96*time.Hour)); len(got) != 200-int(first) || got[0].Offset != first {
			t.Fatalf("%s: read by a time range starting before retention: %d records", stage, len(got))
		}
	}

	// At 8 days the old segments are tombstoned: no longer served.
	e.setClock(adminT0.Add(8 * 24 * time.Hour))
	for i := 0; len(kinds(t, e.migrate("dry_run=false"))) > 0; i++ {
		if i == 5 {
			t.Fatal("migrate runs do not settle")
		}
	}
	check("tombstoned")
	ex := e.explain("s")
	tomb := 0
	for _, s := range ex.Segments {
		if s.Tombstoned == "" {
			continue
		}
		tomb++
		due := segTime(t, s.Tombstoned).Add(time.Hour)
		if s.Next == nil || s.Next.Action != "delete-cold" || s.Next.Due != formatTime(due) {
			t.Fatalf("tombstoned segment %d: next %+v, want delete-cold at %s", s.Base, s.Next, formatTime(due))
		}
	}
	if tomb == 0 {
		t.Fatal("explain shows no tombstoned segment")
	}
	// After the delete delay they are gone.
	e.setClock(adminT0.Add(8*24*time.Hour + 2*time.Hour))
	if got := kinds(t, e.migrate("dry_run=false")); got["delete-cold"] == 0 {
		t.Fatalf("run after the delete delay did %v", got)
	}
	check("deleted")
	if v := e.verify(""); !v.OK {
		t.Fatalf("verify after retention: %+v", v.Findings)
	}
}
