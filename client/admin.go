package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
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
type MigrateAction struct {
	// Action is the action's kind: "upload", "drop-warm", "delete-warm",
	// "tombstone" or "delete-cold". (Segments leave memory by the hot
	// tier's own rule, never by a migrate action.)
	Action string `json:"action"`
	Stream string `json:"stream"`
	// Base identifies the segment within the stream.
	Base uint64 `json:"base"`
	// Bytes is the segment's size: what the move costs or frees.
	Bytes int64 `json:"bytes"`
	// Policy names the policy that applies to the stream.
	Policy string `json:"policy"`
	// Reason says why, in words: "age 25h >= warm.max_age 24h (policy
	// trading)".
	Reason string `json:"reason"`
	// Due is when the action became due.
	Due time.Time `json:"due"`
	// Error is the action's failure in a run; empty on success and in a
	// dry run.
	Error string `json:"error,omitempty"`
}

// MigrateReport is what POST /v1/migrate answers: the actions planned and,
// unless DryRun, what happened to each.
type MigrateReport struct {
	DryRun bool `json:"dry_run"`
	// Started is when the run planned.
	Started time.Time `json:"started"`
	// DurationMS is how long the run took, in milliseconds.
	DurationMS int64           `json:"duration_ms"`
	Actions    []MigrateAction `json:"actions"`
	// Failed counts the actions that failed (those with an Error).
	Failed int `json:"failed"`
	// Skipped counts actions not tried because their segment is backing
	// off after a failure; they are not in Actions.
	Skipped int `json:"skipped"`
}

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

// Policy is the policy that applies to a stream, as explain shows it. An
// empty age means that tier keeps segments forever (HotMaxAge is always
// set).
type Policy struct {
	Name       string `json:"name"`
	HotMaxAge  string `json:"hot_max_age,omitempty"`
	WarmMaxAge string `json:"warm_max_age,omitempty"`
	ColdMaxAge string `json:"cold_max_age,omitempty"`
}

// NextAction is what will happen next to a segment, and when.
type NextAction struct {
	// Action is the action's kind, as in MigrateAction, or "evict-hot":
	// the hot tier takes the segment out of memory (at hot.max_age, or
	// sooner while memory is over hot.max_bytes).
	Action string `json:"action"`
	// Due is when it is (or was) due.
	Due time.Time `json:"due"`
	// In is how long until it is due, like "23h59m"; "0s" when it is due
	// now, that is at the next run.
	In string `json:"in"`
	// Reason says why, in words.
	Reason string `json:"reason"`
}

// MoveFailure is the last error of a move of a segment, kept until a move
// of it next succeeds.
type MoveFailure struct {
	Error string `json:"error"`
	// At is when it failed.
	At time.Time `json:"at"`
	// Attempts counts the failures in a row.
	Attempts int `json:"attempts"`
	// RetryAt is when the migrator tries again; zero when unknown (after
	// a restart).
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// ExplainSegment is one segment as explain shows it: the segments listing's
// fields, its age, its next action and its last error.
type ExplainSegment struct {
	Segment
	// ColdBytes is the cold object's size, once the segment has one.
	ColdBytes int64 `json:"cold_bytes,omitempty"`
	// Tombstoned is when deletion by retention began; zero if it has not.
	Tombstoned time.Time `json:"tombstoned,omitzero"`
	// Age is the time since the segment was sealed, like "3h5m"; empty
	// for the active segment and one still only in memory.
	Age string `json:"age,omitempty"`
	// InFlight means a move of the segment is running now.
	InFlight bool `json:"in_flight,omitempty"`
	// Next is the action that will happen next; nil when none will as
	// things stand (the policy keeps the segment where it is forever, a
	// move is running, or Note explains).
	Next *NextAction `json:"next"`
	// LastError is the last failed move of the segment, if its latest
	// attempt failed.
	LastError *MoveFailure `json:"last_error,omitempty"`
	// Note says why a segment has no planned action when that is not the
	// policy's doing: it is active, or waits for the flusher.
	Note string `json:"note,omitempty"`
}

// Explanation is what GET /v1/streams/{stream}/explain answers: for each
// segment of a stream, where it is, which policy applies, what happens
// next and when, and its last error.
type Explanation struct {
	Stream string `json:"stream"`
	// Now is the server's clock when it explained, which ages and In
	// count from.
	Now    time.Time `json:"now"`
	Policy Policy    `json:"policy"`
	// Segments are in offset order, the active segment last.
	Segments []ExplainSegment `json:"segments"`
}

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

// Kinds of verify finding (Finding.Kind).
const (
	// FindingGap: offsets no live segment holds (From, To).
	FindingGap = "gap"
	// FindingOverlap: offsets more than one live segment holds (From, To).
	FindingOverlap = "overlap"
	// FindingDigest: a copy's records do not hash to the catalog's digest,
	// or its bytes are damaged.
	FindingDigest = "digest"
	// FindingMissing: a placement the catalog records has no file or
	// object.
	FindingMissing = "missing"
	// FindingUnreadable: a copy could not be checked (the store is down).
	FindingUnreadable = "unreadable"
	// FindingOrphanWarm: a warm file no segment places warm.
	FindingOrphanWarm = "orphan_warm"
	// FindingOrphanCold: a cold object no segment places cold.
	FindingOrphanCold = "orphan_cold"
)

// Finding is one problem verify found.
type Finding struct {
	// Kind is one of the Finding* constants.
	Kind   string `json:"kind"`
	Stream string `json:"stream,omitempty"`
	// Base identifies the segment of a segment finding; nil otherwise.
	Base *uint64 `json:"base,omitempty"`
	// From and To bound a gap or overlap, offsets [From, To); nil
	// otherwise.
	From *uint64 `json:"from,omitempty"`
	To   *uint64 `json:"to,omitempty"`
	// Tier is the placement concerned: "warm" or "cold".
	Tier string `json:"tier,omitempty"`
	// Path is the warm file or cold object key concerned.
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// StreamCheck is what verify covered of one stream.
type StreamCheck struct {
	Stream string `json:"stream"`
	// First and Next bound the retained, persisted offsets [First, Next)
	// that must be held exactly once.
	First uint64 `json:"first"`
	Next  uint64 `json:"next"`
	// Segments live segments were checked, Placements copies of them.
	Segments   int `json:"segments"`
	Placements int `json:"placements"`
	// UnpersistedRecords are records at or above Next held only in memory
	// (and the WAL), in UnpersistedSegments segments: durable, but not yet
	// persisted warm, so verify cannot check a copy of them yet.
	UnpersistedRecords  uint64 `json:"unpersisted_records"`
	UnpersistedSegments int    `json:"unpersisted_segments"`
}

// VerifyReport is what POST /v1/verify answers. OK is true when Findings
// is empty.
type VerifyReport struct {
	OK       bool          `json:"ok"`
	Streams  []StreamCheck `json:"streams"`
	Findings []Finding     `json:"findings"`
	// WarmFiles and ColdObjects count what the orphan scan looked at.
	WarmFiles   int `json:"warm_files"`
	ColdObjects int `json:"cold_objects"`
}

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
