package server

import "encoding/json"

// The server's tests read its answers with these types, which keep every
// time as the exact string sent (RFC 3339 in UTC, "" or absent for none):
// an oracle of the wire independent of package api, whose time.Time fields
// would accept any RFC 3339 spelling. They are what the server wrote
// before package api existed; api's types must encode to the same bytes
// (TestAPIMatchesMirror).

// recordOut is one line of a read response.
type recordOut struct {
	Offset   uint64          `json:"offset"`
	TS       string          `json:"ts"`
	Key      string          `json:"key,omitempty"`
	Tags     []string        `json:"tags,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
	ValueB64 []byte          `json:"value_b64,omitempty"` // encoding/json writes []byte as standard base64
	Tier     string          `json:"tier"`
}

// appendOut is the response to an append.
type appendOut struct {
	Stream      string `json:"stream"`
	FirstOffset uint64 `json:"first_offset"`
	LastOffset  uint64 `json:"last_offset"`
	Count       int    `json:"count"`
	// Duplicate: an idempotent producer's retry, not appended again.
	Duplicate bool `json:"duplicate,omitempty"`
}

// streamOut is one entry of the streams listing.
type streamOut struct {
	Name       string                  `json:"name"`
	NextOffset uint64                  `json:"next_offset"`
	Records    uint64                  `json:"records"`
	Tiers      map[string]tierUsageOut `json:"tiers"`
}

// tierUsageOut is what one tier holds of a stream.
type tierUsageOut struct {
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
}

// segmentOut is one entry of a segments listing. The active segment has no
// seal time or digest yet, and an empty one no time range.
type segmentOut struct {
	Base  uint64 `json:"base"`
	Last  uint64 `json:"last"`
	Count uint64 `json:"count"`
	Bytes int64  `json:"bytes"`
	// ColdBytes is the cold object's size, present once the segment has one.
	ColdBytes int64    `json:"cold_bytes,omitempty"`
	MinTS     string   `json:"min_ts,omitempty"`
	MaxTS     string   `json:"max_ts,omitempty"`
	SealedAt  string   `json:"sealed_at,omitempty"`
	Tiers     []string `json:"tiers"`
	Digest    string   `json:"digest,omitempty"`
	Active    bool     `json:"active,omitempty"`
	// Tombstoned is when deletion by retention began; the segment is no
	// longer served and its copies go after cold.delete_delay.
	Tombstoned string `json:"tombstoned,omitempty"`
}

type actionOut struct {
	Action string `json:"action"`
	Stream string `json:"stream"`
	Base   uint64 `json:"base"`
	Bytes  int64  `json:"bytes"`
	Policy string `json:"policy"`
	Reason string `json:"reason"`
	Due    string `json:"due"`
	// Error is the action's failure in a run; empty on success and in a
	// dry run.
	Error string `json:"error,omitempty"`
}

type migrateOut struct {
	DryRun     bool        `json:"dry_run"`
	Started    string      `json:"started"`
	DurationMS int64       `json:"duration_ms"`
	Actions    []actionOut `json:"actions"`
	Failed     int         `json:"failed"`
	// Skipped counts actions not tried because their segment is backing
	// off after a failure.
	Skipped int `json:"skipped"`
}

type policyOut struct {
	Name       string `json:"name"`
	HotMaxAge  string `json:"hot_max_age,omitempty"`
	WarmMaxAge string `json:"warm_max_age,omitempty"`
	ColdMaxAge string `json:"cold_max_age,omitempty"`
}

type nextOut struct {
	Action string `json:"action"`
	Due    string `json:"due"`
	// In is how long until it is due; "0s" when due now (the next run).
	In     string `json:"in"`
	Reason string `json:"reason"`
}

type failureOut struct {
	Error    string `json:"error"`
	At       string `json:"at"`
	Attempts int    `json:"attempts"`
	RetryAt  string `json:"retry_at,omitempty"`
}

type explainSegmentOut struct {
	segmentOut
	Age       string      `json:"age,omitempty"`
	InFlight  bool        `json:"in_flight,omitempty"`
	Next      *nextOut    `json:"next"`
	LastError *failureOut `json:"last_error,omitempty"`
	// Note says why a segment has no planned action when that is not the
	// policy's doing (active, or waiting for the flusher).
	Note string `json:"note,omitempty"`
}

type explainOut struct {
	Stream   string              `json:"stream"`
	Now      string              `json:"now"`
	Policy   policyOut           `json:"policy"`
	Segments []explainSegmentOut `json:"segments"`
}

type findingOut struct {
	Kind    string  `json:"kind"`
	Stream  string  `json:"stream,omitempty"`
	Base    *uint64 `json:"base,omitempty"`
	From    *uint64 `json:"from,omitempty"`
	To      *uint64 `json:"to,omitempty"`
	Tier    string  `json:"tier,omitempty"`
	Path    string  `json:"path,omitempty"`
	Message string  `json:"message"`
}

type streamCheckOut struct {
	Stream     string `json:"stream"`
	First      uint64 `json:"first"`
	Next       uint64 `json:"next"`
	Segments   int    `json:"segments"`
	Placements int    `json:"placements"`
	// UnpersistedRecords and UnpersistedSegments are held only in memory
	// (and the WAL), not yet persisted warm: nothing to check yet.
	UnpersistedRecords  uint64 `json:"unpersisted_records"`
	UnpersistedSegments int    `json:"unpersisted_segments"`
}

type verifyOut struct {
	OK          bool             `json:"ok"`
	Streams     []streamCheckOut `json:"streams"`
	Findings    []findingOut     `json:"findings"`
	WarmFiles   int              `json:"warm_files"`
	ColdObjects int              `json:"cold_objects"`
}

// tierOut is one tier in the status answer.
type tierOut struct {
	Streams        int    `json:"streams"`
	Segments       int    `json:"segments"`
	Bytes          int64  `json:"bytes"`
	OldestTS       string `json:"oldest_ts,omitempty"`
	NewestTS       string `json:"newest_ts,omitempty"`
	OldestSealedAt string `json:"oldest_sealed_at,omitempty"`
	// BudgetBytes is 0 for a tier without a budget (cold).
	BudgetBytes int64 `json:"budget_bytes"`
	BudgetUsed  int64 `json:"budget_used_bytes"`
}

// migratorOut is the migrator in the status answer.
type migratorOut struct {
	Schedule    string          `json:"schedule"`
	NextRun     string          `json:"next_run,omitempty"`
	Running     bool            `json:"running"`
	LastRun     *lastRunOut     `json:"last_run"`
	LastError   string          `json:"last_error,omitempty"`
	LastErrorAt string          `json:"last_error_at,omitempty"`
	Failing     int             `json:"failing_segments"`
	Failures    []segFailureOut `json:"failures"`
}

// lastRunOut sums up the latest run; migrate's answer lists its actions.
type lastRunOut struct {
	Started    string `json:"started"`
	DurationMS int64  `json:"duration_ms"`
	Actions    int    `json:"actions"`
	Failed     int    `json:"failed"`
	Skipped    int    `json:"skipped"`
}

type segFailureOut struct {
	Stream string `json:"stream"`
	Base   uint64 `json:"base"`
	Action string `json:"action"`
	failureOut
}

// sealOut is the answer to POST /v1/streams/{stream}/seal: one shape
// whether or not there was something to seal, so that a script reads
// .segment either way and never special-cases an error.
type sealOut struct {
	Stream string `json:"stream"`
	// Sealed is true when the active segment held records and was sealed
	// and persisted now; false when nothing was appended since the last
	// seal.
	Sealed bool `json:"sealed"`
	// Segment is the segment sealed now, or when Sealed is false the
	// stream's last sealed segment (null if it has none), as the segments
	// listing shows it.
	Segment *segmentOut `json:"segment"`
	// Note says, when Sealed is false, why nothing was sealed.
	Note string `json:"note,omitempty"`
}

// progressOut is one progress line's object.
type progressOut struct {
	Done       int64  `json:"done"`
	Total      int64  `json:"total"`
	Unit       string `json:"unit"` // "actions", "segments"
	Bytes      int64  `json:"bytes,omitempty"`
	TotalBytes int64  `json:"total_bytes,omitempty"`
}

// healthOut is /healthz's answer while writes are refused: the fields a
// health checker reads, and the error object every error answer has.
type healthOut struct {
	Status string      `json:"status"`
	Cause  string      `json:"cause"`
	Since  string      `json:"since,omitempty"`
	Sticky bool        `json:"sticky"`
	Error  errorDetail `json:"error"`
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
