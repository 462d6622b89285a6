package policy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/cold/colproj"
	"github.com/tierd/tierd/tiers"
)

func TestDefaults(t *testing.T) {
	want := Config{
		DataDir: "./tierd-data", Listen: "127.0.0.1:7070",
		MaxRecordBytes: 1 << 20, MaxBodyBytes: 64 << 20,
		WAL:      WALConfig{Sync: tiers.SyncAlways, SyncInterval: 10 * time.Millisecond, SegmentBytes: 64 << 20, ProducerTTL: 7 * 24 * time.Hour},
		Segment:  SegmentConfig{MaxBytes: 64 << 20, MaxAge: 10 * time.Minute},
		Hot:      HotConfig{MaxBytes: 1 << 30, MaxAge: 10 * time.Minute},
		Warm:     WarmConfig{MaxBytes: 100 << 30, MapCacheBytes: 32 << 20},
		Cold:     ColdConfig{Compression: CompressionConfig{Codec: "zstd", Level: 3}, CacheBytes: 64 << 20, DeleteDelay: time.Hour, ReadTimeout: 10 * time.Second, MinBytesPerSecond: 1 << 20},
		Migrator: MigratorConfig{Schedule: "@every 30s", Concurrency: 2, MaxBytesPerSecond: 64 << 20},
		HTTP:     HTTPConfig{ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxConnections: 10000},
		Cluster: ClusterConfig{NodeID: DefaultNodeID(), FlushInterval: 50 * time.Millisecond, FlushBytes: 8 << 20, GCDelay: 10 * time.Minute,
			CacheBytes: 1 << 30, CompactionLease: 30 * time.Second},
		Tables: TablesConfig{Enabled: true, Namespace: "tierd", CommitInterval: 10 * time.Second},
	}
	if !reflect.DeepEqual(Default(), want) {
		t.Fatalf("Default() = %+v, want %+v", Default(), want)
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	for _, in := range []string{"", "\n", "# nothing here\n", "---\n", "---\n...\n", "wal:\nhot: {}\n", "%YAML 1.2\n---\n"} {
		got, err := Parse("empty.yaml", []byte(in))
		if err != nil || !reflect.DeepEqual(got, Default()) {
			t.Errorf("Parse(%q) = %+v, %v; want the defaults", in, got, err)
		}
	}
}

func TestParseGood(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want func(c *Config)
	}{
		{"subset", "listen: :8080\nwal: {sync: none}\n", func(c *Config) { c.Listen = ":8080"; c.WAL.Sync = tiers.SyncNone }},
		{"every field", `
data_dir: /var/lib/tierd
listen: "[::1]:0"
max_record_bytes: 4KiB
max_body_bytes: 1048576
wal: {sync: interval, sync_interval: 5ms, segment_bytes: 128MiB, producer_ttl: 2d}
segment: {max_bytes: 16MiB, max_age: 1h30m}
hot: {max_bytes: 2GiB, max_age: 1d}
warm: {max_bytes: 2TiB, map_cache_bytes: 8MiB}
cold: {store: "s3://archive/tierd?endpoint=http://127.0.0.1:9000&region=us-east-1&driver=aws", compression: {codec: zstd, level: 9}, cache_bytes: 16MiB, delete_delay: 0s, read_timeout: 3s, min_bytes_per_second: 256KiB}
migrator: {schedule: "CRON_TZ=UTC */5 * * * mon-fri", concurrency: 8, max_bytes_per_second: 0}
http: {read_timeout: 30s, idle_timeout: 1m, max_connections: 500}
cluster: {catalog: "postgres://tierd@db:5432/tierd?sslmode=require", node_id: n-1, flush_interval: 20ms, flush_bytes: 4MiB, gc_delay: 1h, cache_bytes: 2GiB, compaction_lease: 1m}
tables: {enabled: false, namespace: archive_2, commit_interval: 1m}
policies:
  - {name: a, streams: [x], segment: {max_bytes: 1MiB}, hot: {max_age: 1m}, warm: {max_age: 1h}, cold: {max_age: 1y},
     columns: [{name: px, path: $.px, type: double}, {name: amt, path: "$['amount']", type: decimal, precision: 18, scale: 4}]}
`, func(c *Config) {
			*c = Config{
				DataDir: "/var/lib/tierd", Listen: "[::1]:0", MaxRecordBytes: 4096, MaxBodyBytes: 1 << 20,
				WAL:     WALConfig{Sync: tiers.SyncInterval, SyncInterval: 5 * time.Millisecond, SegmentBytes: 128 << 20, ProducerTTL: 48 * time.Hour},
				Segment: SegmentConfig{MaxBytes: 16 << 20, MaxAge: 90 * time.Minute},
				Hot:     HotConfig{MaxBytes: 2 << 30, MaxAge: 24 * time.Hour},
				Warm:    WarmConfig{MaxBytes: 2 << 40, MapCacheBytes: 8 << 20},
				Cold: ColdConfig{Store: "s3://archive/tierd?endpoint=http://127.0.0.1:9000&region=us-east-1&driver=aws",
					Compression: CompressionConfig{Codec: "zstd", Level: 9}, CacheBytes: 16 << 20, ReadTimeout: 3 * time.Second, MinBytesPerSecond: 256 << 10},
				Migrator: MigratorConfig{Schedule: "CRON_TZ=UTC */5 * * * mon-fri", Concurrency: 8},
				HTTP:     HTTPConfig{ReadTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxConnections: 500},
				Cluster: ClusterConfig{Catalog: "postgres://tierd@db:5432/tierd?sslmode=require", NodeID: "n-1", FlushInterval: 20 * time.Millisecond,
					FlushBytes: 4 << 20, GCDelay: time.Hour, CacheBytes: 2 << 30, CompactionLease: time.Minute},
				Tables: TablesConfig{Namespace: "archive_2", CommitInterval: time.Minute},
				Policies: []Policy{{Name: "a", Streams: []string{"x"}, Segment: SegmentConfig{MaxBytes: 1 << 20},
					HotMaxAge: time.Minute, WarmMaxAge: time.Hour, ColdMaxAge: 365 * 24 * time.Hour,
					Columns: []colproj.Column{{Name: "px", Path: "$.px", Type: colproj.Double}, {Name: "amt", Path: "$['amount']", Type: colproj.Decimal, Precision: 18, Scale: 4}}}},
			}
		}},
		{"block style and quoting", "hot:\n  max_bytes: '3GiB'\n  max_age: \"2w\"\ndata_dir: 'my data'\n", func(c *Config) {
			c.Hot.MaxBytes, c.Hot.MaxAge, c.DataDir = 3<<30, 14*24*time.Hour, "my data"
		}},
		{"decimal units", "max_body_bytes: 10MB\nwarm: {max_bytes: 1TB}\n", func(c *Config) { c.MaxBodyBytes, c.Warm.MaxBytes = 10_000_000, 1_000_000_000_000 }},
		{"zero sync interval without interval sync", "wal: {sync: always, sync_interval: 0}\n", func(c *Config) { c.WAL.SyncInterval = 0 }},
		{"explicit string tag", "data_dir: !!str 2024\n", func(c *Config) { c.DataDir = "2024" }},
		{"anchors and merge keys", `
segment: &small {max_bytes: 8MiB, max_age: 1m}
hot:
  <<: *small
  max_age: 2h
`, func(c *Config) {
			c.Segment = SegmentConfig{MaxBytes: 8 << 20, MaxAge: time.Minute}
			c.Hot = HotConfig{MaxBytes: 8 << 20, MaxAge: 2 * time.Hour}
		}},
		{"alias of a scalar", "max_body_bytes: &b 2MiB\nwal: {segment_bytes: *b}\n", func(c *Config) { c.MaxBodyBytes, c.WAL.SegmentBytes = 2<<20, 2<<20 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := Default()
			tc.want(&want)
			got, err := Parse("t.yaml", []byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// loc is the part of a FieldError a test pins down; msg is a substring.
type loc struct {
	line  int
	field string
	msg   string
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []loc
	}{
		{"unknown top-level field", "data_dir: x\nlisten_addr: :1\n", []loc{{2, "listen_addr", "unknown field (want one of data_dir, listen,"}}},
		{"unknown nested field", "wal:\n  sync: always\n  fsync: true\n", []loc{{3, "wal.fsync", "unknown field (want one of sync, sync_interval, segment_bytes, producer_ttl)"}}},
		{"bad sync mode", "listen: :1\nwal: {sync: sometimes}\n", []loc{{2, "wal.sync", `"sometimes" is not one of always, interval, none`}}},
		{"section of the wrong type", "wal: always\n", []loc{{1, "wal", "must be a mapping, not a string"}}},
		{"list where a string belongs", "data_dir: [a, b]\n", []loc{{1, "data_dir", "must be a string, not a list"}}},
		{"number where a string belongs", "listen: 7070\n", []loc{{1, "listen", "must be a string, not an integer"}}},
		{"cold store with a bad scheme", "cold:\n  store: ftp://x/y\n", []loc{{2, "cold.store", "the scheme must be s3:// or file://"}}},
		{"cold store without a bucket", "cold: {store: \"s3:///prefix\"}\n", []loc{{1, "cold.store", "names no bucket"}}},
		{"cold store with a relative path", "cold: {store: \"file://relative/dir\"}\n", []loc{{1, "cold.store", "must be file:///absolute/path"}}},
		{"cold store with a bad driver", "cold: {store: \"s3://b/p?driver=gcs\"}\n", []loc{{1, "cold.store", `driver="gcs" is not minio or aws`}}},
		{"cold codec", "cold:\n  compression:\n    codec: gzip\n", []loc{{3, "cold.compression.codec", `"gzip" is not supported (only zstd)`}}},
		{"cold level out of range", "cold:\n  compression: {level: 30}\n", []loc{{2, "cold.compression.level", "30 is not a zstd level from 1 to 22"}}},
		{"cold level not an integer", "cold:\n  compression: {level: fast}\n", []loc{{2, "cold.compression.level", "must be an integer, not a string"}}},
		{"null value", "data_dir:\nlisten: ~\n", []loc{{1, "data_dir", "has no value"}, {2, "listen", "has no value"}}},
		{"empty data_dir", "data_dir: ''\n", []loc{{1, "data_dir", "must not be empty"}}},
		{"listen without port", "listen: localhost\n", []loc{{1, "listen", `"localhost" is not host:port`}}},
		{"listen with bad port", "listen: 'localhost:http2'\n", []loc{{1, "listen", "port"}}},
		{"listen port out of range", "listen: ':70000'\n", []loc{{1, "listen", "0 to 65535"}}},
		{"bad size unit", "hot:\n  max_bytes: 1GB\nwarm:\n  max_bytes: 10 gigabytes\n", []loc{{4, "warm.max_bytes", `unknown unit "gigabytes"`}}},
		{"float size", "max_body_bytes: 1.5\n", []loc{{1, "max_body_bytes", "must be a size"}}},
		{"boolean size", "max_body_bytes: true\n", []loc{{1, "max_body_bytes", "must be a size"}}},
		{"negative size", "max_body_bytes: -1\nwal: {segment_bytes: -64MiB}\n", []loc{{1, "max_body_bytes", "negative"}, {2, "wal.segment_bytes", "negative"}}},
		{"zero sizes", "max_record_bytes: 0\nwarm: {max_bytes: 0B}\n", []loc{{1, "max_record_bytes", "must be positive"}, {2, "warm.max_bytes", "must be positive"}}},
		{"bad duration unit", "segment:\n  max_age: 10 minutes\n", []loc{{2, "segment.max_age", `unknown unit " minutes"`}}},
		{"duration without unit", "hot: {max_age: 600}\n", []loc{{1, "hot.max_age", "lacks a unit"}}},
		{"zero and negative durations", "segment: {max_age: 0}\nhot: {max_age: -1h}\n", []loc{{1, "segment.max_age", "must be positive"}, {2, "hot.max_age", "must be positive"}}},
		{"interval sync needs an interval", "wal:\n  sync: interval\n  sync_interval: 0s\n", []loc{{3, "wal.sync_interval", "must be positive with sync: interval"}}},
		{"negative sync interval", "wal: {sync_interval: -1ms}\n", []loc{{1, "wal.sync_interval", "must not be negative"}}},
		{"producer ttl too short", "wal: {producer_ttl: 30s}\n", []loc{{1, "wal.producer_ttl", "must be at least 1m"}}},
		{"segment larger than hot, both set", "segment:\n  max_bytes: 2GiB\nhot:\n  max_bytes: 1GiB\n", []loc{{2, "segment.max_bytes", "2GiB exceeds hot.max_bytes (1GiB)"}}},
		{"segment larger than default hot", "segment: {max_bytes: 2GiB}\n", []loc{{1, "segment.max_bytes", "2GiB exceeds hot.max_bytes (1GiB, the default)"}}},
		{"hot smaller than default segment", "\nhot: {max_bytes: 16MiB}\n", []loc{{2, "hot.max_bytes", "16MiB is below segment.max_bytes (64MiB, the default)"}}},
		{"record larger than segment", "max_record_bytes: 2MiB\nsegment: {max_bytes: 1MiB}\n", []loc{{1, "max_record_bytes", "2MiB exceeds segment.max_bytes (1MiB)"}}},
		{"record larger than body", "max_body_bytes: 512KiB\n", []loc{{1, "max_body_bytes", "512KiB is below max_record_bytes (1MiB, the default)"}}},
		{"yaml syntax", "wal: {sync: always\nhot: {}\n", []loc{{2, "", "must be specified"}}},
		{"tab indentation", "wal:\n\tsync: always\n", []loc{{2, "", ""}}},
		{"not a mapping", "- data_dir: x\n", []loc{{1, "", "the configuration must be a mapping of fields, not a list"}}},
		{"two documents", "listen: :1\n---\nlisten: :2\n", []loc{{3, "", "one YAML document"}}},
		{"unknown alias", "data_dir: *nowhere\n", []loc{{1, "data_dir", "refers to no anchor"}}},
		{"alias before its anchor", "listen: *a\ndata_dir: &a x\n", []loc{{1, "listen", "refers to no anchor"}}},
		{"merge of a scalar", "wal:\n  <<: 5\n", []loc{{2, "wal", "<< must merge a mapping"}}},
		{"self-merging anchor", "wal: &w\n  <<: *w\n", []loc{{2, "wal", "nest more than"}}},
		{"non-string key", "wal:\n  1: x\n", []loc{{2, "wal", "field names must be plain strings"}}},
		{"oversized file", "# x\n" + strings.Repeat("#", 1<<20) + "\n", []loc{{0, "", "at most 1MiB"}}},
		{"many errors at once", `data_dir: ""
listen: nowhere
max_record_bytes: 1XB
wal:
  sync: sometimes
  sync_interval: soon
  extra: 1
segment: {max_bytes: 0, max_age: 10}
hot: {max_bytes: lots}
`, []loc{
			{1, "data_dir", "must not be empty"},
			{2, "listen", "not host:port"},
			{3, "max_record_bytes", "unknown unit"},
			{5, "wal.sync", "not one of"},
			{6, "wal.sync_interval", "not a number"},
			{7, "wal.extra", "unknown field"},
			{8, "segment.max_bytes", "must be positive"},
			{8, "segment.max_age", "lacks a unit"},
			{9, "hot.max_bytes", "not a number"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("tierd.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", got)
			}
			if !reflect.DeepEqual(got, Config{}) {
				t.Errorf("Parse returned a non-zero Config with its error: %+v", got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T, want *ValidationError: %v", err, err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ve.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				fe := ve.Errors[i]
				if fe.File != "tierd.yaml" || fe.Line != w.line || fe.Field != w.field || !strings.Contains(fe.Msg, w.msg) {
					t.Errorf("error %d = %+v\nwant line %d, field %q, message containing %q", i, fe, w.line, w.field, w.msg)
				}
				if fe.Line > 0 && fe.Column <= 0 {
					t.Errorf("error %d has no column: %+v", i, fe)
				}
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	in := "# tierd\n\ndata_dir: ./d\nlisten: :1\n\nwal:\n  sync: sometimes\n  segment_bytes: 64XB\n"
	_, err := Parse("tierd.yaml", []byte(in))
	want := `tierd.yaml:7: wal.sync: "sometimes" is not one of always, interval, none
tierd.yaml:8: wal.segment_bytes: size "64XB" has unknown unit "XB" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`
	if err == nil || err.Error() != want {
		t.Fatalf("error text:\n%v\nwant:\n%s", err, want)
	}
	fe := FieldError{Field: "listen", Msg: "bad"}
	if fe.Error() != "listen: bad" {
		t.Fatalf("FieldError without file = %q", fe.Error())
	}
}

func TestValidateInCode(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(c *Config)
		fields []string
	}{
		{"defaults", func(c *Config) {}, nil},
		{"bad sync mode", func(c *Config) { c.WAL.Sync = "sometimes" }, []string{"wal.sync"}},
		{"empty sync mode", func(c *Config) { c.WAL.Sync = "" }, []string{"wal.sync"}},
		{"interval without interval", func(c *Config) { c.WAL.Sync, c.WAL.SyncInterval = tiers.SyncInterval, 0 }, []string{"wal.sync_interval"}},
		{"zero everything", func(c *Config) { *c = Config{WAL: WALConfig{Sync: tiers.SyncNone}} }, []string{
			"data_dir", "listen", "max_record_bytes", "max_body_bytes", "wal.segment_bytes",
			"segment.max_bytes", "hot.max_bytes", "warm.max_bytes", "warm.map_cache_bytes", "cold.cache_bytes", "cold.min_bytes_per_second",
			"segment.max_age", "hot.max_age", "cold.read_timeout",
			"migrator.schedule", "migrator.concurrency", "wal.producer_ttl", "cold.compression.codec", "cold.compression.level",
			"http.read_timeout", "http.idle_timeout", "http.max_connections",
			"cluster.flush_interval", "cluster.flush_bytes", "cluster.gc_delay", "cluster.cache_bytes", "cluster.compaction_lease",
			"tables.namespace", "tables.commit_interval",
		}},
		{"segment over hot", func(c *Config) { c.Segment.MaxBytes = c.Hot.MaxBytes + 1 }, []string{"segment.max_bytes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			var fields []string
			var ve *ValidationError
			if errors.As(err, &ve) {
				for _, fe := range ve.Errors {
					fields = append(fields, fe.Field)
					if fe.Line != 0 || fe.File != "" {
						t.Errorf("in-code error has a position: %+v", fe)
					}
				}
			} else if err != nil {
				t.Fatalf("Validate = %T %v", err, err)
			}
			if !slices.Equal(fields, tc.fields) {
				t.Fatalf("errors on %v, want %v (%v)", fields, tc.fields, err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tierd.yaml")
	if err := os.WriteFile(path, []byte("listen: :9\nhot: {max_age: 1h}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9" || c.Hot.MaxAge != time.Hour || c.DataDir != "./tierd-data" {
		t.Fatalf("Load = %+v", c)
	}
	if err := os.WriteFile(path, []byte("listen: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), path+":1: listen: ") {
		t.Fatalf("Load of a bad file = %v, want an error starting with %s:1: listen:", err, path)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file = %v, want fs.ErrNotExist", err)
	}
}

func TestExampleFile(t *testing.T) {
	path := filepath.Join("..", "examples", "tierd.yaml")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("examples/tierd.yaml: %v", err)
	}
	want := Default()
	want.Policies = []Policy{
		{Name: "trading", Streams: []string{"IF*", "IC*"}, Segment: SegmentConfig{MaxBytes: 16 * MiB, MaxAge: 5 * time.Minute},
			HotMaxAge: time.Hour, WarmMaxAge: 24 * time.Hour, ColdMaxAge: 365 * Day,
			Columns: []colproj.Column{{Name: "px", Path: "$.px", Type: colproj.Double}, {Name: "amount", Path: "$.amount", Type: colproj.Decimal, Precision: 18, Scale: 4}}},
		{Name: "audit", Streams: []string{"audit.*"}, WarmMaxAge: 7 * Day},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("examples/tierd.yaml = %+v\nwant the defaults and two policies %+v", c, want)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("examples/tierd.yaml has warnings: %v", w)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Every setting is spelled out, each with a comment.
	d := &decoder{file: path, pos: map[string]position{}, bad: map[string]bool{}, anchors: map[string][]anchorDef{}}
	body, _ := d.document(data)
	var cfg Config
	d.mapping(body, "", configFields(&cfg))
	var set []string
	for f := range d.pos {
		set = append(set, f)
	}
	slices.Sort(set)
	fields := []string{"cold", "cold.cache_bytes", "cold.compression", "cold.compression.codec", "cold.compression.level", "cold.delete_delay", "cold.min_bytes_per_second", "cold.read_timeout", "cold.store", "data_dir", "hot", "hot.max_age", "hot.max_bytes",
		"http", "http.idle_timeout", "http.max_connections", "http.read_timeout", "listen", "max_body_bytes", "max_record_bytes",
		"migrator", "migrator.concurrency", "migrator.max_bytes_per_second", "migrator.schedule",
		"policies", "policies[0]", "policies[0].cold", "policies[0].cold.max_age",
		"policies[0].columns", "policies[0].columns[0]", "policies[0].columns[0].name", "policies[0].columns[0].path", "policies[0].columns[0].type",
		"policies[0].columns[1]", "policies[0].columns[1].name", "policies[0].columns[1].path", "policies[0].columns[1].precision", "policies[0].columns[1].scale", "policies[0].columns[1].type",
		"policies[0].hot", "policies[0].hot.max_age", "policies[0].name",
		"policies[0].segment", "policies[0].segment.max_age", "policies[0].segment.max_bytes", "policies[0].streams", "policies[0].streams[0]", "policies[0].streams[1]",
		"policies[0].warm", "policies[0].warm.max_age",
		"policies[1]", "policies[1].name", "policies[1].streams", "policies[1].streams[0]", "policies[1].warm", "policies[1].warm.max_age",
		"segment", "segment.max_age", "segment.max_bytes", "tables", "tables.commit_interval", "tables.enabled", "tables.namespace", "wal", "wal.producer_ttl", "wal.segment_bytes", "wal.sync", "wal.sync_interval", "warm", "warm.map_cache_bytes", "warm.max_bytes"}
	if !slices.Equal(set, fields) {
		t.Fatalf("examples/tierd.yaml sets %v, want every field %v", set, fields)
	}
	for i, line := range strings.Split(string(data), "\n") {
		if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") && !strings.Contains(s, " # ") {
			t.Errorf("examples/tierd.yaml:%d has no comment: %q", i+1, line)
		}
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"data_dir: ./d\nlisten: 127.0.0.1:7070\nwal: {sync: interval, sync_interval: 10ms}\n",
		"segment: &s {max_bytes: 1MiB}\nhot:\n  <<: *s\n",
		"wal: &w\n  <<: *w\n",
		"a: [1, {b: *c}]\n---\n- x\n",
		"hot: {max_bytes: 1.5GiB, max_age: 1d12h}\n",
		"cold: {store: none, delete_delay: 0}\nmigrator: {schedule: 'CRON_TZ=UTC */5 * * 1-6 mon-fri', concurrency: 1, max_bytes_per_second: 0}\n",
		"policies:\n  - &p {name: a, streams: ['IF*', '[a-z]?'], segment: {max_bytes: 1MiB, max_age: 1m}, hot: {max_age: 1m}, warm: {max_age: 1h}, cold: {max_age: 1y}}\n  - {<<: *p, name: b}\n  - [x]\n",
		"policies:\n  - {name: '', streams: ['['], warm: {max_age: 1m}, cold: {max_age: 1s}}\n  - {name: '', streams: ''}\n",
		"tables: {enabled: false, namespace: x_1, commit_interval: 1m}\npolicies:\n  - {name: a, streams: [x], columns: [{name: px, path: $.px, type: double}, {name: d, path: \"$['a b'][0]\", type: decimal, precision: 9, scale: 2}, {name: 'TS', type: 5}, [x]]}\n",
		"cold: {store: 's3://b/p'}\ncluster: {catalog: 'postgres://u:pw@db:5432/t?sslmode=disable', node_id: n1, flush_interval: 50ms, flush_bytes: 8MiB, gc_delay: 10m, cache_bytes: 1GiB, compaction_lease: 30s}\n",
	}
	if data, err := os.ReadFile(filepath.Join("..", "examples", "tierd.yaml")); err == nil {
		seeds = append(seeds, string(data))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate rejects: %v", verr)
			}
			return
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Errors) == 0 {
			t.Fatalf("Parse error is not a non-empty *ValidationError: %T %v", err, err)
		}
		for _, fe := range ve.Errors {
			if fe.File != "fuzz.yaml" {
				t.Fatalf("error does not name the file: %+v", fe)
			}
		}
	})
}
