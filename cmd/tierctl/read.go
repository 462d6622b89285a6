package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

// pageLimit is the most records the server sends for one read: longer
// reads are paged, each request going on from the last offset + 1.
const pageLimit = 100000

// defaultReadCap is how many records a read without --limit, --to,
// --until or --all prints: a glance at a stream, not an export. When it
// cuts the read, a notice on stderr says so.
const defaultReadCap = 1000

// readPlan is one read as the flags ask for it.
type readPlan struct {
	q client.Query
	// limit caps the records printed; 0 for no cap.
	limit int
	// defaultCap is set when limit is defaultReadCap because nothing else
	// bounds the read: cutting it is then said on stderr.
	defaultCap bool
	all        bool
	// page is the most records one request asks for: pageLimit, or less
	// in tests that page through a few records.
	page int
}

func newReadCmd(a *app) *cobra.Command {
	var (
		p            readPlan
		from, to     offsetValue
		since, until string
		key          string
		limit        int
	)
	cmd := &cobra.Command{
		Use:   "read STREAM",
		Short: "Read records as NDJSON",
		Long: `read prints STREAM's matching records in offset order, one JSON object per
line, exactly as the server sends them (-o does not apply).

How much it prints:
  --limit N        at most N records.
  --to, --until    every record up to that bound, however many.
  --all            the whole stream as it is when the read starts: it ends
                   at the stream's next offset of that moment, so records
                   appended meanwhile are left for the next read. An export
                   that stops (an error, Ctrl-C) says on stderr where to
                   resume with --from.
  otherwise        the first 1000 records; when there are more, a notice on
                   stderr says how many were printed and how to go on.
Reads longer than the server's 100000 records per request are paged, each
request going on where the last one stopped: every record once, in order.
A long read into a file or pipe shows progress on stderr (--progress).

--since and --until take RFC 3339 (2026-11-22T10:00:00.5Z) or integer Unix
nanoseconds; --until is exclusive. --key "" selects records without a key.`,
		Example: `  tierctl read trades --limit 10
  tierctl read trades --from 1000 --to 1999
  tierctl read trades --all > trades.ndjson
  tierctl read trades --all --from 52000 >> trades.ndjson   # resume an export
  tierctl read trades --since 2026-11-22T10:00:00Z --until 2026-11-22T11:00:00Z --key IF2406
  tierctl read trades --tag fill --all | jq .value`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			p.q.From = uint64(from)
			if fl.Changed("to") {
				t := uint64(to)
				if t < p.q.From {
					return usagef("--to %d is below --from %d", t, p.q.From)
				}
				p.q.To = &t
			}
			if fl.Changed("key") {
				p.q.Key = &key
			}
			var err error
			if p.q.Since, err = parseTime("--since", since); err != nil {
				return err
			}
			if p.q.Until, err = parseTime("--until", until); err != nil {
				return err
			}
			if !p.q.Since.IsZero() && !p.q.Until.IsZero() && !p.q.Until.After(p.q.Since) {
				return usagef("--until %s is not after --since %s", until, since)
			}
			switch {
			case p.all && fl.Changed("limit"):
				return usagef("--all and --limit: give one (--all reads the whole stream, --limit caps it)")
			case fl.Changed("limit"):
				p.limit = limit
			case !p.all && p.q.To == nil && p.q.Until.IsZero():
				p.limit, p.defaultCap = defaultReadCap, true
			}
			return a.read(cmd.Context(), args[0], p)
		}),
	}
	fl := cmd.Flags()
	fl.Var(&from, "from", "first offset")
	fl.Var(&to, "to", "last offset, inclusive (default: no bound)")
	fl.StringVar(&since, "since", "", "earliest ts (inclusive): RFC 3339 or Unix ns")
	fl.StringVar(&until, "until", "", "ts bound (exclusive): RFC 3339 or Unix ns")
	fl.StringVar(&key, "key", "", "only records with this key")
	fl.StringVar(&p.q.Tag, "tag", "", "only records carrying this tag")
	fl.Var(newCount(&limit, 0, 1, "a number of records"), "limit", "at most this many records (default: 1000 and a notice when there are more; no cap with --to, --until or --all)")
	fl.BoolVar(&p.all, "all", false, "the whole stream, up to its next offset when the read starts (paged)")
	return cmd
}

