package boot

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/cluster"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/policy"
)

// ClusterOptions is the cluster node a validated configuration in cluster
// mode describes, over the shared bucket and the cold tier on it: the one
// translation of the cluster: section into cluster.Options. addr is the
// API address the registry shows.
func ClusterOptions(cfg policy.Config, bucket objstore.Bucket, coldTier *cold.Tier, addr string, log *slog.Logger, reg prometheus.Registerer) cluster.Options {
	return cluster.Options{
		DSN:           string(cfg.Cluster.Catalog),
		NodeID:        cfg.Cluster.NodeID,
		Version:       Version(),
		Addr:          addr,
		DataDir:       cfg.DataDir,
		Cold:          coldTier,
		Bucket:        bucket,
		Config:        &cfg,
		Tables:        TablesOpener(cfg, string(cfg.Cluster.Catalog), log, reg),
		FlushInterval: cfg.Cluster.FlushInterval,
		FlushBytes:    cfg.Cluster.FlushBytes,
		GCDelay:       cfg.Cluster.GCDelay,
		Lease:         cfg.Cluster.CompactionLease,
		CacheBytes:    cfg.Cluster.CacheBytes,
		Logger:        log,
		Registerer:    reg,
	}
}

// OpenCluster opens the shared bucket (cold.store: in cluster mode it
// holds the journal objects under _journal/ and the Parquet segments) and
// the cold tier on it, checks the store (CheckCold: logged, not fatal: the
// node answers 503 while it is down) and joins the cluster as a Node,
// which owns the cold tier from then on. On error nothing stays open.
func OpenCluster(ctx context.Context, cfg policy.Config, addr string, log *slog.Logger, reg prometheus.Registerer) (*cluster.Node, error) {
	if !cfg.Cluster.Enabled() {
		return nil, fmt.Errorf("boot: cluster.catalog is not set")
	}
	b, t, err := openStore(ctx, cfg, log, reg)
	if err != nil {
		return nil, err
	}
	CheckCold(ctx, t, cfg, log)
	n, err := cluster.Open(ctx, ClusterOptions(cfg, b, t, addr, log, reg))
	if err != nil {
		t.Close()
		return nil, err
	}
	return n, nil
}

// Version is the running binary's module version, as the registry shows
// it ("(devel)" for a build from a work tree).
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
