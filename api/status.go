package api

import (
	"encoding/json"
	"time"
)

// Status is the answer to GET /v1/status: the engine's flat fields, each
// tier's summary and the migrator's state. The server renders the flat
// fields from the engine's status by reflection, in snake_case and with
// sorted keys, so fields it adds later show up before this type knows
// them (Raw keeps them); a test checks that every field here is one the
// server sends.
type Status struct {
	// Mode is "local" (one node: WAL, warm files, bbolt catalog) or
	// "cluster" (a node sharing an object store and PostgreSQL), with the
	// node's NodeID and Epoch in cluster mode. Servers before this field
	// leave Mode empty.
	Mode           string    `json:"mode"`
	NodeID         string    `json:"node_id"`
	Epoch          uint64    `json:"epoch"`
	Started        time.Time `json:"started"`
	Streams        int       `json:"streams"`
	HotBytes       int64     `json:"hot_bytes"`
	HotMaxBytes    int64     `json:"hot_max_bytes"`
	HotUnpersisted int64     `json:"hot_unpersisted"`
	HotSegments    int       `json:"hot_segments"`
	WarmBytes      int64     `json:"warm_bytes"`
	WarmSegments   int       `json:"warm_segments"`
	WALFiles       int       `json:"wal_files"`
	WALBytes       int64     `json:"wal_bytes"`
	WALSync        string    `json:"wal_sync"`
	WALFailed      string    `json:"wal_failed"`
	// Writes is "ok" while the server can make appends durable, else the
	// condition keeping it from that: "disk_full", "out_of_descriptors",
	// "storage_unavailable" (cleared by the server itself once storage
	// takes writes) or "wal_failed" (until restart). WritesError is the
	// condition's latest error, WritesSince when it began. Servers before
	// this field leave Writes empty.
	Writes      string    `json:"writes"`
	WritesError string    `json:"writes_error"`
	WritesSince time.Time `json:"writes_since"`
	// ColdStore is "ok", "unavailable" (a call timed out; calls fail fast
	// until the store answers a probe) or "" without a cold tier;
	// ColdStoreError and ColdStoreSince say why and since when.
	ColdStore      string    `json:"cold_store"`
	ColdStoreError string    `json:"cold_store_error"`
	ColdStoreSince time.Time `json:"cold_store_since"`
	// Tiers is keyed by tier name: hot, warm and, with a cold store, cold.
	Tiers map[string]TierStatus `json:"tiers"`
	// Migrator is nil when the server runs without one.
	Migrator *MigratorStatus `json:"migrator"`
	// Raw is the answer as received, with any field this type does not
	// know; the client fills it in, it is never sent.
	Raw json.RawMessage `json:"-"`
}

// TierStatus is one tier's summary in the status answer.
type TierStatus struct {
	Streams  int   `json:"streams"`
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
	// OldestTS and NewestTS bound the records' ts; zero when the tier is
	// empty.
	OldestTS time.Time `json:"oldest_ts,omitzero"`
	NewestTS time.Time `json:"newest_ts,omitzero"`
	// OldestSealedAt is when the oldest sealed segment here sealed.
	OldestSealedAt time.Time `json:"oldest_sealed_at,omitzero"`
	// BudgetBytes is 0 for a tier without a budget (cold).
	BudgetBytes int64 `json:"budget_bytes"`
	BudgetUsed  int64 `json:"budget_used_bytes"`
}

// MigratorStatus is the migrator's schedule, last run and failing
// segments.
type MigratorStatus struct {
	Schedule    string    `json:"schedule"`
	NextRun     time.Time `json:"next_run,omitzero"`
	Running     bool      `json:"running"`
	LastRun     *LastRun  `json:"last_run"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Failing counts the failing segments; Failures lists up to
	// MaxStatusFailures of them, newest first.
	Failing  int              `json:"failing_segments"`
	Failures []SegmentFailure `json:"failures"`
}

// MaxStatusFailures bounds MigratorStatus.Failures.
const MaxStatusFailures = 20

// LastRun sums up the migrator's latest run; migrate's answer lists its
// actions.
type LastRun struct {
	Started    time.Time `json:"started"`
	DurationMS int64     `json:"duration_ms"`
	Actions    int       `json:"actions"`
	Failed     int       `json:"failed"`
	Skipped    int       `json:"skipped"`
}

// SegmentFailure is a segment whose latest action failed.
type SegmentFailure struct {
	Stream   string    `json:"stream"`
	Base     uint64    `json:"base"`
	Action   string    `json:"action"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
	Attempts int       `json:"attempts"`
	RetryAt  time.Time `json:"retry_at,omitzero"`
}
