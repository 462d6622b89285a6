package api

import "time"

// ClusterStatus is the answer to GET /v1/cluster: every node the cluster's
// catalog knows, ordered by node id, and which of them answered. A node
// in local mode answers 404 not_in_cluster_mode instead.
type ClusterStatus struct {
	// Self is the node id of the node that answered.
	Self  string        `json:"self"`
	Nodes []ClusterNode `json:"nodes"`
}

// ClusterNode is one node as the cluster's catalog knows it: what it last
// reported with its heartbeat.
type ClusterNode struct {
	NodeID string `json:"node_id"`
	// Epoch is bumped by every start of the node; writes of an older
	// epoch (a process the restart fenced) are refused.
	Epoch   int64  `json:"epoch"`
	Version string `json:"version"`
	// Addr is the API address the node listens on, as it reported it.
	Addr      string    `json:"addr"`
	StartedAt time.Time `json:"started_at"`
	// HeartbeatAt is the node's last heartbeat; HeartbeatAgeMS is how
	// long ago that was when the answer was made, in milliseconds, by the
	// catalog's clock, so that clock skew between nodes does not show.
	HeartbeatAt    time.Time `json:"heartbeat_at"`
	HeartbeatAgeMS int64     `json:"heartbeat_age_ms"`
	// StoppedAt is when the node left the cluster by shutting down
	// cleanly; omitted for a node that has not.
	StoppedAt time.Time `json:"stopped_at,omitzero"`
	// Live is whether the node's heartbeat is recent enough that the
	// cluster counts it as running; a node neither live nor stopped
	// stopped heartbeating without leaving (killed, partitioned).
	Live bool `json:"live"`
	// StreamsWritten counts the streams the node has appended to since
	// it started; JobsHeld the compaction jobs it holds now; CacheBytes
	// the bytes of its disk cache.
	StreamsWritten int64 `json:"streams_written"`
	JobsHeld       int   `json:"jobs_held"`
	CacheBytes     int64 `json:"cache_bytes"`
}

// The states of a node, as ClusterNode.State names them.
const (
	NodeLive    = "live"
	NodeStale   = "stale"
	NodeStopped = "stopped"
)

// State is NodeStopped for a node that left cleanly, else NodeLive or
// NodeStale by its heartbeat.
func (n ClusterNode) State() string {
	switch {
	case !n.StoppedAt.IsZero():
		return NodeStopped
	case n.Live:
		return NodeLive
	}
	return NodeStale
}
