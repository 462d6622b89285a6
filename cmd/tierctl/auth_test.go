package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/server"
)

// TestTokenFromEnvironment: tierctl sends $TIERD_TOKEN as a bearer token;
// without it a server that requires tokens answers 401, and a token of
// too small a role 403, both as a clear error and exit 1, never echoing
// the token.
func TestTokenFromEnvironment(t *testing.T) {
	eng, err := engine.Open(context.Background(), engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(eng, server.Options{Tokens: []server.Token{
		{Name: "reader", Role: policy.RoleRead, Secret: "read-secret-1"},
		{Name: "ingest", Role: policy.RoleWrite, Secret: "write-secret-2"},
	}}))
	t.Cleanup(func() { srv.Close(); eng.Close(context.Background()) })
	runAs := func(token, stdin string, args ...string) result {
		var out, errb bytes.Buffer
		getenv := func(k string) string {
			switch k {
			case "TIERD_ADDR":
				return srv.URL
			case "TIERD_TOKEN":
				return token
			}
			return ""
		}
		code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb, getenv)
		return result{code, out.String(), errb.String()}
	}
	if r := runAs("write-secret-2\n", `{"value":1}`+"\n", "append", "s"); r.code != 0 {
		t.Fatalf("append with a write token: exit %d: %s", r.code, r.stderr)
	}
	if r := runAs("read-secret-1", "", "read", "s", "--from", "0"); r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("read with a read token: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	r := runAs("", "", "streams")
	if r.code != 1 || !strings.Contains(r.stderr, "unauthorized") {
		t.Fatalf("no token: exit %d, stderr %q; want 1 and unauthorized", r.code, r.stderr)
	}
	r = runAs("read-secret-1", `{"value":2}`+"\n", "append", "s")
	if r.code != 1 || !strings.Contains(r.stderr, "forbidden") || strings.Contains(r.stderr, "read-secret-1") {
		t.Fatalf("append with a read token: exit %d, stderr %q; want 1, forbidden, no secret", r.code, r.stderr)
	}
}
