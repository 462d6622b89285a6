// Package policy is tierd's configuration: the YAML file that says where data
// lives, how the write path syncs, when segments seal and how much each tier
// may hold. It parses with github.com/goccy/go-yaml's AST so that every
// problem is reported with its file, line and field, all at once.
//
// The top-level settings are node-wide defaults; policies: refines them per
// stream (matched by glob, first match wins), and Plan turns a policy and a
// catalog snapshot into the migrator's actions.
package policy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	coldtier "github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/tiers"
	warmstore "github.com/tierd/tierd/warm"
)

// Config is the whole configuration file. Sizes are bytes, durations
// time.Duration; Default holds every default.
type Config struct {
	// DataDir holds the WAL, the warm segments and the catalog. A relative
	// path is relative to the daemon's working directory, not the file's.
	DataDir string
	// Listen is the HTTP API's host:port.
	Listen string
	// MaxRecordBytes caps one record's value.
	MaxRecordBytes int64
	// MaxBodyBytes caps one append request's body.
	MaxBodyBytes int64

	WAL      WALConfig
	Segment  SegmentConfig
	Hot      HotConfig
	Warm     WarmConfig
	Cold     ColdConfig
	Migrator MigratorConfig
	// Auth holds the API's bearer tokens; none means an open API.
	Auth AuthConfig
	// TLS makes the API HTTPS.
	TLS TLSConfig
	// HTTP bounds the API's connections.
	HTTP HTTPConfig
	// Cluster turns on cluster mode when its catalog is set.
	Cluster ClusterConfig
	// Tables publishes the cold tier as Apache Iceberg tables.
	Tables TablesConfig
	// Policies are tried in order for each stream; the first whose globs
	// match applies, and a stream matching none gets DefaultPolicy. Nil
	// when the file lists none.
	Policies []Policy
}

// WALConfig is the wal: section.
type WALConfig struct {
	Sync         tiers.SyncMode
	SyncInterval time.Duration // fsync period with tiers.SyncInterval
	SegmentBytes int64         // a WAL file rotates at this size
	// ProducerTTL is how long an idempotent producer's last batch is
	// remembered: a retry later than that is appended again.
	ProducerTTL time.Duration
}

// SegmentConfig is the segment: section: when the active segment seals.
type SegmentConfig struct {
	MaxBytes int64
	MaxAge   time.Duration
}

// HotConfig is the hot: section.
type HotConfig struct {
	// MaxBytes is the memory budget of all streams together.
	MaxBytes int64
	// MaxAge is how long a sealed, persisted segment stays in memory.
	MaxAge time.Duration
}

// WarmConfig is the warm: section.
type WarmConfig struct {
	// MaxBytes is the local disk budget of all streams (recorded now,
	// enforced by the migrator).
	MaxBytes int64
	// MapCacheBytes bounds the memory of the warm readers kept open between
	// reads (each costs its segment's block table and key filter; no page
	// of a mapped file stays resident between reads).
	MapCacheBytes int64
}

// ColdConfig is the cold: section: where Parquet segments go.
type ColdConfig struct {
	// Store is the object store URL: s3://BUCKET/PREFIX?endpoint=…&region=…
	// [&driver=minio|aws] or file:///path. Empty means the embedded default,
	// a file store in <data_dir>/cold; StoreNone runs without a cold tier.
	Store       string
	Compression CompressionConfig
	// CacheBytes bounds the cold read cache (footers and recent ranges).
	CacheBytes int64
	// DeleteDelay is how long a segment deleted by retention stays
	// tombstoned before its objects are removed, so that readers that
	// located it just before finish and an operator can still undo a
	// mistaken policy.
	DeleteDelay time.Duration
	// ReadTimeout bounds every wait for the store: a stat, a delete, a
	// listing page, a read's first byte and each later read of its body. A
	// store that does not answer within it is failing (a cold read answers
	// 503 cold_store_unavailable) and is probed until it answers again.
	ReadTimeout time.Duration
	// MinBytesPerSecond is the slowest transfer rate a healthy store
	// keeps: an upload (or a long ranged read) of n bytes fails after
	// ReadTimeout + n / MinBytesPerSecond.
	MinBytesPerSecond int64
}

// StoreNone as cold.store means no cold tier: segments are never uploaded,
// and warm.max_age (and the warm.max_bytes budget) delete them instead.
const StoreNone = "none"

// ErrNoColdStore is returned by StoreURL when cold.store is none.
var ErrNoColdStore = errors.New("policy: no cold store (cold.store: none)")

// MigratorConfig is the migrator: section: when and how fast segments move.
type MigratorConfig struct {
	// Schedule is a robfig/cron/v3 standard spec: five fields ("*/5 * * *
	// *"), a descriptor (@hourly, @daily, …) or "@every 30s", optionally
	// prefixed with CRON_TZ=Zone.
	Schedule string
	// Concurrency is how many moves run at once, at least 1.
	Concurrency int
	// MaxBytesPerSecond caps the bytes moved per second, all moves
	// together; 0 means no limit.
	MaxBytesPerSecond int64
}

