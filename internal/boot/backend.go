package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/server"
)

// ErrClusterNotBuilt is OpenBackend's answer to a configuration in
// cluster mode while this binary has no cluster node to open.
var ErrClusterNotBuilt = errors.New("boot: cluster mode is not built into this binary yet")

// CloseFunc ends what OpenBackend opened, waiting for it within ctx.
type CloseFunc func(ctx context.Context) error

// OpenBackend opens what the daemon serves, chosen by the configuration in
// this one place: in local mode (no cluster.catalog) the engine, as
// OpenEngine opens it; in cluster mode a cluster node. The migrator and
// the local-only tools reach the engine by asserting *engine.Engine on the
// result. On error nothing stays open, and in cluster mode nothing is
// created on disk before the refusal.
func OpenBackend(ctx context.Context, cfg policy.Config, log *slog.Logger, reg prometheus.Registerer) (server.Backend, CloseFunc, error) {
	switch {
	case cfg.Cluster.Enabled():
		return nil, nil, fmt.Errorf("cluster.catalog is set (%s): %w; remove it to run in local mode", cfg.Cluster.Catalog.Redacted(), ErrClusterNotBuilt)
	default:
		eng, err := OpenEngine(ctx, cfg, log, reg)
		if err != nil {
			return nil, nil, err
		}
		return eng, eng.Close, nil
	}
}
