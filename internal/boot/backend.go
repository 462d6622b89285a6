package boot

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/server"
)

// CloseFunc ends what OpenBackend opened, waiting for it within ctx.
type CloseFunc func(ctx context.Context) error

// OpenBackend opens what the daemon serves, chosen by the configuration in
// this one place: in local mode (no cluster.catalog) the engine, as
// OpenEngine opens it; in cluster mode a cluster node, as OpenCluster
// opens it (the registry shows cfg.Listen as its address). The migrator and
// the local-only tools reach the engine by asserting *engine.Engine on the
// result. On error nothing stays open.
func OpenBackend(ctx context.Context, cfg policy.Config, log *slog.Logger, reg prometheus.Registerer) (server.Backend, CloseFunc, error) {
	switch {
	case cfg.Cluster.Enabled():
		n, err := OpenCluster(ctx, cfg, cfg.Listen, log, reg)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster mode (cluster.catalog %s): %w", cfg.Cluster.Catalog.Redacted(), err)
		}
		return n, n.Close, nil
	default:
		eng, err := OpenEngine(ctx, cfg, log, reg)
		if err != nil {
			return nil, nil, err
		}
		return eng, eng.Close, nil
	}
}
