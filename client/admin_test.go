package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
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
)

// recorder keeps the last request's method, path and query, and the
// response body, so tests can hold the client's result against exactly what
// the server sent.
type recorder struct {
	mu     sync.Mutex
	method string
	path   string
	query  string
	body   []byte
}

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tw, r)
		rec.mu.Lock()
		rec.method, rec.path, rec.query, rec.body = r.Method, r.URL.EscapedPath(), r.URL.RawQuery, tw.buf.Bytes()
		rec.mu.Unlock()
	})
}

func (rec *recorder) last() (method, path, query string, body []byte) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.method, rec.path, rec.query, rec.body
}

// adminEnv is a real engine with a cold tier on a file store, a migrator
// run on demand, and the real API.
type adminEnv struct {
	c       *client.Client
	eng     *engine.Engine
	rec     *recorder
	dataDir string
	coldDir string
}

// newAdminEnv serves streams "s*" under policy fast (out of memory at 1ms,
// uploaded at 5ms) and the rest under the default policy.
func newAdminEnv(t *testing.T, withMigrator bool) *adminEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	env := &adminEnv{rec: &recorder{}, dataDir: filepath.Join(dir, "data"), coldDir: filepath.Join(dir, "cold")}
	cfg := policy.Default()
	cfg.DataDir = env.dataDir
	cfg.Cold.Store = (&url.URL{Scheme: "file", Path: env.coldDir}).String()
	cfg.Policies = []policy.Policy{{Name: "fast", Streams: []string{"s*"}, HotMaxAge: time.Millisecond, WarmMaxAge: 5 * time.Millisecond}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ct, err := boot.OpenCold(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	env.eng, err = engine.Open(ctx, engine.Options{DataDir: env.dataDir, SegmentMaxBytes: 1024, SegmentMaxAge: time.Hour, HotResidency: time.Hour, Cold: ct,
		// As tierd: each stream's residency is its policy's hot.max_age,
		// and the hot tier alone takes segments out of memory.
		StreamPolicy: func(stream string) hot.StreamPolicy {
			return hot.StreamPolicy{Residency: cfg.PolicyFor(stream).HotMaxAge}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var opts server.Options
	if withMigrator {
		if opts.Migrator, err = migrator.New(env.eng, migrator.Options{Config: cfg}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(env.rec.wrap(server.New(env.eng, opts)))
	t.Cleanup(func() {
		srv.Close()
		env.eng.Close(context.Background())
	})
	env.c = client.New(srv.URL)
	return env
}

// populate appends 30 records of about 150 bytes to each stream, three per
// batch (a batch goes into one segment, so several 1 KiB segments), and
// persists them all; once they are older than the fast policy's ages, a
// pass of the hot tier takes the "s*" segments out of memory.
func (env *adminEnv) populate(t *testing.T, streams ...string) {
	t.Helper()
	ctx := context.Background()
	for _, st := range streams {
		for i := 0; i < 30; i += 3 {
			var recs []client.Record
			for j := i; j < i+3; j++ {
				recs = append(recs, client.Record{Key: fmt.Sprintf("k%d", j%3), Value: json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":"%0120d"}`, j, j))})
			}
			if _, err := env.c.Append(ctx, st, recs); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := env.eng.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // older than the fast policy's ages
	if err := env.eng.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// sameJSON fails unless v, encoded, is the JSON the server sent: no field
// lost, renamed or added by the client's types.
func sameJSON(t *testing.T, what string, v any, raw []byte) {
	t.Helper()
	mine, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("%s: the server sent %q: %v", what, raw, err)
	}
	if err := json.Unmarshal(mine, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%s: the client's value differs from the server's JSON\nserver: %s\nclient: %s", what, bytes.TrimSpace(raw), mine)
	}
}

func TestMigrate(t *testing.T) {
	env := newAdminEnv(t, true)
	env.populate(t, "s1", "other")
	ctx := context.Background()
	segs, err := env.c.Segments(ctx, "s1")
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %v %v", segs, err)
	}

	plan, err := env.c.Migrate(ctx, client.MigrateRequest{DryRun: true, Stream: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	method, path, query, body := env.rec.last()
	if method != http.MethodPost || path != "/v1/migrate" || query != "dry_run=true&stream=s1" {
		t.Errorf("request %s %s?%s", method, path, query)
	}
	sameJSON(t, "dry run", plan, body)
	if !plan.DryRun || len(plan.Actions) != len(segs) || plan.Failed != 0 || plan.Started.IsZero() {
		t.Fatalf("plan %+v", plan)
	}
	for i, a := range plan.Actions {
		// Past hot.max_age the hot tier has taken them out of memory
		// itself: the plan only uploads.
		if strings.Join(segs[i].Tiers, ",") != "warm" {
			t.Errorf("segment %d past hot.max_age in %v, want warm only", segs[i].Base, segs[i].Tiers)
		}
		if a.Action != "upload" || a.Stream != "s1" || a.Base != segs[i].Base || a.Bytes != segs[i].Bytes || a.Policy != "fast" ||
			!strings.Contains(a.Reason, "max_age") || a.Due.IsZero() || a.Error != "" {
			t.Errorf("action %d: %+v", i, a)
		}
	}
	if after, _ := env.c.Segments(ctx, "s1"); !reflect.DeepEqual(after, segs) {
		t.Errorf("a dry run changed the segments")
	}

	// The zero request runs, over every stream: only s1 has anything due.
	rep, err := env.c.Migrate(ctx, client.MigrateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, query, body = env.rec.last()
	if query != "dry_run=false" {
		t.Errorf("the zero request sent %q", query)
	}
	sameJSON(t, "run", rep, body)
	if rep.DryRun || rep.Failed != 0 || rep.Skipped != 0 || len(rep.Actions) != len(plan.Actions) {
		t.Fatalf("run %+v", rep)
	}
	after, err := env.c.Segments(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range after {
		if strings.Join(s.Tiers, ",") != "warm,cold" {
			t.Errorf("segment %d after the run: %v", s.Base, s.Tiers)
		}
	}
}

func TestExplain(t *testing.T) {
	env := newAdminEnv(t, true)
	env.populate(t, "s1")
	ctx := context.Background()
	if _, err := env.c.Append(ctx, "s1", []client.Record{{Value: json.RawMessage(`"active"`)}}); err != nil {
		t.Fatal(err)
	}
	// A failed upload leaves its error for explain.
	if err := os.RemoveAll(env.coldDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env.coldDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := env.c.Migrate(ctx, client.MigrateRequest{Stream: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed == 0 {
		t.Fatalf("uploads into a missing store did not fail: %+v", rep)
	}
	for _, a := range rep.Actions {
		if (a.Action == "upload") != (a.Error != "") {
			t.Errorf("action %+v", a)
		}
	}

	ex, err := env.c.Explain(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	method, path, _, body := env.rec.last()
	if method != http.MethodGet || path != "/v1/streams/s1/explain" {
		t.Errorf("request %s %s", method, path)
	}
	sameJSON(t, "explain", ex, body)
	if ex.Stream != "s1" || ex.Policy != (client.Policy{Name: "fast", HotMaxAge: "1ms", WarmMaxAge: "5ms"}) || ex.Now.IsZero() {
		t.Fatalf("explanation %+v", ex)
	}
	n := len(ex.Segments) - 1
	for _, s := range ex.Segments[:n] {
		if s.Next == nil || s.Next.Action != "upload" || s.Next.In != "0s" || s.LastError == nil || s.LastError.Error == "" ||
			s.LastError.Attempts != 1 || s.LastError.RetryAt.Before(s.LastError.At) || s.Age == "" || strings.Join(s.Tiers, ",") != "warm" {
			t.Errorf("segment %+v, next %+v, last error %+v", s, s.Next, s.LastError)
		}
	}
	if a := ex.Segments[n]; !a.Active || a.Next != nil || a.Note == "" {
		t.Errorf("active segment %+v", a)
	}
}

func TestVerify(t *testing.T) {
	env := newAdminEnv(t, true)
	env.populate(t, "s1", "other")
	ctx := context.Background()
	for range 2 { // upload, then drop warm
		if _, err := env.c.Migrate(ctx, client.MigrateRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := env.c.Verify(ctx, client.VerifyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	method, path, query, body := env.rec.last()
	if method != http.MethodPost || path != "/v1/verify" || query != "" {
		t.Errorf("request %s %s?%s", method, path, query)
	}
	sameJSON(t, "clean verify", rep, body)
	if !rep.OK || len(rep.Findings) != 0 || len(rep.Streams) != 2 || rep.ColdObjects == 0 || rep.WarmFiles == 0 {
		t.Fatalf("clean verify %+v", rep)
	}
	if sc := rep.Streams[0]; sc.Stream != "other" || sc.First != 0 || sc.Next != 30 || sc.Segments == 0 || sc.Placements != sc.Segments {
		t.Errorf("stream check %+v", sc)
	}

	// A stray object, and a damaged warm file.
	stray := filepath.Join(env.coldDir, "stream=s1", "stray.bin")
	if err := os.WriteFile(stray, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	segs, err := env.c.Segments(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	warmFile := filepath.Join(env.dataDir, "warm", "other", fmt.Sprintf("%020d.seg", segs[0].Base))
	flipByte(t, warmFile)
	rep, err = env.c.Verify(ctx, client.VerifyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, body = env.rec.last()
	sameJSON(t, "verify with findings", rep, body)
	if rep.OK || len(rep.Findings) != 2 {
		t.Fatalf("verify %+v", rep)
	}
	byKind := map[string]client.Finding{}
	for _, f := range rep.Findings {
		byKind[f.Kind] = f
	}
	if f := byKind[api.FindingDigest]; f.Stream != "other" || f.Base == nil || *f.Base != segs[0].Base || f.Tier != "warm" || f.Path != warmFile || f.From != nil {
		t.Errorf("digest finding %+v", f)
	}
	if f := byKind[api.FindingOrphanCold]; f.Path != "stream=s1/stray.bin" || f.Tier != "cold" || f.Message == "" {
		t.Errorf("orphan finding %+v", f)
	}

	// One stream only.
	rep, err = env.c.Verify(ctx, client.VerifyRequest{Stream: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, query, _ = env.rec.last(); query != "stream=s1" {
		t.Errorf("query %q", query)
	}
	if len(rep.Streams) != 1 || len(rep.Findings) != 1 || rep.Findings[0].Kind != api.FindingOrphanCold {
		t.Errorf("verify s1 %+v", rep)
	}
}

func TestAdminErrors(t *testing.T) {
	ctx := context.Background()
	env := newAdminEnv(t, true)
	env.populate(t, "s1")
	bare := newAdminEnv(t, false)
	bare.populate(t, "s1")
	check := func(name string, err error, status int, code string) {
		t.Helper()
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != status || ae.Code != code || ae.Message == "" {
			t.Errorf("%s: %v, want HTTP %d %s", name, err, status, code)
		}
	}
	_, err := bare.c.Migrate(ctx, client.MigrateRequest{DryRun: true})
	check("migrate without a migrator", err, http.StatusConflict, "migrator_disabled")
	_, err = bare.c.Explain(ctx, "s1")
	check("explain without a migrator", err, http.StatusConflict, "migrator_disabled")
	if rep, err := bare.c.Verify(ctx, client.VerifyRequest{}); err != nil || !rep.OK {
		t.Errorf("verify without a migrator: %+v %v", rep, err)
	}

	_, err = env.c.Explain(ctx, "nope")
	check("explain of an unknown stream", err, http.StatusNotFound, "stream_not_found")
	_, err = env.c.Migrate(ctx, client.MigrateRequest{Stream: "nope"})
	check("migrate of an unknown stream", err, http.StatusNotFound, "stream_not_found")
	_, err = env.c.Verify(ctx, client.VerifyRequest{Stream: "nope"})
	check("verify of an unknown stream", err, http.StatusNotFound, "stream_not_found")
	_, err = env.c.Migrate(ctx, client.MigrateRequest{Stream: ".bad"})
	check("migrate of a bad name", err, http.StatusBadRequest, "invalid_stream_name")
	// The name is escaped into the path, not taken as two segments.
	_, err = env.c.Explain(ctx, "a/b")
	check("explain of a name with a slash", err, http.StatusBadRequest, "invalid_stream_name")
	if _, path, _, _ := env.rec.last(); path != "/v1/streams/a%2Fb/explain" {
		t.Errorf("path %q", path)
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
