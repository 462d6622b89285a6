package boot

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// TestOpenBackendLocal: without cluster.catalog the backend is the engine
// OpenEngine opens, working, and its CloseFunc closes it.
func TestOpenBackendLocal(t *testing.T) {
	cfg := policy.Default()
	cfg.DataDir = t.TempDir()
	ctx := context.Background()
	b, closeFn, err := OpenBackend(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, ok := b.(*engine.Engine)
	if !ok {
		t.Fatalf("local mode's backend is %T, want *engine.Engine (the migrator needs it)", b)
	}
	res, err := b.AppendAs(ctx, "s", tiers.Producer{}, []tiers.Record{{Value: []byte("v")}})
	if err != nil || res.Count != 1 {
		t.Fatalf("append through the backend: %+v, %v", res, err)
	}
	if err := closeFn(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Append(ctx, "s", []tiers.Record{{Value: []byte("v")}}); !errors.Is(err, tiers.ErrClosed) {
		t.Fatalf("append after the CloseFunc: %v, want tiers.ErrClosed", err)
	}
}

// TestOpenBackendClusterRefused: a cluster configuration whose PostgreSQL
// does not answer is refused, the DSN redacted, nothing left open.
func TestOpenBackendClusterRefused(t *testing.T) {
	cfg := policy.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Cold.Store = "file://" + filepath.Join(t.TempDir(), "shared")
	cfg.Cluster.Catalog = "postgres://tierd:hunter2pw@127.0.0.1:1/tierd?connect_timeout=2"
	b, closeFn, err := OpenBackend(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil || b != nil || closeFn != nil {
		t.Fatalf("OpenBackend in cluster mode without a PostgreSQL = %v, %v, %v; want an error", b, closeFn != nil, err)
	}
	if strings.Contains(err.Error(), "hunter2pw") || !strings.Contains(err.Error(), "postgres://tierd:xxxxx@127.0.0.1:1/tierd") {
		t.Fatalf("error %q: want the DSN redacted", err)
	}
}
