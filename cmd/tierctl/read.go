package main

import (
	"bufio"
	"math"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/client"
)

// maxReadLimit is the most records the server sends for one read.
const maxReadLimit = 100000

func newReadCmd(a *app) *cobra.Command {
	var (
		q            client.Query
		to           uint64
		since, until string
		key          string
	)
	cmd := &cobra.Command{
		Use:   "read STREAM",
		Short: "Read records as NDJSON",
		Long: `read prints STREAM's matching records in offset order, one JSON object per
line, exactly as the server sends them (-o does not apply). Without --limit
the server's default of 1000 records applies; continue a long read with
--from set to the last offset + 1.

--since and --until take RFC 3339 (2026-11-22T10:00:00.5Z) or integer Unix
nanoseconds; --until is exclusive. --key "" selects records without a key.`,
		Example: `  tierctl read trades --limit 10
  tierctl read trades --from 1000 --to 1999
  tierctl read trades --since 2026-11-22T10:00:00Z --until 2026-11-22T11:00:00Z --key IF2406
  tierctl read trades --tag fill --limit 100000 | jq .value`,
		Args: exactArgs("STREAM"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			if fl.Changed("limit") && (q.Limit < 1 || q.Limit > maxReadLimit) {
				return usagef("--limit %d: want 1 to %d", q.Limit, maxReadLimit)
			}
			if fl.Changed("to") {
				q.To = &to
			}
			if fl.Changed("key") {
				q.Key = &key
			}
			var err error
			if q.Since, err = parseTime("--since", since); err != nil {
				return err
			}
			if q.Until, err = parseTime("--until", until); err != nil {
				return err
			}
			out := bufio.NewWriterSize(a.stdout, 64<<10)
			for line, err := range a.client().ReadNDJSON(cmd.Context(), args[0], q) {
				if err != nil {
					out.Flush() // what arrived before the error is printed
					return err
				}
				out.Write(line)
				if err := out.WriteByte('\n'); err != nil {
					return err
				}
			}
			return out.Flush()
		}),
	}
	fl := cmd.Flags()
	fl.Uint64Var(&q.From, "from", 0, "first offset")
	fl.Uint64Var(&to, "to", 0, "last offset, inclusive (default: no bound)")
	fl.StringVar(&since, "since", "", "earliest ts (inclusive): RFC 3339 or Unix ns")
	fl.StringVar(&until, "until", "", "ts bound (exclusive): RFC 3339 or Unix ns")
	fl.StringVar(&key, "key", "", "only records with this key")
	fl.StringVar(&q.Tag, "tag", "", "only records carrying this tag")
	fl.IntVar(&q.Limit, "limit", 0, "at most this many records, 1 to 100000 (default: the server's, 1000)")
	return cmd
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
		return time.Time{}, usagef("%s %q: want RFC 3339 (2026-11-22T10:00:00Z) or Unix nanoseconds", flag, s)
	}
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return time.Time{}, usagef("%s %q: outside the years 1678–2262 that tierd's timestamps hold", flag, s)
	}
	return t, nil
}
