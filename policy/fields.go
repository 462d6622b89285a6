package policy

import "github.com/goccy/go-yaml/ast"

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
			})
		}},
	}
}

// segmentFields is the segment: section, shared with per-stream policies
// when they arrive.
func segmentFields(s *SegmentConfig) []field {
	return []field{
		{"max_bytes", func(d *decoder, n ast.Node, p string) { d.size(n, p, &s.MaxBytes) }},
		{"max_age", func(d *decoder, n ast.Node, p string) { d.duration(n, p, &s.MaxAge) }},
	}
}