// CompressionConfig is cold.compression.
type CompressionConfig struct {
	Codec string // only zstd
	Level int    // zstd level, 1 (fastest) to 22
}

// HasColdStore reports whether the node has a cold tier (cold.store is not
// none).
func (c Config) HasColdStore() bool { return c.Cold.Store != StoreNone }

// StoreURL returns the cold store URL with the embedded default filled in,
// or ErrNoColdStore.
func (c Config) StoreURL() (string, error) {
	if c.Cold.Store == StoreNone {
		return "", ErrNoColdStore
	}
	if c.Cold.Store != "" {
		return c.Cold.Store, nil
	}
	dir, err := filepath.Abs(filepath.Join(c.DataDir, "cold"))
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: dir}).String(), nil
}

// The defaults no package below policy owns (the server and the migrator
// import policy, so they take theirs from here).
const (
	DefaultDataDir             = "./tierd-data"
	DefaultListen              = "127.0.0.1:7070"
	DefaultMaxBodyBytes        = 64 * MiB
	DefaultWarmMaxBytes        = 100 * GiB
	DefaultDeleteDelay         = time.Hour
	DefaultMigratorSchedule    = "@every 30s"
	DefaultMigratorConcurrency = 2
	DefaultMigratorBytesPerSec = 64 * MiB
	DefaultHTTPReadTimeout     = time.Minute
	DefaultHTTPIdleTimeout     = 2 * time.Minute
	DefaultHTTPMaxConnections  = 10000
)

// Default returns the configuration of an empty file: the one place the
// configuration's defaults are assembled (examples/tierd.yaml spells them
// out). Each value is written once: a default the package using it owns
// (the warm and cold stores', a record's cap) is that package's constant,
// so a zero Options field and an empty configuration agree; the hot tier's
// and the WAL's are in tiers (tiers.DefaultHotMaxBytes and its siblings).
func Default() Config {
	return Config{
		DataDir:        DefaultDataDir,
		Listen:         DefaultListen,
		MaxRecordBytes: tiers.DefaultMaxRecordBytes,
		MaxBodyBytes:   DefaultMaxBodyBytes,
		WAL: WALConfig{Sync: tiers.SyncAlways, SyncInterval: tiers.DefaultWALSyncInterval, SegmentBytes: tiers.DefaultWALSegmentBytes,
			ProducerTTL: tiers.DefaultProducerTTL},
		Segment: SegmentConfig{MaxBytes: tiers.DefaultSegmentMaxBytes, MaxAge: tiers.DefaultSegmentMaxAge},
		Hot:     HotConfig{MaxBytes: tiers.DefaultHotMaxBytes, MaxAge: tiers.DefaultHotMaxAge},
		Warm:    WarmConfig{MaxBytes: DefaultWarmMaxBytes, MapCacheBytes: warmstore.DefaultMapCacheBytes},
		Cold: ColdConfig{Compression: CompressionConfig{Codec: "zstd", Level: pqfile.DefaultLevel}, CacheBytes: coldtier.DefaultCacheBytes,
			DeleteDelay: DefaultDeleteDelay, ReadTimeout: objstore.DefaultReadTimeout, MinBytesPerSecond: objstore.DefaultMinBytesPerSecond},
		Migrator: MigratorConfig{Schedule: DefaultMigratorSchedule, Concurrency: DefaultMigratorConcurrency, MaxBytesPerSecond: DefaultMigratorBytesPerSec},
		HTTP:     HTTPConfig{ReadTimeout: DefaultHTTPReadTimeout, IdleTimeout: DefaultHTTPIdleTimeout, MaxConnections: DefaultHTTPMaxConnections},
		Cluster: ClusterConfig{NodeID: DefaultNodeID(), FlushInterval: DefaultClusterFlushInterval, FlushBytes: DefaultClusterFlushBytes,
			GCDelay: DefaultClusterGCDelay, CacheBytes: DefaultClusterCacheBytes, CompactionLease: DefaultClusterCompactionLease},
		Tables: TablesConfig{Enabled: true, Namespace: DefaultTablesNamespace, CommitInterval: DefaultTablesCommitInterval},
	}
}

// Validate checks a Config built in code with the rules Parse applies to a
// file. The returned *ValidationError has no file or lines.
func (c Config) Validate() error {
	v := validator{bad: map[string]bool{}}
	v.check(&c)
	return v.result()
}

// position is where a field's value is in the file.
type position struct{ line, col int }

