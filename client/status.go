package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ServerStatus is GET /v1/status: the engine's flat fields, each tier's
// summary and the migrator's state (docs/api.md).
type ServerStatus struct {
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
	// Raw is the answer as sent, with any field this client does not know.
	Raw json.RawMessage `json:"-"`
}

// TierStatus is one tier's summary.
type TierStatus struct {
	Streams        int       `json:"streams"`
	Segments       int       `json:"segments"`
	Bytes          int64     `json:"bytes"`
	OldestTS       time.Time `json:"oldest_ts"` // zero when the tier is empty
	NewestTS       time.Time `json:"newest_ts"`
	OldestSealedAt time.Time `json:"oldest_sealed_at"`
	BudgetBytes    int64     `json:"budget_bytes"` // 0: no budget
	BudgetUsed     int64     `json:"budget_used_bytes"`
}

// MigratorStatus is the migrator's schedule, last run and failing
// segments.
type MigratorStatus struct {
	Schedule    string    `json:"schedule"`
	NextRun     time.Time `json:"next_run"`
	Running     bool      `json:"running"`
	LastRun     *LastRun  `json:"last_run"`
	LastError   string    `json:"last_error"`
	LastErrorAt time.Time `json:"last_error_at"`
	Failing     int       `json:"failing_segments"`
	// Failures lists up to 20 failing segments, newest first.
	Failures []SegmentFailure `json:"failures"`
}

// LastRun sums up the migrator's latest run.
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
	RetryAt  time.Time `json:"retry_at"`
}

// Status returns the server's status.
func (c *Client) Status(ctx context.Context) (ServerStatus, error) {
	var raw json.RawMessage
	if err := c.getJSON(ctx, "/v1/status", &raw); err != nil {
		return ServerStatus{}, err
	}
	var st ServerStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		return ServerStatus{}, fmt.Errorf("tierd: decoding status: %w", err)
	}
	st.Raw = bytes.TrimSpace(raw)
	return st, nil
}
