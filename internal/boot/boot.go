// Package boot turns a validated configuration into the parts tierd runs
// on, for the daemon and for tierctl's offline verbs alike, so that both
// open the cold store the same way.
package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/policy"
)

// OpenCold opens the cold tier on cfg's store: an S3 bucket, or by default
// a file store in <data_dir>/cold. It returns nil, nil with cold.store: none.
// A non-nil reg receives the store's request metrics and the read cache's.
func OpenCold(ctx context.Context, cfg policy.Config, log *slog.Logger, reg prometheus.Registerer) (*cold.Tier, error) {
	if !cfg.HasColdStore() {
		return nil, nil
	}
	_, t, err := openStore(ctx, cfg, log, reg)
	return t, err
}

// openStore opens cfg's object store and the cold tier over it: the local
// engine's cold tier, and in cluster mode the shared bucket (journal
// objects) and its Parquet tier.
func openStore(ctx context.Context, cfg policy.Config, log *slog.Logger, reg prometheus.Registerer) (objstore.Bucket, *cold.Tier, error) {
	u, err := cfg.StoreURL()
	if err != nil {
		return nil, nil, err
	}
	b, err := objstore.Open(ctx, u, objstore.Options{Logger: log, Registerer: reg,
		Deadlines: objstore.Deadlines{ReadTimeout: cfg.Cold.ReadTimeout, MinBytesPerSecond: cfg.Cold.MinBytesPerSecond}})
	if err != nil {
		return nil, nil, fmt.Errorf("cold.store: %w", err)
	}
	t, err := cold.New(cold.Options{
		Bucket:     b,
		Level:      cfg.Cold.Compression.Level,
		CacheBytes: cfg.Cold.CacheBytes,
		SpoolDir:   filepath.Join(cfg.DataDir, "cold-spool"),
		Columns:    cfg.ColumnsFor, // typed columns per policy, for local uploads and the compactor's alike
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, t, nil
}

// CheckCold asks the cold store whether tierd can use it, within
// cold.read_timeout and a second, and logs what an operator must fix: a
// missing bucket, refused credentials, an endpoint that is unreachable or
// does not answer. It never stops tierd: hot and warm serve meanwhile,
// uploads and cold reads fail (and are retried) until the store is fixed.
// It returns the check's error for tests; nil without a cold tier.
func CheckCold(ctx context.Context, t *cold.Tier, cfg policy.Config, log *slog.Logger) error {
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Cold.ReadTimeout+time.Second)
	defer cancel()
	err := t.CheckStore(ctx)
	store := StoreURL(cfg)
	var netErr *net.OpError
	switch {
	case err == nil:
		log.Info("cold store answers", "store", store)
	case errors.Is(err, objstore.ErrBucketNotFound):
		log.Warn("cold store: the bucket does not exist; uploads and cold reads fail until it is created", "store", store, "err", err)
	case errors.Is(err, objstore.ErrAccessDenied):
		log.Warn("cold store: the credentials were refused (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the aws driver's credential chain) or do not allow listing the bucket; uploads and cold reads fail until they are fixed", "store", store, "err", err)
	case errors.Is(err, objstore.ErrTimeout), errors.Is(err, objstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		log.Warn("cold store: the endpoint does not answer within cold.read_timeout; its calls fail fast until it answers a probe", "store", store, "read_timeout", cfg.Cold.ReadTimeout, "err", err)
	case errors.As(err, &netErr):
		log.Warn("cold store: the endpoint is unreachable; uploads and cold reads fail until it is", "store", store, "err", err)
	default:
		log.Warn("cold store: the check failed; uploads and cold reads may fail", "store", store, "err", err)
	}
	return err
}

// StoreURL is cfg's cold store URL with anything that could be a
// credential removed, fit for logs; "none" without a cold store.
func StoreURL(cfg policy.Config) string {
	raw, err := cfg.StoreURL()
	if err != nil {
		return "none"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

// LoadConfig reads the configuration file at path (the embedded defaults
// when path is ""), applies the command line's overrides of data_dir and
// listen (ignored when ""), and validates the result, so that the daemon
// and tierctl's offline verbs see one configuration the same way.
func LoadConfig(path, dataDir, listen string) (policy.Config, error) {
	cfg := policy.Default()
	if path != "" {
		var err error
		if cfg, err = policy.Load(path); err != nil {
			return policy.Config{}, err
		}
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if listen != "" {
		cfg.Listen = listen
	}
	if err := cfg.Validate(); err != nil {
		return policy.Config{}, err
	}
	return cfg, nil
}
