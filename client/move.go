package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tierd/tierd/api"
)

// Moving segments by hand: Seal persists what a stream holds in memory
// now, Offload moves a sealed, persisted segment to the cold tier now.

// SealResult is what POST /v1/streams/{stream}/seal answers.
type SealResult = api.SealResult

// Seal seals stream's active segment now and returns once it is persisted
// warm, so that it can be offloaded at once; segments sealed earlier are
// persisted first. With nothing appended since the last seal it seals
// nothing (Sealed false) and answers the last sealed segment: not an
// error. ctx bounds the wait. Errors are *APIError: "stream_not_found",
// or a storage condition (503) that keeps the segment from being persisted.
func (c *Client) Seal(ctx context.Context, stream string) (SealResult, error) {
	var out SealResult
	if err := c.callJSON(ctx, http.MethodPost, "/v1/streams/"+url.PathEscape(stream)+"/seal", nil, &out); err != nil {
		return SealResult{}, err
	}
	return out, nil
}

// Offload moves the sealed segment of stream starting at base to the cold
// tier now (keepWarm: copies it, keeping the warm file) and answers the
// segment as Segments lists it afterwards. Offloading a segment already in
// cold changes nothing (or only drops its warm copy). Errors are
// *APIError: "stream_not_found", "segment_not_found",
// "segment_not_persisted" (seal it first), "no_cold_tier",
// "cold_store_unavailable".
func (c *Client) Offload(ctx context.Context, stream string, base uint64, keepWarm bool) (Segment, error) {
	var q url.Values
	if keepWarm {
		q = url.Values{"keep_warm": {"true"}}
	}
	var out Segment
	path := "/v1/streams/" + url.PathEscape(stream) + "/segments/" + strconv.FormatUint(base, 10) + "/offload"
	if err := c.callJSON(ctx, http.MethodPost, path, q, &out); err != nil {
		return Segment{}, err
	}
	return out, nil
}
