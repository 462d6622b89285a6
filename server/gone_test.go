package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/engine"
)

// TestClientGoneIsDebug: a long-polling read whose client goes away (tail
// -f and Ctrl-C) is a debug line, not a warning with a status; a real 503
// stays a warning.
func TestClientGoneIsDebug(t *testing.T) {
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, engine.Options{}, Options{Logger: log})
	e.mustAppend("s", "{}")

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/streams/s/records?from=1&wait=30s", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // the server is waiting for offset 1
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the canceled read got an answer")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "client went away") {
		if time.Now().After(deadline) {
			t.Fatalf("no debug line for the client that went away; log:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := logs.String()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "client went away") && (!strings.Contains(line, "level=DEBUG") || strings.Contains(line, "status=")) {
			t.Fatalf("client gone logged as %q, want a debug line without a status", line)
		}
	}
	if strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR") {
		t.Fatalf("a client going away logged a warning:\n%s", out)
	}

	// A real 503 (the engine is closed) is still a warning.
	if err := e.eng.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.appendBody("s", "{}"), http.StatusServiceUnavailable, "shutting_down")
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "status=503") {
		t.Fatalf("a 503 of the server's own was not a warning:\n%s", out)
	}
}
