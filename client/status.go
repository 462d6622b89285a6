package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/tierd/tierd/api"
)

// ServerStatus is GET /v1/status: the engine's flat fields, each tier's
// summary and the migrator's state (docs/api.md); Raw is the answer as
// sent, with any field this client does not know.
type ServerStatus = api.Status

// TierStatus is one tier's summary.
type TierStatus = api.TierStatus

// MigratorStatus is the migrator's schedule, last run and failing
// segments.
type MigratorStatus = api.MigratorStatus

// LastRun sums up the migrator's latest run.
type LastRun = api.LastRun

// SegmentFailure is a segment whose latest action failed.
type SegmentFailure = api.SegmentFailure

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
