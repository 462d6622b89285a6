package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

// defaultAddr is where tierd listens out of the box.
const defaultAddr = "http://127.0.0.1:7070"

// app is one invocation's state: the streams and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	addr           string
	token          string // $TIERD_TOKEN: sent as a bearer token, never printed
	output         string
	progress       string // --progress: auto, always or never
	// ran is set once a verb's own code starts, so an error before it is
	// known to be a usage error.
	ran bool
}

func (a *app) client() *client.Client {
	if a.token != "" {
		return client.New(a.addr, client.WithToken(a.token))
	}
	return client.New(a.addr)
}

// usageError marks a mistake in the command line rather than a failure.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes one command line and returns the exit code: 0 on success, 1
// on an API or I/O failure, 2 on a usage error. Tests call it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, token: strings.TrimSpace(getenv("TIERD_TOKEN"))}
	root := newRoot(a, getenv)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ae *client.APIError
	var ue usageError
	switch {
	case errors.As(err, &ae):
		fmt.Fprintf(stderr, "error: %s: %s\n", ae.Code, ae.Message)
		return 1
	case errors.As(err, &ue) || !a.ran:
		fmt.Fprintf(stderr, "error: %v\nRun 'tierctl --help' for usage.\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	return 1
}

func newRoot(a *app, getenv func(string) string) *cobra.Command {
	addr := getenv("TIERD_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	root := &cobra.Command{
		Use:   "tierctl",
		Short: "Operate a tierd tiered-storage archiver",
		Long: `tierctl talks to a tierd server over its HTTP API: it appends NDJSON
records, reads them back, shows streams, segments and status, explains
and runs the migrator, and verifies the archive. policy check and catalog
rebuild work offline, without a server.

The server address is --addr, else $TIERD_ADDR, else ` + defaultAddr + `.
A server that requires tokens gets $TIERD_TOKEN as a bearer token.`,
		Example: `  tierctl append trades --file trades.ndjson
  tierctl read trades --since 2026-11-22T10:00:00Z --limit 10
  tierctl explain trades
  TIERD_ADDR=http://archive:7070 TIERD_TOKEN=$(cat ops.token) tierctl streams -o json`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.output != "table" && a.output != "json" {
				return usagef("-o %q: want table or json", a.output)
			}
			if a.progress != "auto" && a.progress != "always" && a.progress != "never" {
				return usagef("--progress %q: want auto, always or never", a.progress)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.addr, "addr", addr, "tierd base URL (env TIERD_ADDR)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&a.progress, "progress", "auto", "progress line on stderr for long operations: auto (when stdout is a terminal), always or never")
	root.AddCommand(newAppendCmd(a), newReadCmd(a), newTailCmd(a), newStreamsCmd(a), newSegmentsCmd(a), newStatusCmd(a))
	root.AddCommand(newExplainCmd(a), newMigrateCmd(a), newVerifyCmd(a))
	root.AddCommand(newPolicyCmd(a), newCatalogCmd(a))
	root.AddCommand(newSealCmd(a), newOffloadCmd(a))
	root.SetOut(a.stdout) // before the completion command, which keeps its writer
	root.SetErr(a.stderr)
	a.setUpCompletion(root)
	return root
}

// verb wraps a command's body so run can tell its errors from usage errors.
func (a *app) verb(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		return fn(cmd, args)
	}
}
