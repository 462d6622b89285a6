package boot

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/hot"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// notFromConfig are the engine.Options fields no configuration field sets:
// test seams, the filesystem (tierd runs on the OS; crash tests on memory),
// the catalog (tierd lets the engine open its bbolt file)
// and the clock. A field added to engine.Options must be set by
// EngineOptions or listed here, so that tierd cannot silently run a new
// option on its zero value.
var notFromConfig = map[string]bool{"FS": true, "Catalog": true, "WALOpenFile": true, "WALRetryInterval": true, "Now": true}

// TestEngineOptions: every configuration field the engine takes lands in
// its option, none on a default, with the per-stream policies and the hot
// tick they imply; every engine option is either set from the
// configuration or deliberately not.
func TestEngineOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tierd.yaml")
	yaml := `data_dir: ` + filepath.Join(dir, "data") + `
max_record_bytes: 2MiB
max_body_bytes: 8MiB
wal: {sync: interval, sync_interval: 7ms, segment_bytes: 3MiB, producer_ttl: 2h}
segment: {max_bytes: 5MiB, max_age: 3m}
hot: {max_bytes: 9MiB, max_age: 4m}
warm: {max_bytes: 11GiB, map_cache_bytes: 6MiB}
cold: {store: none}
policies:
  - {name: fast, streams: ["fast.*"], segment: {max_age: 2s}, hot: {max_age: 40s}}
`
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(file, "", "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	o := EngineOptions(cfg, nil, log, reg)
	want := map[string]any{
		"DataDir":           filepath.Join(dir, "data"),
		"WALSync":           tiers.SyncInterval,
		"WALSyncInterval":   7 * time.Millisecond,
		"WALSegmentBytes":   int64(3 << 20),
		"ProducerTTL":       2 * time.Hour,
		"HotMaxBytes":       int64(9 << 20),
		"WarmMaxBytes":      int64(11 << 30),
		"HotResidency":      4 * time.Minute,
		"WarmMapCacheBytes": int64(6 << 20),
		"SegmentMaxBytes":   int64(5 << 20),
		"SegmentMaxAge":     3 * time.Minute,
		"HotTick":           200 * time.Millisecond, // a tenth of fast's 2 s
		"MaxRecordBytes":    2 << 20,
	}
	v := reflect.ValueOf(o)
	for name, w := range want {
		if got := v.FieldByName(name).Interface(); !reflect.DeepEqual(got, w) {
			t.Errorf("Options.%s = %v, want %v", name, got, w)
		}
	}
	if o.Tables != nil {
		t.Error("Options.Tables set with cold.store: none (tables need a cold store)")
	}
	if o.Cold != nil || o.Logger != log || o.Registerer != reg {
		t.Errorf("Cold, Logger, Registerer = %v, %v, %v: not the ones given", o.Cold, o.Logger, o.Registerer)
	}
	if o.Config == nil || !reflect.DeepEqual(*o.Config, cfg) {
		t.Errorf("Options.Config is not the configuration")
	}
	for stream, w := range map[string]hot.StreamPolicy{
		"fast.1": {SegmentMaxBytes: 5 << 20, SegmentMaxAge: 2 * time.Second, Residency: 40 * time.Second},
		"slow":   {SegmentMaxBytes: 5 << 20, SegmentMaxAge: 3 * time.Minute, Residency: 4 * time.Minute},
	} {
		if got := o.StreamPolicy(stream); got != w {
			t.Errorf("StreamPolicy(%q) = %+v, want %+v", stream, got, w)
		}
	}
	checked := map[string]bool{"Cold": true, "Tables": true, "Logger": true, "Registerer": true, "Config": true, "StreamPolicy": true}
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if _, ok := want[name]; !ok && !checked[name] && !notFromConfig[name] {
			t.Errorf("engine.Options.%s is neither set from the configuration by EngineOptions (and checked here) nor listed in notFromConfig", name)
		}
	}
}

// TestEngineOptionsDefaults: an empty configuration gives the engine the
// same values its own zero-field defaults would: each written once, in the
// package that owns it or, for the hot tier's and the WAL's, in tiers (see
// tiers.DefaultHotMaxBytes), which policy, hot and hot/wal all read.
func TestEngineOptionsDefaults(t *testing.T) {
	o := EngineOptions(policy.Default(), nil, nil, nil)
	if o.DataDir != policy.DefaultDataDir || o.MaxRecordBytes != tiers.DefaultMaxRecordBytes || o.WALSync != tiers.SyncAlways ||
		o.WALSegmentBytes != tiers.DefaultWALSegmentBytes || o.WALSyncInterval != tiers.DefaultWALSyncInterval || o.ProducerTTL != tiers.DefaultProducerTTL ||
		o.HotMaxBytes != tiers.DefaultHotMaxBytes || o.HotResidency != tiers.DefaultHotMaxAge ||
		o.SegmentMaxBytes != tiers.DefaultSegmentMaxBytes || o.SegmentMaxAge != tiers.DefaultSegmentMaxAge ||
		o.HotTick != hot.TickFor(min(tiers.DefaultSegmentMaxAge, tiers.DefaultHotMaxAge)) {
		t.Fatalf("EngineOptions(Default()) = %+v: not the packages' defaults", o)
	}
}

// TestOpenEngineAndRebuild: the engine tierd opens on a configuration and
// the rebuild tierctl runs on it (through the same EngineOptions) find the
// same data directory and cold store (the default file store in
// <data_dir>/cold): the stream's warm segments come back in the rebuilt
// catalog, at the path the engine opens. (cmd/tierd's
// TestCatalogRebuildKeepsRetention runs both binaries with retention
// markers.)
func TestOpenEngineAndRebuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := policy.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Segment.MaxBytes = 1 << 10
	eng, err := OpenEngine(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := eng.Append(ctx, "s", []tiers.Record{{Key: string(rune('a' + i)), Value: make([]byte, 200)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(cfg.DataDir, "catalog.db"), filepath.Join(dir, "catalog.db.old")); err != nil {
		t.Fatal(err)
	}
	coldTier, err := OpenCold(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer coldTier.Close()
	o := EngineOptions(cfg, coldTier, nil, nil)
	rep, err := engine.RebuildCatalog(ctx, o.DataDir, o.Cold, o.Logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Streams != 1 || rep.Segments == 0 || rep.WarmFiles != rep.Segments {
		t.Fatalf("rebuild found %+v, want stream s and its warm segments", rep)
	}
	if _, err := engine.RebuildCatalog(ctx, o.DataDir, o.Cold, o.Logger, nil); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("second rebuild: %v, want catalog.ErrExists (the same catalog path)", err)
	}
}
