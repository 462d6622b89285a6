package api

import (
	"encoding/json"
	"time"
)

// AppendRecord is one line of an NDJSON append: ts as RFC 3339 or integer
// Unix nanoseconds (absent: the server's ingest time), and at most one of
// value (a JSON value, stored compacted) and value_b64 (arbitrary bytes,
// standard base64).
type AppendRecord struct {
	Key      string          `json:"key,omitempty"`
	TS       string          `json:"ts,omitempty"`
	Tags     []string        `json:"tags,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
	ValueB64 []byte          `json:"value_b64,omitempty"`
}

// AppendResult is the answer to an append: the offsets the batch got.
type AppendResult struct {
	Stream      string `json:"stream"`
	FirstOffset uint64 `json:"first_offset"`
	LastOffset  uint64 `json:"last_offset"`
	Count       int    `json:"count"`
	// Duplicate is set when the append was an idempotent retry of a batch
	// the server already held: nothing was appended again, and the offsets
	// are those the batch got the first time.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Record is one line of a read. Value is set when the stored bytes are
// exactly what an append of that JSON would store (valid UTF-8, valid and
// already compact JSON), so that read → append round-trips byte for byte;
// ValueB64 holds anything else; an empty value is in neither. On an append
// through the client, Offset and Tier are ignored and a zero TS means the
// server's ingest time.
type Record struct {
	Offset   uint64          `json:"offset"`
	TS       time.Time       `json:"ts"`
	Key      string          `json:"key,omitempty"`
	Tags     []string        `json:"tags,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
	ValueB64 []byte          `json:"value_b64,omitempty"` // encoding/json writes []byte as standard base64
	// Tier is the tier that served a read: "hot", "warm" or "cold".
	Tier string `json:"tier"`
}

// Bytes returns the record's stored value bytes, whichever field holds them.
func (r *Record) Bytes() []byte {
	if len(r.Value) > 0 {
		return r.Value
	}
	return r.ValueB64
}

// StreamList is the answer to GET /v1/streams.
type StreamList struct {
	Streams []Stream `json:"streams"`
}

// Stream summarises one stream.
type Stream struct {
	Name       string `json:"name"`
	NextOffset uint64 `json:"next_offset"`
	Records    uint64 `json:"records"`
	// Tiers is what each tier holds, by "hot", "warm", "cold".
	Tiers map[string]TierUsage `json:"tiers"`
}

// TierUsage counts what one tier holds of a stream.
type TierUsage struct {
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
}

// Segment is one entry of a segments listing. The active segment has
// Active set and no SealedAt or Digest yet; an empty one no time range.
type Segment struct {
	Base  uint64 `json:"base"`
	Last  uint64 `json:"last"`
	Count uint64 `json:"count"`
	Bytes int64  `json:"bytes"`
	// ColdBytes is the cold object's size, present once the segment has one.
	ColdBytes int64     `json:"cold_bytes,omitempty"`
	MinTS     time.Time `json:"min_ts,omitzero"`
	MaxTS     time.Time `json:"max_ts,omitzero"`
	SealedAt  time.Time `json:"sealed_at,omitzero"`
	// Tiers are the placements holding it: "hot", "warm", "cold".
	Tiers  []string `json:"tiers"`
	Digest string   `json:"digest,omitempty"`
	Active bool     `json:"active,omitempty"`
	// Tombstoned is when deletion by retention began; the segment is no
	// longer served and its copies go after cold.delete_delay. Zero while
	// live.
	Tombstoned time.Time `json:"tombstoned,omitzero"`
}

// SealResult is the answer to POST /v1/streams/{stream}/seal: one shape
// whether or not there was something to seal, so that a script reads
// .segment either way and never special-cases an error.
type SealResult struct {
	Stream string `json:"stream"`
	// Sealed is true when the active segment held records and was sealed
	// and persisted warm now; false when nothing was appended since the
	// last seal.
	Sealed bool `json:"sealed"`
	// Segment is the segment sealed now, or when Sealed is false the
	// stream's last sealed segment (nil if it has none), as the segments
	// listing shows it.
	Segment *Segment `json:"segment"`
	// Note says, when Sealed is false, why nothing was sealed.
	Note string `json:"note,omitempty"`
}

// Health is /healthz's answer while writes are refused (503): the fields a
// health checker reads, and the error object every error answer has. A
// healthy node answers {"status":"ok"} (HealthOK).
type Health struct {
	Status string    `json:"status"`
	Cause  string    `json:"cause"`
	Since  time.Time `json:"since,omitzero"`
	Sticky bool      `json:"sticky"`
	Error  Error     `json:"error"`
}

// HealthOK is /healthz's answer while the node takes writes.
type HealthOK struct {
	Status string `json:"status"`
}
