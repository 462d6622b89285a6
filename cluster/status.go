package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/cluster/registry"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// health caches the result of the last PostgreSQL ping, so that /healthz
// and the metrics cost one round trip a second at most.
type health struct {
	mu     sync.Mutex
	at     time.Time // of the last ping
	err    error     // its answer
	failed time.Time // when pings began failing; zero while they answer
}

// pingEvery is how long a ping's answer stands.
const pingEvery = time.Second

// pingTimeout bounds a ping.
const pingTimeout = 2 * time.Second

// pgHealth pings PostgreSQL at most once per pingEvery and says whether it
// answered and, if not, since when.
func (n *Node) pgHealth() (error, time.Time) {
	return n.health.check(n.opts.Now(), n.pool.Ping)
}

// storeHealth asks the shared store whether it answers, at most once per
// pingEvery: a stopped store refuses connections at once, which the
// breaker (for hung stores) does not count.
func (n *Node) storeHealth() (error, time.Time) {
	return n.store.check(n.opts.Now(), n.cold.CheckStore)
}

// check runs probe unless its last answer is younger than pingEvery, and
// returns the answer and since when probes fail.
func (h *health) check(now time.Time, probe func(context.Context) error) (error, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Sub(h.at) < pingEvery && !h.at.IsZero() {
		return h.err, h.failed
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	h.at = now
	h.err = probe(ctx)
	switch {
	case h.err == nil:
		h.failed = time.Time{}
	case h.failed.IsZero():
		h.failed = now
	}
	return h.err, h.failed
}

// WriteHealth reports whether appends can be committed now: not once the
// node is fenced (CauseFenced, until a restart), nor while PostgreSQL does
// not answer a ping, the shared store's breaker is open, or, after a
// failed flush, the store does not answer a probe (tiers.CauseStorage,
// clearing by itself).
func (n *Node) WriteHealth() engine.WriteHealth {
	if err := n.fencedErr(); err != nil {
		return engine.WriteHealth{Cause: CauseFenced, Err: err, Since: n.fencedAt()}
	}
	if err, since := n.pgHealth(); err != nil {
		return engine.WriteHealth{Cause: tiers.CauseStorage, Err: pgErr("the catalog does not answer", err), Since: since}
	}
	if h := n.cold.Health(); !h.Available {
		return engine.WriteHealth{Cause: tiers.CauseStorage, Err: storeDown(h.Err), Since: h.Since}
	}
	// The last flush failed and PostgreSQL answers: is it the store? A
	// probe says, so that an idle node whose last flush failed reports
	// healthy again once the store is back, without waiting for an append.
	if n.parts.seq.LastFlushError() != nil {
		if err, since := n.storeHealth(); err != nil {
			return engine.WriteHealth{Cause: tiers.CauseStorage, Err: fmt.Errorf("cluster: the shared object store: %w", err), Since: since}
		}
	}
	return engine.WriteHealth{}
}

// fencedAt is when the node first saw itself fenced.
func (n *Node) fencedAt() time.Time {
	n.fenceOnce.Do(func() { n.fenced = n.opts.Now() })
	return n.fenced
}

// Status is the node's state in the engine's terms: hot is the reader's
// memory cache, warm the live journal (ranges and bytes, shared by every
// node), no WAL; plus the node's id, epoch and catalog.
func (n *Node) Status(ctx context.Context) engine.Status {
	st := engine.Status{Mode: "cluster", NodeID: n.opts.NodeID, Epoch: n.Epoch(), Started: n.started, Writes: "ok"}
	mem, _ := n.parts.rd.CacheBytes()
	st.HotBytes, st.HotMaxBytes = mem, n.memBudget()
	if h := n.WriteHealth(); h.Cause != "" {
		st.Writes, st.WritesError, st.WritesSince = h.Cause, h.Err.Error(), h.Since
	}
	st.ColdStore = "ok"
	if h := n.cold.Health(); !h.Available {
		st.ColdStore, st.ColdStoreError, st.ColdStoreSince = "unavailable", h.Err, h.Since
	}
	var streams, ranges, bytes int64
	qctx, cancel := bounded(ctx)
	defer cancel()
	err := n.pool.QueryRow(qctx, `SELECT (SELECT count(*) FROM cluster_streams), count(*), coalesce(sum(bytes), 0) FROM journal_ranges`).
		Scan(&streams, &ranges, &bytes)
	if err == nil {
		st.Streams, st.WarmSegments, st.WarmBytes = int(streams), int(ranges), bytes
	}
	return st
}

// ClusterNodes lists every node of the registry, the stopped ones too.
func (n *Node) ClusterNodes(ctx context.Context) ([]registry.Node, error) {
	return n.parts.reg.Nodes(ctx)
}

// storeDown is the error of a shared store whose breaker is open.
func storeDown(msg string) error {
	return fmt.Errorf("cluster: the shared object store does not answer: %w: %w", tiers.ErrStorageUnavailable, errors.New(msg))
}

// liveWithin is how recent a heartbeat must be for cluster status to count
// a node live: three missed heartbeats make it stale.
const liveWithin = 3 * registry.DefaultHeartbeatInterval

// ClusterStatus answers GET /v1/cluster: every node the registry has seen,
// live, stale (heartbeats stopped without leaving: killed, partitioned) or
// stopped, with what each last reported.
func (n *Node) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	nodes, err := n.ClusterNodes(ctx)
	if err != nil {
		return api.ClusterStatus{}, pgErr("list the cluster's nodes", err)
	}
	out := api.ClusterStatus{Self: n.opts.NodeID, Nodes: make([]api.ClusterNode, 0, len(nodes))}
	for _, m := range nodes {
		out.Nodes = append(out.Nodes, api.ClusterNode{
			NodeID: m.ID, Epoch: int64(m.Epoch), Version: m.Version, Addr: m.Addr,
			StartedAt: m.Started.UTC(), HeartbeatAt: m.Heartbeat.UTC(), HeartbeatAgeMS: m.HeartbeatAge.Milliseconds(),
			StoppedAt: utcOrZero(m.Stopped), Live: m.Stopped.IsZero() && m.HeartbeatAge < liveWithin,
			StreamsWritten: m.Stats.StreamsWritten, JobsHeld: m.Stats.JobsHeld, CacheBytes: m.Stats.CacheBytes,
		})
	}
	return out, nil
}

// utcOrZero is t in UTC, the zero time kept zero.
func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
