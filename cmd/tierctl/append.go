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

func newAppendCmd(a *app) *cobra.Command {
	var (
		file       string
		batch      int
		batchBytes int
		retries    int
	)
	cmd := &cobra.Command{
		Use:   "append STREAM",
		Short: "Append NDJSON records from stdin or a file",
		Long: `append sends NDJSON records, one JSON object per line in the API's append
form ({"key":…,"ts":…,"tags":[…],"value":…} or "value_b64"), to STREAM.
Lines go unchanged in batches of --batch lines (and at most --batch-bytes);
each batch is atomic, the whole input is not: if a batch is refused, the
batches before it stay appended and are reported on stderr.

A batch that fails for a reason that may pass (the server unreachable or
restarting, backpressure, a gateway error) is retried, up to --retries
times with backoff, saying so on stderr. Every batch carries this run's
producer ID and its number, so a retry of a batch the server already
stored (its answer lost) is not stored twice.`,
		Example: `  tierctl append trades < trades.ndjson
  tierctl append trades --file trades.ndjson --batch 5000
  echo '{"key":"IF2406","value":{"px":3501.2}}' | tierctl append trades`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			if batch < 1 {
				return usagef("--batch %d: want at least 1", batch)
			}
			in, size := a.stdin, int64(0) // size 0: unknown, no ETA
			if file != "" && file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
					size = fi.Size()
				}
				in = f
			}
			return a.appendAll(cmd, args[0], in, size, batch, batchBytes, retries)
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read records from this file instead of stdin (- for stdin)")
	cmd.Flags().IntVar(&batch, "batch", 1000, "records per request")
	cmd.Flags().IntVar(&batchBytes, "batch-bytes", 16<<20, "bytes per request, so a batch stays under the server's body limit")
	cmd.Flags().IntVar(&retries, "retries", 30, "retries of a batch that failed for a reason that may pass (0: none)")
	return cmd
}

// appendAll streams the input in batches, holding one batch in memory.
// size, when known, is the input's length, for the progress line.
func (a *app) appendAll(cmd *cobra.Command, stream string, in io.Reader, size int64, batch, batchBytes, retries int) error {
	c := a.client()
	idem := client.Idempotence{ProducerID: client.NewProducerID()}
	sum := appendSummary{Stream: stream}
	cr := &countingReader{r: in}
	br := bufio.NewReaderSize(cr, 64<<10)
	prog := a.newProgress("append "+stream, "bytes")
	defer prog.done()
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
		res, err := a.appendRetrying(cmd.Context(), c, stream, idem, body.Bytes(), retries)
		if err != nil {
			a.reportPartial(&sum, recLines[0], recLines[len(recLines)-1])
			return inputLineError(err, recLines)
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
				if len(recLines) > 0 && body.Len()+len(line) > batchBytes {
					if err := send(); err != nil {
						return err
					}
				}
				body.Write(line)
				if line[len(line)-1] != '\n' {
					body.WriteByte('\n')
				}
				recLines = append(recLines, lineNo)
				if len(recLines) >= batch {
					if err := send(); err != nil {
						return err
					}
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			a.reportPartial(&sum, lineNo+1, lineNo+1)
			return fmt.Errorf("reading input at line %d: %w", lineNo+1, err)
		}
	}
	if err := send(); err != nil {
		return err
	}
	if sum.Count == 0 {
		return errors.New("the input holds no records")
	}
	if a.output == "json" {
		return writeJSON(a.stdout, sum)
	}
	t := newTable(a.stdout, "STREAM", "FIRST_OFFSET", "LAST_OFFSET", "COUNT", "BATCHES")
	t.row(sum.Stream, sum.FirstOffset, sum.LastOffset, sum.Count, sum.Batches)
	return t.flush()
}

// inputLineError rewrites the server's "line N: …" (N counts the lines of
// one batch) to name the line of the input the operator can open.
func inputLineError(err error, recLines []int) error {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return err
	}
	var k int
	var rest string
	if n, _ := fmt.Sscanf(ae.Message, "line %d:", &k); n != 1 || k < 1 || k > len(recLines) {
		return err
	}
	_, rest, _ = strings.Cut(ae.Message, ":")
	ae.Message = fmt.Sprintf("input line %d:%s", recLines[k-1], rest)
	return ae
}

// reportPartial tells the operator what a failed append left behind: the
// batches before the failure are appended and stay so.
func (a *app) reportPartial(sum *appendSummary, from, to int) {
	msg := fmt.Sprintf("tierctl: the batch of input lines %d–%d was not appended", from, to)
	if sum.Count > 0 {
		msg += fmt.Sprintf("; %d records in %d earlier batches were (offsets %d–%d)", sum.Count, sum.Batches, sum.FirstOffset, sum.LastOffset)
	}
	fmt.Fprintln(a.stderr, msg)
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

// appendRetrying sends one batch, retrying what client.Retryable allows
// with backoff (100 ms doubling to 5 s) and a note on stderr. The batch's
// Idempotence makes a retry of a stored batch harmless.
func (a *app) appendRetrying(ctx context.Context, c *client.Client, stream string, idem client.Idempotence, body []byte, retries int) (client.AppendResult, error) {
	wait := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, err := c.AppendNDJSONIdempotent(ctx, stream, idem, bytes.NewReader(body))
		if err == nil || attempt >= retries || !client.Retryable(err) || ctx.Err() != nil {
			return res, err
		}
		fmt.Fprintf(a.stderr, "tierctl: batch %d: %v; retrying in %s (%d of %d)\n", idem.Seq, err, wait, attempt+1, retries)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}
