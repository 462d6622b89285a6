package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/policy"
)

// defaultAddr is where tierd listens out of the box (policy's default).
const defaultAddr = "http://" + policy.DefaultListen

// app is one invocation's state: the streams and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	addr           string
	addrSource     string // where addr came from, for the hint when it cannot be reached
	token          string // $TIERD_TOKEN: sent as a bearer token, never printed
	output         string
	progress       string    // --progress: auto, always or never
	prog           *progress // the progress line on screen, if any (notef clears it)
	// ran is set once a verb's own code starts, so an error before it is
	// known to be a usage error.
	ran bool
}

// dialTimeout bounds connecting to the server: an address that drops
// packets fails in seconds, not after the system's minutes.
const dialTimeout = 5 * time.Second

func (a *app) client() *client.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	opts := []client.Option{client.WithHTTPClient(&http.Client{Transport: tr})}
	if a.token != "" {
		opts = append(opts, client.WithToken(a.token))
	}
	return client.New(a.addr, opts...)
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
	cmd, err := root.ExecuteContextC(ctx)
	a.prog.done() // a verb that failed may have left its line on screen
	if err == nil {
		return 0
	}
	err = a.explain(err)
	var ae *client.APIError
	var ue usageError
	switch {
	case errors.Is(err, errInterrupted) || ctx.Err() != nil && errors.Is(err, context.Canceled):
		return 130 // Ctrl-C: the verb said what it left done
	case errors.As(err, &ae):
		fmt.Fprintf(stderr, "error: %s: %s\n", ae.Code, ae.Message)
		return 1
	case errors.As(err, &ue) || !a.ran:
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "error: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return 2
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	return 1
}

func newRoot(a *app, getenv func(string) string) *cobra.Command {
	addr, envAddr := getenv("TIERD_ADDR"), true
	if addr == "" {
		addr, envAddr = defaultAddr, false
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
			switch {
			case cmd.Flags().Changed("addr"):
				a.addrSource = "--addr"
			case envAddr:
				a.addrSource = "TIERD_ADDR"
			default:
				a.addrSource = "the default"
			}
			if err := checkAddr(a.addr); err != nil && !offline(cmd) {
				return usagef("%s: %q %v", strings.Replace(a.addrSource, "the default", "--addr", 1), a.addr, err)
			}
			if a.output != "table" && a.output != "json" {
				return usagef("-o/--output: %q is not an output format (table or json)", a.output)
			}
			if a.progress != "auto" && a.progress != "always" && a.progress != "never" {
				return usagef("--progress: %q is not auto, always or never", a.progress)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(flagError)
	pf := root.PersistentFlags()
	pf.StringVar(&a.addr, "addr", addr, "tierd base URL (env TIERD_ADDR)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&a.progress, "progress", "auto", "progress line on stderr: auto (on a terminal, for work that lasts over a second), always or never")
	root.AddCommand(newAppendCmd(a), newReadCmd(a), newTailCmd(a), newStreamsCmd(a), newSegmentsCmd(a), newStatusCmd(a))
	root.AddCommand(newExplainCmd(a), newMigrateCmd(a), newVerifyCmd(a))
	root.AddCommand(newPolicyCmd(a), newCatalogCmd(a))
	root.AddCommand(newSealCmd(a), newOffloadCmd(a))
	root.AddCommand(newClusterCmd(a), newTableCmd(a))
	root.SetOut(a.stdout) // before the completion command, which keeps its writer
	root.SetErr(a.stderr)
	a.setUpCompletion(root)
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes a group of verbs (policy, catalog)
// refuse a misspelled verb, with suggestions, where cobra would show the
// group's help and exit 0.
func refuseUnknownSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		if !c.HasSubCommands() || c.Runnable() {
			continue
		}
		c.Args = cobra.ArbitraryArgs
		c.SuggestionsMinimumDistance = 2
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return usagef("%s", msg)
		}
	}
}

// offline reports whether cmd works without a server (policy check,
// catalog rebuild, completion scripts), so a bad address is none of its
// business.
func offline(cmd *cobra.Command) bool {
	for ; cmd.HasParent(); cmd = cmd.Parent() {
		if cmd.Parent().HasParent() {
			continue
		}
		switch cmd.Name() {
		case "policy", "catalog", "completion", "help":
			return true
		}
	}
	return false
}

// checkAddr refuses an --addr that is no server's URL, before a request
// fails on it with the HTTP library's words.
func checkAddr(addr string) error {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr // a bare host:port, as the client takes it
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("is not a server's URL (want http://HOST:PORT)")
	}
	return nil
}

// verb wraps a command's body so run can tell its errors from usage errors.
func (a *app) verb(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		return fn(cmd, args)
	}
}