// read prints the records p selects, paging through the server's
// per-request limit.
func (a *app) read(ctx context.Context, stream string, p readPlan) error {
	c := a.client()
	about := subject{stream: stream}
	if p.all {
		next, err := nextOffset(ctx, c, stream)
		if err != nil {
			return a.about(about, err)
		}
		if next == 0 || next-1 < p.q.From {
			return nil // nothing there yet
		}
		if p.q.To == nil || *p.q.To > next-1 {
			last := next - 1
			p.q.To = &last
		}
	}
	// Progress is for a read into a file or a pipe: on a terminal the
	// records scrolling by are the progress.
	show := a.showProgress() && (a.progress == "always" || !isTerminal(a.stdout))
	prog := a.startProgress("read "+stream, "records", show)
	defer prog.done()
	var w io.Writer = a.stdout
	if prog != nil && isTerminal(a.stdout) {
		w = &clearingWriter{w: w, p: prog}
	}
	out := bufio.NewWriterSize(w, 64<<10)
	r := pager{q: p.q, printed: 0}
	err := r.run(ctx, c, stream, p, out, prog)
	if ferr := out.Flush(); err == nil && ferr != nil {
		return ferr
	}
	prog.done()
	switch {
	case err == nil && r.more:
		a.notef("tierctl: printed the first %d records of %s (offsets %d–%d); there are more: go on with --from %d, or use --limit N, --to OFFSET or --all",
			r.printed, stream, r.first, r.last, r.last+1)
		return nil
	case err == nil:
		return nil
	case r.printed > 0:
		a.notef("tierctl: stopped after offset %d of %s (%d records printed); resume with --from %d", r.last, stream, r.printed, r.last+1)
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	return a.about(about, err)
}

// pager reads a selection page by page.
type pager struct {
	q           client.Query
	printed     int
	first, last uint64 // offsets of the first and last record printed
	more        bool   // the default cap cut the read: records follow
}

func (r *pager) run(ctx context.Context, c *client.Client, stream string, p readPlan, out *bufio.Writer, prog *progress) error {
	base := r.q.From // for the progress bar: offsets done of the range
	for {
		page := pageLimit
		if p.page > 0 {
			page = p.page
		}
		switch {
		case p.defaultCap:
			page = min(page, p.limit+1-r.printed) // one past the cap tells whether there are more
		case p.limit > 0:
			page = min(page, p.limit-r.printed)
		}
		r.q.Limit = page
		n := 0
		for line, err := range c.ReadNDJSON(ctx, stream, r.q) {
			if err != nil {
				return err
			}
			if p.defaultCap && r.printed == p.limit {
				r.more = true
				return nil
			}
			off, err := lineOffset(line)
			if err != nil {
				return err
			}
			out.Write(line)
			if err := out.WriteByte('\n'); err != nil {
				return err
			}
			if r.printed == 0 {
				r.first, base = off, off
			}
			r.printed++
			r.last = off
			n++
			if r.q.To != nil && *r.q.To >= base {
				prog.update(int64(off-base+1), int64(*r.q.To-base+1))
			} else {
				prog.update(int64(r.printed), 0)
			}
		}
		switch {
		case n < page: // the server had no more
			return nil
		case p.limit > 0 && !p.defaultCap && r.printed >= p.limit:
			return nil
		case r.q.To != nil && r.last >= *r.q.To, r.last == math.MaxUint64:
			return nil
		}
		r.q.From = r.last + 1
	}
}

// lineOffset reads a record line's offset: lines begin {"offset":N, so
// the number is taken from there without decoding the whole record.
func lineOffset(line []byte) (uint64, error) {
	const prefix = `{"offset":`
	if rest, ok := bytes.CutPrefix(line, []byte(prefix)); ok {
		end := bytes.IndexAny(rest, ",}")
		if end > 0 {
			if n, err := strconv.ParseUint(string(rest[:end]), 10, 64); err == nil {
				return n, nil
			}
		}
	}
	var rec struct {
		Offset *uint64 `json:"offset"`
	}
	if err := json.Unmarshal(line, &rec); err != nil || rec.Offset == nil {
		return 0, errors.New("the server sent a record line without an offset")
	}
	return *rec.Offset, nil
}

// clearingWriter erases the progress line before records go to the same
// terminal (--progress always with stdout on it).
type clearingWriter struct {
	w io.Writer
	p *progress
}

func (c *clearingWriter) Write(b []byte) (int, error) {
	c.p.clear()
	return c.w.Write(b)
}

// parseTime reads a time flag as the API accepts it: RFC 3339 or integer
// Unix nanoseconds. Empty means no bound.
func parseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(0, ns), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, usagef("%s: %q is not a time (RFC 3339 like 2026-11-22T10:00:00Z, or Unix nanoseconds)", flag, s)
	}
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return time.Time{}, usagef("%s: %q is outside the years 1678–2262 that tierd's timestamps hold", flag, s)
	}
	return t, nil
}
