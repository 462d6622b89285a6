package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tierd/tierd/api"
)

// Record is a record in its wire form. On append, Offset and Tier are
// ignored, a zero TS means the server's ingest time, and at most one of
// Value and ValueB64 may be set. On read, Value is set when the stored
// bytes are compact JSON, ValueB64 otherwise (Bytes returns either).
type Record = api.Record

// AppendResult is what the server assigned to an appended batch.
type AppendResult = api.AppendResult

// Append appends recs to stream as one atomic batch: all of them get
// offsets, or (on any error) none. The stream is created by its first
// append. A batch the server pushes back is an *APIError with Code
// "backpressure" and a RetryAfter.
func (c *Client) Append(ctx context.Context, stream string, recs []Record) (AppendResult, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // "<" in a value must reach the server as is
	for i := range recs {
		r := &recs[i]
		if len(r.Value) > 0 && len(r.ValueB64) > 0 {
			return AppendResult{}, fmt.Errorf("client: record %d sets both Value and ValueB64", i)
		}
		in := api.AppendRecord{Key: r.Key, Tags: r.Tags, Value: r.Value, ValueB64: r.ValueB64}
		if !r.TS.IsZero() {
			in.TS = r.TS.UTC().Format(time.RFC3339Nano)
		}
		if err := enc.Encode(&in); err != nil {
			return AppendResult{}, fmt.Errorf("client: record %d: %w", i, err)
		}
	}
	return c.AppendNDJSON(ctx, stream, &body)
}

// AppendNDJSON sends body, NDJSON in the API's append form, as one batch.
// It is for callers that already hold encoded records, like tierctl.
func (c *Client) AppendNDJSON(ctx context.Context, stream string, body io.Reader) (AppendResult, error) {
	return c.AppendNDJSONIdempotent(ctx, stream, Idempotence{}, body)
}

// AppendNDJSONIdempotent is AppendNDJSON with idem's producer headers, so
// that retrying it (Retryable) never stores the batch twice.
func (c *Client) AppendNDJSONIdempotent(ctx context.Context, stream string, idem Idempotence, body io.Reader) (AppendResult, error) {
	return c.postAppend(ctx, stream, api.MediaNDJSON, body, idem)
}

func recordsPath(stream string) string { return "/v1/streams/" + url.PathEscape(stream) + "/records" }

// Query selects records for Read. The zero Query reads from offset 0 with
// the server's default limit (1000 records); continue a long read from the
// last offset + 1.
type Query struct {
	From  uint64    // first offset
	To    *uint64   // last offset, inclusive; nil for no bound
	Since time.Time // earliest ts, inclusive; zero for no bound
	Until time.Time // ts bound, exclusive; zero for no bound
	// Key filters by key when set; a pointer to "" selects records
	// without a key.
	Key   *string
	Tag   string // only records carrying this tag; "" for no filter
	Limit int    // at most this many records, 1 to 100000; 0 for the server default
	// Wait long-polls: while the stream holds nothing at From or above,
	// the server waits up to Wait (at most a minute) for a record to be
	// appended before it answers. 0 answers at once.
	Wait time.Duration
}

// values renders q as URL parameters. Times go as integer Unix
// nanoseconds, which is exact.
func (q *Query) values() url.Values {
	v := url.Values{}
	if q.From != 0 {
		v.Set("from", strconv.FormatUint(q.From, 10))
	}
	if q.To != nil {
		v.Set("to", strconv.FormatUint(*q.To, 10))
	}
	if !q.Since.IsZero() {
		v.Set("since", strconv.FormatInt(q.Since.UnixNano(), 10))
	}
	if !q.Until.IsZero() {
		v.Set("until", strconv.FormatInt(q.Until.UnixNano(), 10))
	}
	if q.Key != nil {
		v.Set("key", *q.Key)
	}
	if q.Tag != "" {
		v.Set("tag", q.Tag)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Wait > 0 {
		v.Set("wait", q.Wait.String())
	}
	return v
}

// Read streams the records of stream matching q in offset order, decoding
// each line as it arrives. An error (an *APIError such as stream_not_found,
// or a broken connection) is the last element. Stopping the loop early
// closes the response.
func (c *Client) Read(ctx context.Context, stream string, q Query) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for line, err := range c.ReadNDJSON(ctx, stream, q) {
			if err != nil {
				yield(Record{}, err)
				return
			}
			rec, err := decodeRecord(line)
			if err != nil {
				yield(Record{}, err)
				return
			}
			if !yield(rec, nil) {
				return
			}
		}
	}
}

// ReadNDJSON is Read without decoding: it yields each record line exactly
// as the server sent it, without its newline, valid only until the next
// iteration. tierctl prints these.
func (c *Client) ReadNDJSON(ctx context.Context, stream string, q Query) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		resp, err := c.do(ctx, http.MethodGet, recordsPath(stream), q.values(), nil)
		if err != nil {
			yield(nil, err)
			return
		}
		defer resp.Body.Close()
		for line, err := range lines(resp.Body) {
			if !yield(line, err) || err != nil {
				return
			}
		}
	}
}

// maxLine bounds one line of a read: a 1 MiB value as base64 with its
// key, tags and framing fits easily; a server that sends more is broken.
const maxLine = 64 << 20

// lines splits a read response body into record lines. A line of the
// form {"error":{…}} (the server's way to end a read that failed after it
// began) becomes an *APIError, and a body that ends inside a line
// (a connection cut short) an io.ErrUnexpectedEOF, so a caller can always
// tell a complete read from a broken one.
func lines(body io.Reader) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		br := bufio.NewReaderSize(body, 64<<10)
		var line []byte
		for {
			line = line[:0]
			var err error
			for {
				var chunk []byte
				chunk, err = br.ReadSlice('\n')
				line = append(line, chunk...)
				if len(line) > maxLine {
					yield(nil, fmt.Errorf("client: a response line is longer than %d bytes", maxLine))
					return
				}
				if !errors.Is(err, bufio.ErrBufferFull) {
					break
				}
			}
			switch {
			case err == io.EOF && len(line) == 0:
				return
			case err == io.EOF:
				yield(nil, fmt.Errorf("client: response ended inside a line: %w", io.ErrUnexpectedEOF))
				return
			case err != nil:
				yield(nil, fmt.Errorf("client: reading response: %w", err))
				return
			}
			line = line[:len(line)-1]
			if bytes.HasPrefix(line, []byte(`{"error":`)) {
				yield(nil, lineError(line))
				return
			}
			if !yield(line, nil) {
				return
			}
		}
	}
}

// lineError decodes an error line that ended a read.
func lineError(line []byte) error {
	var eb api.ErrorBody
	if err := json.Unmarshal(line, &eb); err != nil || eb.Error == nil {
		return fmt.Errorf("client: undecodable error line %.200q", line)
	}
	return &APIError{Status: http.StatusOK, Code: eb.Error.Code, Message: eb.Error.Message}
}

// decodeRecord decodes one record line into a Record that owns its bytes.
func decodeRecord(line []byte) (Record, error) {
	var out Record
	if err := json.Unmarshal(line, &out); err != nil {
		return Record{}, fmt.Errorf("client: decoding record line %.200q: %w", line, err)
	}
	return out, nil
}
