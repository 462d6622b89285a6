package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
	"github.com/tierd/tierd/policy"
)

// appendSummary is what append reports: the offsets of everything it
// appended, over all its batches.
type appendSummary struct {
	Stream      string `json:"stream"`
	FirstOffset uint64 `json:"first_offset"`
	LastOffset  uint64 `json:"last_offset"`
	Count       int    `json:"count"`
	Batches     int    `json:"batches"`
}

func (s *appendSummary) add(r client.AppendResult) {
	if s.Count == 0 {
		s.FirstOffset = r.FirstOffset
	}
	s.LastOffset = r.LastOffset
	s.Count += r.Count
	s.Batches++
}

// appendOptions are append's flags.
type appendOptions struct {
	batch      int
	batchBytes int64
	retries    int
	// waitForServer is how long append keeps trying a server it has not
	// reached yet (a wrong --addr, a tierd still starting) before it gives
	// up.
	waitForServer time.Duration
}

func newAppendCmd(a *app) *cobra.Command {
	var (
		file string
		o    appendOptions
	)
	cmd := &cobra.Command{
		Use:   "append STREAM",
		Short: "Append NDJSON records from stdin or a file",
		Long: `append sends NDJSON records, one JSON object per line in the API's append
form ({"key":…,"ts":…,"tags":[…],"value":…} or "value_b64"), to STREAM.
Lines go unchanged in batches of --batch lines (and at most --batch-bytes);
each batch is atomic, the whole input is not: if a batch is refused, the
batches before it stay appended and are reported on stderr.

A server that cannot be reached at all (connection refused: a wrong
--addr, tierd not running) fails the append at once, or after
--wait-for-server when it is set (for a tierd that is still starting).
Once the server has answered, a batch that fails for a reason that may
pass (the server restarting, backpressure, a gateway error) is retried,
up to --retries times with backoff, with one short line on stderr each
time. Every batch carries this run's producer ID and its number, so a
retry of a batch the server already stored (its answer lost) is not
stored twice.`,
		Example: `  tierctl append trades < trades.ndjson
  tierctl append trades --file trades.ndjson --batch 5000
  tierctl append trades --file trades.ndjson --wait-for-server 30s   # tierd still starting
  echo '{"key":"IF2406","value":{"px":3501.2}}' | tierctl append trades`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			in, size := a.stdin, int64(0) // size 0: unknown, no ETA
			if file != "" && file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("--file: %w", err)
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
					size = fi.Size()
				}
				in = f
			}
			sum, err := a.appendAll(cmd.Context(), args[0], in, size, o)
			a.prog.done()
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, sum)
			}
			t := newTable(a.stdout, "STREAM", "FIRST_OFFSET", "LAST_OFFSET", "COUNT", "BATCHES")
			t.row(sum.Stream, sum.FirstOffset, sum.LastOffset, sum.Count, sum.Batches)
			return t.flush()
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&file, "file", "f", "", "read records from this file instead of stdin (- for stdin)")
	fl.Var(newCount(&o.batch, 1000, 1, "a number of records"), "batch", "records per request")
	fl.Var(newSize(&o.batchBytes, 16<<20, 1), "batch-bytes", "bytes per request, so a batch stays under the server's body limit")
	fl.Var(newCount(&o.retries, 30, 0, "a number of retries"), "retries", "retries of a batch that failed for a reason that may pass, once the server has answered (0: none)")
	fl.Var(newDuration(&o.waitForServer, 0, 0, 24*time.Hour), "wait-for-server", "keep trying a server that refuses connections this long before giving up (0: give up at once)")
	return cmd
}

