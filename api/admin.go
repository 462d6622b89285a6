package api

import (
	"encoding/json"
	"time"
)

// The operator's answers: migrate, explain, verify and progress. Ages and
// durations stay in the server's notation ("1h30m", "7d"), as policies
// write them.

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

// MigrateReport is the answer to POST /v1/migrate: the actions planned
// and, unless DryRun, what happened to each.
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

// ExplainSegment is one segment as explain shows it: the segments
// listing's fields, its age, its next action and its last error.
type ExplainSegment struct {
	Segment
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

// Explanation is the answer to GET /v1/streams/{stream}/explain: for each
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

// Kinds of verify finding (Finding.Kind).
const (
	// FindingGap: offsets at or above the stream's retention watermark
	// (below its next offset) that no segment holds (From, To): records
	// missing that retention does not explain.
	FindingGap = "gap"
	// FindingOverlap: offsets more than one live segment holds (From, To).
	FindingOverlap = "overlap"
	// FindingDigest: a copy's records do not hash to the catalog's digest,
	// or its bytes are damaged.
	FindingDigest = "digest"
	// FindingMissing: a placement the catalog records has no file or
	// object.
	FindingMissing = "missing"
	// FindingUnreadable: a copy could not be checked (the store is down):
	// not proof of damage, but not proof of health either.
	FindingUnreadable = "unreadable"
	// FindingOrphanWarm: a warm file no segment places warm.
	FindingOrphanWarm = "orphan_warm"
	// FindingOrphanCold: a cold object no segment places cold.
	FindingOrphanCold = "orphan_cold"
	// FindingLostSegment: a warm file or cold object no segment claims
	// that holds offsets (From, To) no live segment holds and retention
	// did not delete: possibly their only copy. Never delete it: inspect
	// it and rebuild the catalog.
	FindingLostSegment = "lost_segment"
	// FindingRetention: a segment whose retention state contradicts the
	// catalog or the policy: live below its stream's retention watermark,
	// tombstoned above it, or tombstoned while the policy no longer calls
	// for its deletion.
	FindingRetention = "retention"
	// FindingRefused: a deletion by retention was refused at execution
	// because nothing justified it (the segment's last failure says why).
	FindingRefused = "refused"
	// FindingTable: the stream's Iceberg table lists a data file (Path)
	// that no segment of the catalog holds: a query of the table would
	// read records tierd does not have, or fail on an object that is
	// gone. A table that lacks a segment is not reported: the loop adds
	// it within tables.commit_interval.
	FindingTable = "table"
)

// Finding is one problem verify found.
type Finding struct {
	// Kind is one of the Finding* constants, or a kind this package does
	// not know yet.
	Kind   string `json:"kind"`
	Stream string `json:"stream,omitempty"`
	// Base identifies the segment of a segment finding; nil otherwise.
	Base *uint64 `json:"base,omitempty"`
	// From and To bound a gap or overlap, offsets [From, To), or the
	// offsets only a lost segment's copy holds; nil otherwise.
	From *uint64 `json:"from,omitempty"`
	To   *uint64 `json:"to,omitempty"`
	// Tier is the placement concerned: "warm" or "cold", or "table" for
	// a stream's Iceberg table.
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

// VerifyReport is the answer to POST /v1/verify. OK is true when Findings
// is empty.
type VerifyReport struct {
	OK       bool          `json:"ok"`
	Streams  []StreamCheck `json:"streams"`
	Findings []Finding     `json:"findings"`
	// WarmFiles and ColdObjects count what the orphan scan looked at.
	WarmFiles   int `json:"warm_files"`
	ColdObjects int `json:"cold_objects"`
}

// Progress is how far a long operation (migrate, verify) is.
type Progress struct {
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	Unit  string `json:"unit"` // "actions" (migrate), "segments" (verify)
	// Bytes and TotalBytes size the actions (migrate only).
	Bytes      int64 `json:"bytes,omitempty"`
	TotalBytes int64 `json:"total_bytes,omitempty"`
}

// ProgressLine is one line of a long operation's progress stream (asked
// for with "Accept: application/x-ndjson"): exactly one field is set.
// Progress lines come at most every 200 ms; the last line is Result (the
// body the plain answer would have) or Error.
type ProgressLine struct {
	Progress *Progress       `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *Error          `json:"error,omitempty"`
}
