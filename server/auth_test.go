package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
)

// syncBuffer is a log sink the server's goroutines may write concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	readSecret  = "r-7c1e0a9b3f5d4e2a"
	writeSecret = "w-0b9a8c7d6e5f4a3b"
	adminSecret = "a-5f4e3d2c1b0a9f8e"
)

// newAuthEnv is a server with one token per role, a migrator and a file
// cold store, logging everything at debug level into logs.
func newAuthEnv(t *testing.T) (srv *httptest.Server, logs *syncBuffer) {
	t.Helper()
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
	logs = &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	eng, err := engine.Open(context.Background(), engine.Options{DataDir: t.TempDir(), Cold: ct, Logger: log, SegmentMaxBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	cfg := policy.Default()
	cfg.Cold.Store = storeURL
	mig, err := migrator.New(eng, migrator.Options{Config: cfg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv = httptest.NewServer(New(eng, Options{Migrator: mig, Logger: log, Registerer: reg, Gatherer: reg, Now: func() time.Time { return fixedNow }, Tokens: []Token{
		{Name: "reader", Role: policy.RoleRead, Secret: readSecret},
		{Name: "ingest", Role: policy.RoleWrite, Secret: writeSecret},
		{Name: "ops", Role: policy.RoleAdmin, Secret: adminSecret},
	}}))
	t.Cleanup(func() {
		srv.Close()
		eng.Close(context.Background())
	})
	// A persisted segment to read, explain and offload.
	body := strings.Repeat(`{"key":"k","value":{"pad":"0123456789012345678901234567890123456789"}}`+"\n", 100)
	if r := authDo(t, srv, "POST", "/v1/streams/s/records", body, "Bearer "+writeSecret); r.status != 200 {
		t.Fatalf("setup append: %d %s", r.status, r.body)
	}
	if err := eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv, logs
}

func authDo(t *testing.T, srv *httptest.Server, method, path, body, authz string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return response{resp.StatusCode, resp.Header, buf.Bytes()}
}

// TestAuthEveryRoleEveryEndpoint: endpoint × caller → status. No or a
// wrong token: 401 everywhere but /healthz; a token of too small a role:
// 403; enough: the endpoint's own answer.
func TestAuthEveryRoleEveryEndpoint(t *testing.T) {
	srv, logs := newAuthEnv(t)
	record := `{"key":"k","value":1}` + "\n"
	endpoints := []struct {
		method, path, body string
		need               policy.Role // "" = open
		ok                 int         // the status with enough rights
	}{
		{"GET", "/healthz", "", "", 200},
		{"GET", "/v1/streams", "", policy.RoleRead, 200},
		{"GET", "/v1/streams/s/records?from=0&limit=5", "", policy.RoleRead, 200},
		{"HEAD", "/v1/streams/s/records?from=0&limit=5", "", policy.RoleRead, 200},
		{"GET", "/v1/streams/s/segments", "", policy.RoleRead, 200},
		{"GET", "/v1/status", "", policy.RoleRead, 200},
		{"GET", "/v1/cluster", "", policy.RoleRead, 404}, // a local node: not_in_cluster_mode
		{"GET", "/metrics", "", policy.RoleRead, 200},
		{"GET", "/v1/nope", "", policy.RoleRead, 404},
		{"DELETE", "/v1/streams", "", policy.RoleRead, 405},
		{"POST", "/v1/streams/s/records", record, policy.RoleWrite, 200},
		{"GET", "/v1/streams/s/explain", "", policy.RoleAdmin, 200},
		{"POST", "/v1/migrate?dry_run=true", "", policy.RoleAdmin, 200},
		{"POST", "/v1/verify", "", policy.RoleAdmin, 200},
		{"POST", "/v1/streams/s/seal", "", policy.RoleAdmin, 200},
		{"POST", "/v1/streams/s/segments/0/offload", "", policy.RoleAdmin, 200},
	}
	callers := []struct {
		name  string
		authz string
		level int // -1 = not authenticated
	}{
		{"no token", "", -1},
		{"wrong token", "Bearer not-a-token", -1},
		{"empty token", "Bearer ", -1},
		{"very long token", "Bearer " + strings.Repeat("x", 64<<10), -1},
		{"other scheme", "Basic " + adminSecret, -1},
		{"token without scheme", adminSecret, -1},
		{"a secret's prefix", "Bearer " + adminSecret[:len(adminSecret)-1], -1},
		{"read", "Bearer " + readSecret, 1},
		{"write", "Bearer " + writeSecret, 2},
		{"admin", "bearer " + adminSecret, 3}, // the scheme is case-insensitive
	}
	for _, ep := range endpoints {
		for _, c := range callers {
			want := ep.ok
			switch {
			case ep.need == "":
			case c.level < 0:
				want = http.StatusUnauthorized
			case c.level < ep.need.Level():
				want = http.StatusForbidden
			}
			r := authDo(t, srv, ep.method, ep.path, ep.body, c.authz)
			if r.status != want {
				t.Errorf("%s %s as %s: %d %s, want %d", ep.method, ep.path, c.name, r.status, r.body, want)
				continue
			}
			switch want {
			case http.StatusUnauthorized:
				if ep.method != "HEAD" {
					wantError(t, r, want, "unauthorized")
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s as %s: 401 without WWW-Authenticate", ep.method, ep.path, c.name)
				}
			case http.StatusForbidden:
				if ep.method != "HEAD" {
					wantError(t, r, want, "forbidden")
				}
			}
			for _, s := range []string{readSecret, writeSecret, adminSecret} {
				if bytes.Contains(r.body, []byte(s)) {
					t.Errorf("%s %s as %s: the answer contains a token", ep.method, ep.path, c.name)
				}
			}
		}
	}
	out := logs.String()
	if !strings.Contains(out, "unauthenticated request") || !strings.Contains(out, "token=reader") {
		t.Fatalf("the refusals were not logged (by token name):\n%s", out)
	}
	for _, s := range []string{readSecret, writeSecret, adminSecret, "not-a-token"} {
		if strings.Contains(out, s) {
			t.Fatalf("a token appears in the log:\n%s", out)
		}
	}
}

// TestRefusedAppendChangesNothing: a write refused for its token appends
// nothing.
func TestRefusedAppendChangesNothing(t *testing.T) {
	srv, _ := newAuthEnv(t)
	count := func() int {
		r := authDo(t, srv, "GET", "/v1/streams/s/records?from=0", "", "Bearer "+readSecret)
		return bytes.Count(r.body, []byte("\n"))
	}
	before := count()
	for _, authz := range []string{"", "Bearer nope", "Bearer " + readSecret} {
		if r := authDo(t, srv, "POST", "/v1/streams/s/records", `{"value":1}`+"\n", authz); r.status != 401 && r.status != 403 {
			t.Fatalf("append with %q: %d", authz, r.status)
		}
	}
	if after := count(); after != before {
		t.Fatalf("refused appends changed the stream: %d records, then %d", before, after)
	}
}

// TestRouteWithoutRoleFails: a route registered without a role (or with a
// role that is none of read, write, admin, anyone) stops construction
// with a panic naming the route, instead of being served as read; every
// route New registers has one.
func TestRouteWithoutRoleFails(t *testing.T) {
	s := New(nil, Options{})
	for pattern, role := range s.roles {
		if role != roleAnyone && role.Level() == 0 {
			t.Errorf("route %q has role %q", pattern, role)
		}
	}
	if len(s.roles) < 13 {
		t.Fatalf("New registered %d routes with a role, want every route (13)", len(s.roles))
	}
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, c := range []struct {
		pattern string
		role    policy.Role
	}{
		{"GET /v1/new", ""},
		{"POST /v1/new", "writer"},
		{"GET /v1/status", policy.RoleRead}, // registered twice
	} {
		func() {
			defer func() {
				v := recover()
				if v == nil {
					t.Fatalf("route(%q, %q) did not fail", c.pattern, c.role)
				}
				if msg := fmt.Sprint(v); !strings.Contains(msg, c.pattern) {
					t.Fatalf("route(%q, %q) failed with %q, which does not name the route", c.pattern, c.role, msg)
				}
			}()
			s.route(c.pattern, c.role, h)
		}()
		if _, ok := s.roles[c.pattern]; ok && c.role != policy.RoleRead {
			t.Fatalf("route %q without a role was registered", c.pattern)
		}
	}
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/new", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("GET /v1/new after a refused registration: %d, want 404", rec.Code)
	}
}
