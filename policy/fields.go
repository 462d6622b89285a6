package policy

import (
	"time"

	"github.com/goccy/go-yaml/ast"
)

// configFields is the schema of the file: every key Parse accepts, by
// section, and where its value goes. Keys not listed are errors.
func configFields(c *Config) []field {
	return []field{
		{"data_dir", func(d *decoder, n ast.Node, p string) { d.str(n, p, &c.DataDir) }},
		{"listen", func(d *decoder, n ast.Node, p string) { d.str(n, p, &c.Listen) }},
		{"max_record_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.MaxRecordBytes) }},
		{"max_body_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.MaxBodyBytes) }},
		{"wal", func(d *decoder, n ast.Node, p string) {
			d.mapping(n, p, []field{
				{"sync", func(d *decoder, n ast.Node, p string) { d.syncMode(n, p, &c.WAL.Sync) }},
				{"sync_interval", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &c.WAL.SyncInterval) }},
				{"segment_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.WAL.SegmentBytes) }},
				{"producer_ttl", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &c.WAL.ProducerTTL) }},
			})
		}},
		{"segment", func(d *decoder, n ast.Node, p string) { d.mapping(n, p, segmentFields(&c.Segment)) }},
		{"hot", func(d *decoder, n ast.Node, p string) {
			d.mapping(n, p, []field{
				{"max_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.Hot.MaxBytes) }},
				{"max_age", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &c.Hot.MaxAge) }},
			})
		}},
		{"warm", func(d *decoder, n ast.Node, p string) {
			d.mapping(n, p, []field{
				{"max_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.Warm.MaxBytes) }},
				{"map_cache_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.Warm.MapCacheBytes) }},
			})
		}},
		{"cold", func(d *decoder, n ast.Node, p string) {
			d.mapping(n, p, []field{
				{"store", func(d *decoder, n ast.Node, p string) { d.str(n, p, &c.Cold.Store) }},
				{"compression", func(d *decoder, n ast.Node, p string) {
					d.mapping(n, p, []field{
						{"codec", func(d *decoder, n ast.Node, p string) { d.str(n, p, &c.Cold.Compression.Codec) }},
						{"level", func(d *decoder, n ast.Node, p string) { d.integer(n, p, &c.Cold.Compression.Level) }},
					})
				}},
				{"cache_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.Cold.CacheBytes) }},
				{"delete_delay", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &c.Cold.DeleteDelay) }},
				{"read_timeout", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &c.Cold.ReadTimeout) }},
				{"min_bytes_per_second", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.Cold.MinBytesPerSecond) }},
			})
		}},
		{"migrator", func(d *decoder, n ast.Node, p string) {
			d.mapping(n, p, []field{
				{"schedule", func(d *decoder, n ast.Node, p string) { d.str(n, p, &c.Migrator.Schedule) }},
				{"concurrency", func(d *decoder, n ast.Node, p string) { d.integer(n, p, &c.Migrator.Concurrency) }},
				{"max_bytes_per_second", func(d *decoder, n ast.Node, p string) { d.size(n, p, &c.Migrator.MaxBytesPerSecond) }},
			})
		}},
		{"auth", func(d *decoder, n ast.Node, p string) { d.mapping(n, p, authFields(&c.Auth)) }},
		{"tls", func(d *decoder, n ast.Node, p string) { d.mapping(n, p, tlsFields(&c.TLS)) }},
		{"http", func(d *decoder, n ast.Node, p string) { d.mapping(n, p, httpFields(&c.HTTP)) }},
		{"cluster", func(d *decoder, n ast.Node, p string) { d.mapping(n, p, clusterFields(&c.Cluster)) }},
		{"tables", func(d *decoder, n ast.Node, p string) { d.mapping(n, p, tablesFields(&c.Tables)) }},
		{"policies", func(d *decoder, n ast.Node, p string) {
			d.sequence(n, p, func(d *decoder, n ast.Node, p string) {
				c.Policies = append(c.Policies, Policy{})
				d.mapping(n, p, policyFields(&c.Policies[len(c.Policies)-1]))
			})
		}},
	}
}

// policyFields is one entry of policies:.
func policyFields(pol *Policy) []field {
	maxAge := func(dst *time.Duration) func(d *decoder, n ast.Node, p string) {
		return func(d *decoder, n ast.Node, p string) {
			d.mapping(n, p, []field{{"max_age", func(d *decoder, n ast.Node, p string) { d.duration(n, p, dst) }}})
		}
	}
	return []field{
		{"name", func(d *decoder, n ast.Node, p string) { d.str(n, p, &pol.Name) }},
		{"streams", func(d *decoder, n ast.Node, p string) { d.stringList(n, p, &pol.Streams) }},
		{"segment", func(d *decoder, n ast.Node, p string) { d.mapping(n, p, segmentFields(&pol.Segment)) }},
		{"hot", maxAge(&pol.HotMaxAge)},
		{"warm", maxAge(&pol.WarmMaxAge)},
		{"cold", maxAge(&pol.ColdMaxAge)},
		{"columns", columnsField(&pol.Columns)},
	}
}

// segmentFields is the segment: section, shared with per-stream policies.
func segmentFields(s *SegmentConfig) []field {
	return []field{
		{"max_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &s.MaxBytes) }},
		{"max_age", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &s.MaxAge) }},
	}
}
