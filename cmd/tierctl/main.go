// Command tierctl is the operator's CLI for a tierd server: append NDJSON
// records, read them back, list streams, segments and status, explain and
// run migrations, verify the archive, check a configuration offline, and
// rebuild the catalog offline (catalog rebuild).
//
//	tierctl [--addr URL] [-o table|json] VERB ...
//
// The server address comes from --addr, else $TIERD_ADDR, else
// http://127.0.0.1:7070. API errors print "error: <code>: <message>" to
// stderr and exit 1; usage errors exit 2; a verb interrupted by Ctrl-C
// exits 130, except tail -f, for which Ctrl-C is the way to stop (0).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