// validator collects FieldErrors for the rules that span a whole Config.
// Positions come from the parser; a field it did not see has none. Fields
// the parser already rejected are in bad and skipped, so one mistake is
// reported once.
type validator struct {
	file string
	pos  map[string]position
	bad  map[string]bool
	errs []FieldError
}

// errorf records a problem with field, located at the field or, for one the
// file did not set (a missing policy name), at its nearest enclosing one.
func (v *validator) errorf(field, format string, args ...any) {
	p := v.where(field)
	v.errs = append(v.errs, FieldError{File: v.file, Line: p.line, Column: p.col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// where returns the position of field or of its nearest ancestor the file
// set ("policies[2].name" falls back to "policies[2]").
func (v *validator) where(field string) position {
	for f := field; f != ""; f = parentPath(f) {
		if p, ok := v.pos[f]; ok {
			return p
		}
	}
	return position{}
}

// parentPath drops the last ".key" or "[i]" of a field path.
func parentPath(f string) string {
	i := strings.LastIndexAny(f, ".[")
	if i < 0 {
		return ""
	}
	return f[:i]
}

// ok reports whether all of fields hold values that decoded.
func (v *validator) ok(fields ...string) bool {
	for _, f := range fields {
		if v.bad[f] {
			return false
		}
	}
	return true
}

// set reports whether the file gave field a value.
func (v *validator) set(field string) bool {
	_, ok := v.pos[field]
	return ok
}

func (v *validator) result() error {
	if len(v.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(v.errs, func(a, b FieldError) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return &ValidationError{Errors: v.errs}
}

// check applies every rule to c.
func (v *validator) check(c *Config) {
	if v.ok("data_dir") && strings.TrimSpace(c.DataDir) == "" {
		v.errorf("data_dir", "must not be empty")
	}
	if v.ok("listen") {
		if err := checkHostPort(c.Listen); err != nil {
			v.errorf("listen", "%q is not host:port: %v", c.Listen, err)
		}
	}
	for _, f := range []struct {
		field string
		n     int64
	}{
		{"max_record_bytes", c.MaxRecordBytes},
		{"max_body_bytes", c.MaxBodyBytes},
		{"wal.segment_bytes", c.WAL.SegmentBytes},
		{"segment.max_bytes", c.Segment.MaxBytes},
		{"hot.max_bytes", c.Hot.MaxBytes},
		{"warm.max_bytes", c.Warm.MaxBytes},
		{"warm.map_cache_bytes", c.Warm.MapCacheBytes},
		{"cold.cache_bytes", c.Cold.CacheBytes},
		{"cold.min_bytes_per_second", c.Cold.MinBytesPerSecond},
	} {
		if v.ok(f.field) && f.n <= 0 {
			v.bad[f.field] = true
			v.errorf(f.field, "%s must be positive", FormatSize(f.n))
		}
	}
	for _, f := range []struct {
		field string
		d     time.Duration
	}{
		{"segment.max_age", c.Segment.MaxAge},
		{"hot.max_age", c.Hot.MaxAge},
		{"cold.read_timeout", c.Cold.ReadTimeout},
	} {
		if v.ok(f.field) && f.d <= 0 {
			v.bad[f.field] = true
			v.errorf(f.field, "%s must be positive", FormatDuration(f.d))
		}
	}
	if v.ok("cold.delete_delay") && c.Cold.DeleteDelay < 0 {
		v.errorf("cold.delete_delay", "%s must not be negative", FormatDuration(c.Cold.DeleteDelay))
	}
	if v.ok("migrator.schedule") {
		if err := CheckSchedule(c.Migrator.Schedule); err != nil {
			v.errorf("migrator.schedule", "%v", err)
		}
	}
	if v.ok("migrator.max_bytes_per_second") && c.Migrator.MaxBytesPerSecond < 0 {
		v.errorf("migrator.max_bytes_per_second", "%s must not be negative (0 means no limit)", FormatSize(c.Migrator.MaxBytesPerSecond))
	}
	if v.ok("migrator.concurrency") && c.Migrator.Concurrency < 1 {
		v.errorf("migrator.concurrency", "%d must be at least 1", c.Migrator.Concurrency)
	}
	if v.ok("wal.sync") && !slices.Contains(tiers.SyncModes(), c.WAL.Sync) {
		v.bad["wal.sync"] = true
		v.errorf("wal.sync", "%s", badSyncMode(string(c.WAL.Sync)))
	}
	if v.ok("wal.sync_interval") {
		switch d := c.WAL.SyncInterval; {
		case d < 0:
			v.errorf("wal.sync_interval", "%s must not be negative", FormatDuration(d))
		case d == 0 && c.WAL.Sync == tiers.SyncInterval && v.ok("wal.sync"):
			v.errorf("wal.sync_interval", "must be positive with sync: interval")
		}
	}
	if v.ok("wal.producer_ttl") && c.WAL.ProducerTTL < time.Minute {
		v.errorf("wal.producer_ttl", "%s must be at least 1m: a producer's retries must find its last batch", FormatDuration(c.WAL.ProducerTTL))
	}
	if v.ok("cold.store") && c.Cold.Store != "" && c.Cold.Store != StoreNone {
		if err := checkStoreURL(c.Cold.Store); err != nil {
			v.errorf("cold.store", "%v", err)
		}
	}
	if v.ok("cold.compression.codec") && c.Cold.Compression.Codec != "zstd" {
		v.errorf("cold.compression.codec", "%q is not supported (only zstd)", c.Cold.Compression.Codec)
	}
	if v.ok("cold.compression.level") && (c.Cold.Compression.Level < 1 || c.Cold.Compression.Level > 22) {
		v.errorf("cold.compression.level", "%d is not a zstd level from 1 to 22", c.Cold.Compression.Level)
	}
	v.notAbove(c.Segment.MaxBytes, "segment.max_bytes", c.Hot.MaxBytes, "hot.max_bytes", "a sealed segment must fit in the memory budget")
	v.notAbove(c.MaxRecordBytes, "max_record_bytes", c.Segment.MaxBytes, "segment.max_bytes", "a record must fit in a segment")
	v.notAbove(c.MaxRecordBytes, "max_record_bytes", c.MaxBodyBytes, "max_body_bytes", "a record must fit in a request body")
	v.checkPolicies(c)
	v.checkAuth(c)
	v.checkHTTP(c)
	v.checkCluster(c)
	v.checkTables(c)
}

// notAbove reports small < big as an error on whichever of the two fields
// the file set (small's, if both), since that is the line to change.
func (v *validator) notAbove(small int64, smallField string, big int64, bigField, why string) {
	if small <= big || !v.ok(smallField, bigField) {
		return
	}
	if v.set(smallField) || !v.set(bigField) {
		v.errorf(smallField, "%s exceeds %s (%s%s): %s", FormatSize(small), bigField, FormatSize(big), v.defaultNote(bigField), why)
		return
	}
	v.errorf(bigField, "%s is below %s (%s%s): %s", FormatSize(big), smallField, FormatSize(small), v.defaultNote(smallField), why)
}

// defaultNote marks a value the file did not set, so that the operator knows
// the conflict is with a default.
func (v *validator) defaultNote(field string) string {
	if v.pos != nil && !v.set(field) {
		return ", the default"
	}
	return ""
}

func badSyncMode(s string) string {
	names := make([]string, 0, 3)
	for _, m := range tiers.SyncModes() {
		names = append(names, string(m))
	}
	return fmt.Sprintf("%q is not one of %s", s, strings.Join(names, ", "))
}

// checkHostPort accepts what net.Listen("tcp", addr) would: an optional host
// and a numeric port 0–65535.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("bad host %q", host)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// checkStoreURL accepts s3://BUCKET[/PREFIX][?endpoint=…&region=…&driver=minio|aws]
// and file:///absolute/path; the store itself checks the rest when it opens.
func checkStoreURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	switch u.Scheme {
	case "s3":
		if u.Host == "" {
			return fmt.Errorf("%q names no bucket (s3://BUCKET/PREFIX)", raw)
		}
		for k, vals := range u.Query() {
			switch k {
			case "endpoint", "region":
			case "driver":
				if len(vals) != 1 || (vals[0] != "minio" && vals[0] != "aws") {
					return fmt.Errorf("driver=%q is not minio or aws", strings.Join(vals, ","))
				}
			default:
				return fmt.Errorf("unknown parameter %q (endpoint, region, driver)", k)
			}
		}
	case "file":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return fmt.Errorf("%q must be file:///absolute/path", raw)
		}
	default:
		return fmt.Errorf("%q: the scheme must be s3:// or file://", raw)
	}
	return nil
}

// BaseMemory is the heap tierd needs besides what its budgets count: the
// Go runtime's own, goroutine stacks, buffers of requests in flight.
// MemoryLimit counts it once.
const BaseMemory = 32 * MiB

// MemoryLimit is the Go runtime's soft memory limit tierd runs under
// (unless $GOMEMLIMIT sets another): the heap a node with these budgets
// holds live — hot.max_bytes, cold.cache_bytes, warm.map_cache_bytes and
// BaseMemory — plus a quarter of hot.max_bytes for the garbage the
// collector has not reclaimed yet. Without it the collector lets the heap
// grow to twice what is live (GOGC=100), and a full 1 GiB hot tier showed
// as 2 GiB of RSS. The process's RSS adds to it the binary's mapped pages
// and the warm pages of reads in progress (docs/operations.md, Memory).
func (c Config) MemoryLimit() int64 {
	return c.Hot.MaxBytes + c.Hot.MaxBytes/4 + c.Cold.CacheBytes + c.Warm.MapCacheBytes + BaseMemory
}
