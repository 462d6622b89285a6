package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// MaxWait bounds a read's wait parameter: long enough that a follower
// polls rarely, short enough for proxies that close idle responses.
const MaxWait = 60 * time.Second

// takeWait removes the wait parameter from params and parses it: a Go
// duration ("30s", "500ms") from 0 to MaxWait. Absent is 0, no wait.
func takeWait(params url.Values) (time.Duration, error) {
	vals, ok := params["wait"]
	if !ok {
		return 0, nil
	}
	delete(params, "wait")
	if len(vals) != 1 {
		return 0, fmt.Errorf("parameter \"wait\" given %d times", len(vals))
	}
	d, err := time.ParseDuration(vals[0])
	if err != nil || d < 0 || d > MaxWait {
		return 0, fmt.Errorf("wait %q must be a duration from 0s to %s (e.g. 30s)", vals[0], MaxWait)
	}
	return d, nil
}

// waitFor long-polls: it returns once stream holds a record at from or
// above, after d, when the client goes away, or when the server shuts down
// (Shutdown), whichever is first. The read that follows answers what is
// there then, possibly nothing.
func (s *Server) waitFor(ctx context.Context, stream string, from uint64, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	stop := context.AfterFunc(s.closing, cancel)
	defer stop()
	s.eng.WaitFor(ctx, stream, from) // its only errors end the wait early
}

// untilShutdown returns r's context, cancelled by Shutdown too, for the
// operator's long operations (offload, migrate, verify): each is safe to
// interrupt, and one stalled on a hung cold store must not hold up
// http.Server.Shutdown, nor the daemon's exit. Call stop when done.
func (s *Server) untilShutdown(r *http.Request) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(r.Context())
	unhook := context.AfterFunc(s.closing, cancel)
	return ctx, func() { unhook(); cancel() }
}

// Shutdown ends every long-polling read's wait and every long operation at
// once (untilShutdown), so that
// http.Server.Shutdown (which waits for active requests) is not held up
// for MaxWait. Register it with http.Server.RegisterOnShutdown.
func (s *Server) Shutdown() { s.stopWaits() }
