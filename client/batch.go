package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/tiers"
)

// ErrInvalidRecord reports a record the client cannot send: Value and
// ValueB64 both set, a Value that is not JSON, a TS outside the years
// 1678–2262, or a key, tag or value over tierd's limits (the error then
// also wraps the tiers sentinel, such as tiers.ErrKeyTooLarge).
var ErrInvalidRecord = errors.New("client: invalid record")

// errUnreadableAck marks a 2xx answer to an append whose body could not be
// read or decoded: the batch is durable, but its offsets are unknown.
// Sending it again stores it twice unless the append carries Idempotence,
// as the Producer's do.
var errUnreadableAck = errors.New("client: the server took the batch but its answer was unreadable")

// errUnreadableIdempotentAck is errUnreadableAck from a server that echoed
// the batch's producer sequence: it deduplicates, so a retry is safe.
var errUnreadableIdempotentAck = errors.New("client: the server took the batch but its answer was unreadable (retry is safe: the server deduplicates)")

// AppendBatch is Append in the compact binary batch encoding
// (Content-Type application/vnd.tierd.batch, docs/format/batch.md) instead
// of NDJSON: no JSON escaping or base64 on either side, and a CRC32C over
// the body. The semantics are Append's: one atomic batch; a zero TS means
// the server's ingest time; a JSON Value is stored compacted, exactly as
// Append would store it.
func (c *Client) AppendBatch(ctx context.Context, stream string, recs []Record) (AppendResult, error) {
	return c.AppendBatchIdempotent(ctx, stream, Idempotence{}, recs)
}

// Idempotence makes an append safe to retry: the producer's ID (32
// lowercase hex digits, NewProducerID) and the batch's sequence number, at
// least 1 and larger than the producer's previous batch to the stream (gaps
// are fine, so one counter may serve every stream); a retry repeats it. The server remembers each
// producer's last batch per stream and answers its retry with the offsets
// it already got (AppendResult.Duplicate) instead of appending it twice;
// an older number is refused (409 producer_sequence). The zero value is a
// plain append.
type Idempotence struct {
	ProducerID string
	Seq        uint64
}

// NewProducerID returns a random producer ID for Idempotence.
func NewProducerID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

// AppendBatchIdempotent is AppendBatch with idem's producer headers, so
// that retrying it after any error (a timeout, a dropped connection, a
// restarted server) never stores the batch twice.
func (c *Client) AppendBatchIdempotent(ctx context.Context, stream string, idem Idempotence, recs []Record) (AppendResult, error) {
	var (
		enc     tiers.BatchEncoder
		scratch bytes.Buffer
	)
	for i := range recs {
		// The server applies its own value cap; the client does not know it.
		if err := addRecord(&enc, &recs[i], &scratch, math.MaxInt); err != nil {
			return AppendResult{}, fmt.Errorf("client: record %d: %w", i, err)
		}
	}
	return c.postBatch(ctx, stream, enc.Finish(), idem)
}

// The instants an int64 of Unix nanoseconds can hold.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// addRecord validates r as the server would and adds it to enc. A JSON
// Value is compacted through scratch first, which is what the NDJSON path
// stores too. maxValue caps the stored value bytes.
func addRecord(enc *tiers.BatchEncoder, r *Record, scratch *bytes.Buffer, maxValue int) error {
	tr := tiers.Record{Key: r.Key, Tags: r.Tags}
	hasTS := !r.TS.IsZero()
	if hasTS {
		if r.TS.Before(minTime) || r.TS.After(maxTime) {
			return fmt.Errorf("%w: ts %s is outside the years 1678–2262 that Unix nanoseconds can hold", ErrInvalidRecord, r.TS)
		}
		tr.TS = r.TS.UnixNano()
	}
	switch {
	case len(r.Value) > 0 && len(r.ValueB64) > 0:
		return fmt.Errorf("%w: both Value and ValueB64 are set", ErrInvalidRecord)
	case len(r.Value) > 0:
		scratch.Reset()
		if err := json.Compact(scratch, r.Value); err != nil {
			return fmt.Errorf("%w: Value is not JSON: %w", ErrInvalidRecord, err)
		}
		tr.Value = scratch.Bytes()
	default:
		tr.Value = r.ValueB64
	}
	if err := tr.Validate(maxValue); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	enc.Add(&tr, hasTS)
	return nil
}

// postBatch sends one encoded batch body.
func (c *Client) postBatch(ctx context.Context, stream string, body []byte, idem Idempotence) (AppendResult, error) {
	return c.postAppend(ctx, stream, tiers.BatchMediaType, bytes.NewReader(body), idem)
}

// postAppend sends one append body of the given type with idem's producer
// headers, if any. A refusal is an *APIError; a 2xx whose answer cannot be
// read wraps errUnreadableIdempotentAck when the server echoed idem's
// sequence (it deduplicates, so a retry is safe), else errUnreadableAck.
func (c *Client) postAppend(ctx context.Context, stream, contentType string, body io.Reader, idem Idempotence) (AppendResult, error) {
	hdr := http.Header{"Content-Type": {contentType}}
	seq := strconv.FormatUint(idem.Seq, 10)
	if idem.ProducerID != "" {
		hdr[api.HeaderProducerID], hdr[api.HeaderProducerSeq] = []string{idem.ProducerID}, []string{seq}
	}
	resp, err := c.doHeaders(ctx, http.MethodPost, recordsPath(stream), nil, body, hdr)
	if err != nil {
		return AppendResult{}, err
	}
	defer resp.Body.Close()
	var out AppendResult
	err = json.NewDecoder(resp.Body).Decode(&out)
	// Reading to the end lets the transport reuse the connection.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	switch {
	case err == nil:
		return out, nil
	case idem.ProducerID != "" && resp.Header.Get(api.HeaderProducerSeq) == seq:
		return AppendResult{}, fmt.Errorf("%w: %w", errUnreadableIdempotentAck, err)
	}
	return AppendResult{}, fmt.Errorf("%w: %w", errUnreadableAck, err)
}
