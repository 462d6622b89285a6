// Package client is the Go client of tierd's HTTP API (docs/api.md): append
// batches of records, stream them back, and list streams, segments and
// status. Calls are synchronous; every non-2xx answer is an *APIError.
package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tierd/tierd/api"
)

// Client talks to one tierd server. It is safe for concurrent use.
type Client struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	hc    *http.Client
	token string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client, for transports, TLS or timeouts. A
// client-wide Timeout also bounds streamed reads; prefer contexts.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithToken sends "Authorization: Bearer <token>" with every request, for
// servers that require it.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// New returns a client for the server at baseURL ("http://127.0.0.1:7070").
// A bare host:port is taken as http.
func New(baseURL string, opts ...Option) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c
}

// APIError is the server's answer to a request it refused: any non-2xx
// status, or an error line that ended a streamed read. Check it with
// errors.As; Code is the stable part (docs/api.md lists the codes).
type APIError struct {
	Status  int    // HTTP status; 200 when the error ended a read already under way
	Code    string // e.g. "stream_not_found", "backpressure"
	Message string
	// RetryAfter is the server's Retry-After for backpressure; 0 if none.
	RetryAfter time.Duration
}

// Error reads like "tierd: stream_not_found: … (HTTP 404)".
func (e *APIError) Error() string {
	return fmt.Sprintf("tierd: %s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

// do sends a request and returns the response of a 2xx answer, whose body
// the caller closes; any other answer becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Response, error) {
	return c.doHeaders(ctx, method, path, query, body, nil)
}

// doAccept is do with an Accept header, when accept is not empty.
func (c *Client) doAccept(ctx context.Context, method, path string, query url.Values, body io.Reader, accept string) (*http.Response, error) {
	if accept == "" {
		return c.do(ctx, method, path, query, body)
	}
	return c.doHeaders(ctx, method, path, query, body, http.Header{"Accept": {accept}})
}

// doHeaders is do with extra request headers.
func (c *Client) doHeaders(ctx context.Context, method, path string, query url.Values, body io.Reader, hdr http.Header) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", api.MediaNDJSON)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, responseError(resp)
}

// responseError builds the APIError of a refused request. A body that is
// not the API's JSON (a proxy's error page) still yields one, with the code
// "http_<status>".
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var eb api.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
		return e
	}
	e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	e.Message = strings.TrimSpace(string(b))
	if len(e.Message) > 512 {
		e.Message = e.Message[:512] + "…"
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// getJSON GETs path and decodes the JSON answer into v.
func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("client: decoding %s: %w", path, err)
	}
	return nil
}

// TierUsage counts what one tier holds of a stream.
type TierUsage = api.TierUsage

// Stream summarises one stream, as GET /v1/streams lists it.
type Stream = api.Stream

// Streams lists every stream, ordered by name.
func (c *Client) Streams(ctx context.Context) ([]Stream, error) {
	var out api.StreamList
	if err := c.getJSON(ctx, "/v1/streams", &out); err != nil {
		return nil, err
	}
	return out.Streams, nil
}

// Segment is one segment of a stream. The active segment has Active set and
// no SealedAt or Digest; an empty one no time range.
type Segment = api.Segment

// Segments lists a stream's segments in offset order, the active one last.
func (c *Client) Segments(ctx context.Context, stream string) ([]Segment, error) {
	var out []Segment
	if err := c.getJSON(ctx, "/v1/streams/"+url.PathEscape(stream)+"/segments", &out); err != nil {
		return nil, err
	}
	return out, nil
}
