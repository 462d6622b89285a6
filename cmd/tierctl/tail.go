package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

// tailBatch is the most records one follow request asks for.
const tailBatch = 10000

func newTailCmd(a *app) *cobra.Command {
	var (
		n      int
		follow bool
		wait   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "tail STREAM",
		Short: "Print a stream's last records, and with -f follow new ones as they arrive",
		Long: `tail prints the last -n records of STREAM (default 10) as NDJSON, exactly as
read prints them. With -f it then waits for new records and prints each as
soon as it is durable, until interrupted (Ctrl-C). Following long-polls the
server (GET …/records?wait=), so an idle stream costs one request per
--wait; a record appears within milliseconds of its acknowledgement.
Ctrl-C ends it quietly, with exit 0.

If the server goes away (or answers 5xx) while following, tail says so on
stderr and keeps retrying every second; it resumes at the next offset it has not printed,
so nothing is printed twice or skipped. Records that retention deletes
before tail reads them are reported on stderr and skipped.`,
		Example: `  tierctl tail trades
  tierctl tail trades -n 0 -f
  tierctl tail trades -f | jq -c 'select(.key == "IF2406")'`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			err := a.tail(ctx, args[0], uint64(n), follow, wait)
			if ctx.Err() != nil {
				if follow {
					return nil // Ctrl-C is how following ends: nothing to say
				}
				return errInterrupted
			}
			return a.about(subject{stream: args[0]}, err)
		}),
	}
	fl := cmd.Flags()
	cmd.Flags().VarP(newCount(&n, 10, 0, "a number of records"), "lines", "n", "how many of the last records to print first")
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing new records as they are appended")
	fl.Var(newDuration(&wait, 30*time.Second, time.Millisecond, time.Minute), "wait", "with -f: how long one long-poll waits for new records (1ms to 1m)")
	return cmd
}

func (a *app) tail(ctx context.Context, stream string, n uint64, follow bool, wait time.Duration) error {
	c := a.client()
	next, err := nextOffset(ctx, c, stream)
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(a.stdout, 64<<10)
	defer out.Flush()
	cursor := next - min(n, next)
	if n > 0 && next > 0 {
		to := next - 1
		if cursor, err = a.printRange(ctx, c, out, stream, cursor, &to, 0); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	cursor = max(cursor, next)
	down := false // the server is unreachable; said once on stderr
	for ctx.Err() == nil {
		got, err := a.printRange(ctx, c, out, stream, cursor, nil, wait)
		switch {
		case err == nil:
			if down {
				fmt.Fprintln(a.stderr, "tierctl: reconnected")
				down = false
			}
			cursor = got
		case ctx.Err() != nil:
		case !retryable(err):
			return err
		default:
			if !down {
				fmt.Fprintf(a.stderr, "tierctl: %s; retrying every second\n", tailDown(a.explain(err)))
				down = true
			}
			cursor = got // what was printed before the connection broke stays printed
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil // interrupted: a normal way to stop following
}

// printRange prints records from offset from (to *to, if set; long-polling
// up to wait when set) and returns the offset after the last one printed,
// from when none was. Records deleted by retention meanwhile are skipped
// with a note on stderr.
func (a *app) printRange(ctx context.Context, c *client.Client, out *bufio.Writer, stream string, from uint64, to *uint64, wait time.Duration) (uint64, error) {
	q := client.Query{From: from, To: to, Wait: wait, Limit: tailBatch}
	next := from
	for line, err := range c.ReadNDJSON(ctx, stream, q) {
		if err != nil {
			out.Flush()
			var ae *client.APIError
			if errors.As(err, &ae) && ae.Code == "expired" && next == from {
				first, err := a.skipExpired(ctx, c, stream, from, to == nil, ae)
				if err != nil {
					return from, err
				}
				if to != nil && first > *to {
					return first, nil // the whole range is gone
				}
				return a.printRange(ctx, c, out, stream, first, to, wait)
			}
			return next, err
		}
		var rec struct {
			Offset uint64 `json:"offset"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return next, fmt.Errorf("reading %s: a record line without an offset: %w", stream, err)
		}
		out.Write(line)
		out.WriteByte('\n')
		next = rec.Offset + 1
	}
	return next, out.Flush()
}

// skipExpired moves a read that starts below retention to the first
// retained offset; a follower that fell behind says on stderr what it
// missed.
func (a *app) skipExpired(ctx context.Context, c *client.Client, stream string, from uint64, following bool, ae *client.APIError) (uint64, error) {
	segs, err := c.Segments(ctx, stream)
	if err != nil {
		return from, err
	}
	for _, s := range segs {
		if s.Tombstoned.IsZero() && s.Last >= from {
			first := max(s.Base, from)
			if first == from {
				return from, ae // the server and its listing disagree: give up rather than loop
			}
			if following {
				fmt.Fprintf(a.stderr, "tierctl: offsets [%d, %d) of %s were deleted by retention before they were read\n", from, first, stream)
			}
			return first, nil
		}
	}
	return from, ae
}

// tailDown says in one short line why following stopped for now.
func tailDown(err error) string {
	var ue *unreachableError
	if errors.As(err, &ue) {
		return ue.short()
	}
	return err.Error()
}

// nextOffset is the offset stream's next record will get.
func nextOffset(ctx context.Context, c *client.Client, stream string) (uint64, error) {
	streams, err := c.Streams(ctx)
	if err != nil {
		return 0, err
	}
	for _, s := range streams {
		if s.Name == stream {
			return s.NextOffset, nil
		}
	}
	return 0, &client.APIError{Status: 404, Code: "stream_not_found", Message: fmt.Sprintf("no stream %q", stream)} // about names the server
}

// retryable tells the errors a follower waits out: the server is
// unreachable, or answers 5xx (shutting down, storage trouble), rather
// than refusing the request itself.
func retryable(err error) bool {
	var ae *client.APIError
	return !errors.As(err, &ae) || ae.Status >= 500
}
