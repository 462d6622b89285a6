package boot

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/hot"
	"github.com/tierd/tierd/policy"
)

// EngineOptions is the engine a validated configuration describes, over
// coldTier (nil for none; see OpenCold): the one translation of the
// configuration's fields into engine.Options, used by tierd to open the
// engine and by tierctl catalog rebuild to find the data directory, the
// cold store and the retention markers the engine would use. log and reg
// (either may be nil) become the engine's Logger and Registerer.
func EngineOptions(cfg policy.Config, coldTier *cold.Tier, log *slog.Logger, reg prometheus.Registerer) engine.Options {
	return engine.Options{
		DataDir:         cfg.DataDir,
		WALSync:         cfg.WAL.Sync,
		WALSyncInterval: cfg.WAL.SyncInterval,
		WALSegmentBytes: cfg.WAL.SegmentBytes,
		ProducerTTL:     cfg.WAL.ProducerTTL,
		HotMaxBytes:     cfg.Hot.MaxBytes,
		WarmMaxBytes:    cfg.Warm.MaxBytes,
		HotResidency:    cfg.Hot.MaxAge,
		SegmentMaxBytes: cfg.Segment.MaxBytes,
		SegmentMaxAge:   cfg.Segment.MaxAge,
		StreamPolicy: func(stream string) hot.StreamPolicy {
			p := cfg.PolicyFor(stream)
			return hot.StreamPolicy{SegmentMaxBytes: p.Segment.MaxBytes, SegmentMaxAge: p.Segment.MaxAge, Residency: p.HotMaxAge}
		},
		HotTick:           HotTick(cfg),
		MaxRecordBytes:    int(cfg.MaxRecordBytes),
		WarmMapCacheBytes: cfg.Warm.MapCacheBytes,
		Cold:              coldTier,
		Tables:            TablesOpener(cfg, "", log, reg),
		Config:            &cfg,
		Logger:            log,
		Registerer:        reg,
	}
}

// OpenEngine opens the cold tier (OpenCold), checks it (CheckCold: a broken
// store is logged, it does not stop the start) and opens the engine on
// EngineOptions. The engine owns the cold tier from then on; on error
// nothing stays open.
func OpenEngine(ctx context.Context, cfg policy.Config, log *slog.Logger, reg prometheus.Registerer) (*engine.Engine, error) {
	coldTier, err := OpenCold(ctx, cfg, log, reg)
	if err != nil {
		return nil, err
	}
	CheckCold(ctx, coldTier, cfg, log)
	eng, err := engine.Open(ctx, EngineOptions(cfg, coldTier, log, reg))
	if err != nil {
		if coldTier != nil {
			coldTier.Close()
		}
		return nil, err
	}
	return eng, nil
}

// HotTick is how often the hot tier looks for segments to seal or evict by
// age: hot.TickFor the smallest segment or residency age of any policy.
func HotTick(cfg policy.Config) time.Duration {
	d := min(cfg.Segment.MaxAge, cfg.Hot.MaxAge)
	for _, p := range cfg.Policies {
		p = cfg.Resolve(p)
		d = min(d, p.Segment.MaxAge, p.HotMaxAge)
	}
	return hot.TickFor(d)
}
