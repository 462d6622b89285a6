package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tierd/tierd/api"
)

// The operator's calls: Migrate (plan, or run now), Explain and Verify.
// Their types mirror the server's JSON field for field; ages and durations
// stay in the server's notation ("1h30m", "7d"), as policies write them.

// MigrateRequest selects what Migrate does. The zero value runs the
// migrator now over every stream; set DryRun to only plan.
type MigrateRequest struct {
	// DryRun only plans: the report lists what a run would do now, and
	// nothing changes.
	DryRun bool
	// Stream limits the run to one stream; "" means every stream.
	Stream string
	// Progress, if set, is told how far a run is while it runs.
	Progress func(Progress)
}

// MigrateAction is one planned action of a migration run, and in a run
// that was not a dry run, its outcome.
type MigrateAction = api.MigrateAction

// MigrateReport is what POST /v1/migrate answers: the actions planned and,
// unless DryRun, what happened to each.
type MigrateReport = api.MigrateReport

// Migrate plans a migration (req.DryRun) or runs one now, for every stream
// or req.Stream, and reports each action. A run waits for a scheduled run
// in progress to end first. A server without a migrator answers an
// *APIError with Code "migrator_disabled"; an unknown stream,
// "stream_not_found". Failed actions are not an error: see
// MigrateReport.Failed.
func (c *Client) Migrate(ctx context.Context, req MigrateRequest) (MigrateReport, error) {
	q := url.Values{}
	// Sent always: the server's default is a dry run, the zero request's a
	// run.
	q.Set("dry_run", strconv.FormatBool(req.DryRun))
	if req.Stream != "" {
		q.Set("stream", req.Stream)
	}
	var out MigrateReport
	if err := c.callLong(ctx, http.MethodPost, "/v1/migrate", q, req.Progress, &out); err != nil {
		return MigrateReport{}, err
	}
	return out, nil
}

// Policy is the policy that applies to a stream, as explain shows it.
type Policy = api.Policy

// NextAction is what will happen next to a segment, and when.
type NextAction = api.NextAction

// MoveFailure is the last error of a move of a segment, kept until a move
// of it next succeeds.
type MoveFailure = api.MoveFailure

// ExplainSegment is one segment as explain shows it: the segments listing's
// fields, its age, its next action and its last error.
type ExplainSegment = api.ExplainSegment

// Explanation is what GET /v1/streams/{stream}/explain answers.
type Explanation = api.Explanation

// Explain says, for each segment of stream, where it is, which policy
// applies, what happens next and when, and its last error. Errors are
// *APIError with Code "stream_not_found" or "migrator_disabled", among
// others.
func (c *Client) Explain(ctx context.Context, stream string) (Explanation, error) {
	var out Explanation
	if err := c.callJSON(ctx, http.MethodGet, "/v1/streams/"+url.PathEscape(stream)+"/explain", nil, &out); err != nil {
		return Explanation{}, err
	}
	return out, nil
}

// Finding is one problem verify found.
type Finding = api.Finding

// StreamCheck is what verify covered of one stream.
type StreamCheck = api.StreamCheck

// VerifyReport is what POST /v1/verify answers. OK is true when Findings
// is empty.
type VerifyReport = api.VerifyReport

// Verify checks, for stream (every stream when ""), that the retained
// offsets are held by live segments exactly once, that every copy of every
// segment is there and matches the catalog's digest, and that the warm
// directory and the cold store hold nothing no segment claims. It reads
// every byte of the archive, so give it a generous context. What it finds
// is in the report (OK false), not an error; an unknown stream is an
// *APIError with Code "stream_not_found".
func (c *Client) Verify(ctx context.Context, req VerifyRequest) (VerifyReport, error) {
	q := url.Values{}
	if req.Stream != "" {
		q.Set("stream", req.Stream)
	}
	var out VerifyReport
	if err := c.callLong(ctx, http.MethodPost, "/v1/verify", q, req.Progress, &out); err != nil {
		return VerifyReport{}, err
	}
	return out, nil
}

// callJSON sends a bodiless request and decodes the JSON answer into v.
func (c *Client) callJSON(ctx context.Context, method, path string, query url.Values, v any) error {
	resp, err := c.do(ctx, method, path, query, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("client: decoding %s %s: %w", method, path, err)
	}
	return nil
}
