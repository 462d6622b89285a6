package boot

import (
	"context"
	"errors"
	"log/slog"
	"os"
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

// TestOpenBackendClusterRefused: a cluster configuration is refused with
// ErrClusterNotBuilt, the DSN redacted, before anything is created.
func TestOpenBackendClusterRefused(t *testing.T) {
	cfg := policy.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Cold.Store = "file://" + filepath.Join(t.TempDir(), "shared")
	cfg.Cluster.Catalog = "postgres://tierd:hunter2pw@127.0.0.1:5432/tierd"
	b, closeFn, err := OpenBackend(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if !errors.Is(err, ErrClusterNotBuilt) || b != nil || closeFn != nil {
		t.Fatalf("OpenBackend in cluster mode = %v, %v, %v; want ErrClusterNotBuilt", b, closeFn != nil, err)
	}
	if strings.Contains(err.Error(), "hunter2pw") || !strings.Contains(err.Error(), "postgres://tierd:xxxxx@127.0.0.1:5432/tierd") {
		t.Fatalf("error %q: want the DSN redacted", err)
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refusal created the data directory: %v", err)
	}
}