// appendAll streams the input in batches, holding one batch in memory,
// and returns what it appended. size, when known, is the input's length,
// for the progress line.
func (a *app) appendAll(ctx context.Context, stream string, in io.Reader, size int64, o appendOptions) (appendSummary, error) {
	c := a.client()
	idem := client.Idempotence{ProducerID: client.NewProducerID()}
	sum := appendSummary{Stream: stream}
	cr := &countingReader{r: in}
	br := bufio.NewReaderSize(cr, 64<<10)
	prog := a.newProgress("append "+stream, "bytes")
	r := &retrier{a: a, c: c, stream: stream, opts: o, started: time.Now()}
	var (
		body     bytes.Buffer
		recLines []int // the input line of each record in body
		lineNo   int   // input lines read
	)
	send := func() error {
		if len(recLines) == 0 {
			return nil
		}
		idem.Seq++
		res, maybeStored, err := r.send(ctx, idem, body.Bytes())
		if err != nil {
			if r.reached || sum.Count > 0 {
				// (Without a server there is nothing to report but that.)
				a.reportPartial(&sum, recLines[0], recLines[len(recLines)-1], maybeStored)
			}
			if ctx.Err() != nil {
				return errInterrupted
			}
			if lerr, ok := inputLineError(err, recLines); ok {
				return lerr // about an input line, which it names
			}
			return a.about(subject{stream: stream}, err)
		}
		sum.add(res)
		body.Reset()
		recLines = recLines[:0]
		prog.update(cr.n-int64(br.Buffered()), size)
		return nil
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			if len(bytes.TrimSpace(line)) > 0 {
				if len(recLines) > 0 && int64(body.Len()+len(line)) > o.batchBytes {
					if err := send(); err != nil {
						return sum, err
					}
				}
				body.Write(line)
				if line[len(line)-1] != '\n' {
					body.WriteByte('\n')
				}
				recLines = append(recLines, lineNo)
				if len(recLines) >= o.batch {
					if err := send(); err != nil {
						return sum, err
					}
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			a.reportPartial(&sum, lineNo+1, lineNo+1, false)
			return sum, fmt.Errorf("reading input at line %d: %w", lineNo+1, err)
		}
	}
	if err := send(); err != nil {
		return sum, err
	}
	if sum.Count == 0 {
		return sum, errors.New("the input holds no records")
	}
	return sum, nil
}

// inputLineError rewrites the server's "line N: …" (N counts the lines of
// one batch) to name the line of the input the operator can open; ok is
// false for an error that is not about a line.
func inputLineError(err error, recLines []int) (error, bool) {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return err, false
	}
	var k int
	if n, _ := fmt.Sscanf(ae.Message, "line %d:", &k); n != 1 || k < 1 || k > len(recLines) {
		return err, false
	}
	_, rest, _ := strings.Cut(ae.Message, ":")
	e := *ae
	e.Message = fmt.Sprintf("input line %d:%s", recLines[k-1], rest)
	return &e, true
}

// reportPartial tells the operator what a failed append left behind: the
// batches before the failure are appended and stay so; the failed one
// is not, unless its answer was lost (maybeStored), when only a read
// can tell.
func (a *app) reportPartial(sum *appendSummary, from, to int, maybeStored bool) {
	lines := fmt.Sprintf("input lines %d–%d", from, to)
	if from == to {
		lines = fmt.Sprintf("input line %d", from)
	}
	msg := fmt.Sprintf("tierctl: the batch of %s was not appended", lines)
	if maybeStored {
		msg = fmt.Sprintf("tierctl: the batch of %s may have been appended: its answer was lost", lines)
	}
	if sum.Count > 0 {
		msg += fmt.Sprintf("; %d records in %d earlier batches were (offsets %d–%d)", sum.Count, sum.Batches, sum.FirstOffset, sum.LastOffset)
	}
	a.notef("%s", msg)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// retrier sends append's batches, retrying what may pass. It tells a
// server it has never reached (a wrong address: give up at once, or after
// --wait-for-server) from one that answered before and went away (a
// restart: retry up to --retries times).
type retrier struct {
	a       *app
	c       *client.Client
	stream  string
	opts    appendOptions
	started time.Time
	reached bool // the server has answered, or taken a request, in this run
	waiting bool // "waiting for the server" has been said
}

// send sends one batch, retrying what client.Retryable allows with
// backoff (100 ms doubling to 5 s), one short line on stderr per retry.
// The batch's Idempotence makes a retry of a stored batch harmless.
// maybeStored is set when an attempt may have reached the server and its
// answer was lost.
func (r *retrier) send(ctx context.Context, idem client.Idempotence, body []byte) (res client.AppendResult, maybeStored bool, err error) {
	wait := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, err = r.c.AppendNDJSONIdempotent(ctx, r.stream, idem, bytes.NewReader(body))
		var ae *client.APIError
		switch {
		case err == nil, errors.As(err, &ae):
			r.reached = true
		case !dialFailed(err):
			r.reached, maybeStored = true, true // sent, answer lost
		}
		if err == nil || !client.Retryable(err) || ctx.Err() != nil {
			return res, maybeStored, err
		}
		if !r.reached {
			// Nothing here answers: a wrong address, or tierd not up yet.
			left := r.opts.waitForServer - time.Since(r.started)
			if left <= 0 {
				return res, false, err
			}
			if !r.waiting {
				var ue *unreachableError
				if errors.As(r.a.explain(err), &ue) {
					r.a.notef("tierctl: %s; waiting up to %s for it (--wait-for-server)", ue.short(), policy.FormatDuration(r.opts.waitForServer))
				}
				r.waiting = true
			}
			if !sleepCtx(ctx, min(wait, left)) {
				return res, false, ctx.Err()
			}
			wait = min(2*wait, time.Second)
			attempt = -1 // --retries counts from the first answer
			continue
		}
		if attempt >= r.opts.retries {
			return res, maybeStored, err
		}
		r.a.notef("tierctl: batch %d: %s; retry %d of %d in %s", idem.Seq, shortCause(err), attempt+1, r.opts.retries, policy.FormatDuration(wait))
		if !sleepCtx(ctx, wait) {
			return res, maybeStored, ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// shortCause says in a few words why a request failed, for a retry line:
// "connection refused", "backpressure (HTTP 503)".
func shortCause(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return fmt.Sprintf("%s (HTTP %d)", ae.Code, ae.Status)
	}
	return netCause(err)
}

// sleepCtx waits d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
