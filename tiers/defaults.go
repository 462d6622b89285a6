package tiers

import "time"

// The defaults of the hot tier's and the WAL's settings. They live in the
// vocabulary every package imports so that each is written once: the
// configuration (package policy) fills an empty file with them, and hot and
// hot/wal apply them to the zero fields of their Options; policy cannot take
// them from those packages, since the server and the mover import policy and
// must not import the hot tier.
const (
	// DefaultWALSyncInterval is wal.sync_interval.
	DefaultWALSyncInterval = 10 * time.Millisecond
	// DefaultWALSegmentBytes is wal.segment_bytes.
	DefaultWALSegmentBytes = 64 << 20
	// DefaultProducerTTL is wal.producer_ttl.
	DefaultProducerTTL = 7 * 24 * time.Hour
	// DefaultSegmentMaxBytes is segment.max_bytes.
	DefaultSegmentMaxBytes = 64 << 20
	// DefaultSegmentMaxAge is segment.max_age.
	DefaultSegmentMaxAge = 10 * time.Minute
	// DefaultHotMaxBytes is hot.max_bytes.
	DefaultHotMaxBytes = 1 << 30
	// DefaultHotMaxAge is hot.max_age.
	DefaultHotMaxAge = 10 * time.Minute
)
