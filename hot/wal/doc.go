// Package wal is tierd's write-ahead log, shared by all streams.
//
// One log serves every stream so that one group commit — one write and one
// fsync — covers every batch that arrived in the window, whatever streams
// they belong to; that is what lets one node hold very many streams. The
// log is a directory of files <seq:020d>.wal, each a header followed by
// CRC32C-framed batches (docs/format/wal.md). Open replays it, repairing a
// torn tail of the newest file only; Checkpoint deletes files whose records
// are persisted elsewhere.
package wal

import "fmt"

// SyncMode says when an append is acknowledged.
type SyncMode int

// The sync modes of wal.sync.
const (
	SyncAlways   SyncMode = iota // ack after fsync (default)
	SyncInterval                 // ack after write; fsync every interval
	SyncNone                     // ack after write; never fsync on the append path
)

// String returns the configuration spelling: "always", "interval" or "none".
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("syncmode(%d)", int(m))
}

// ParseSyncMode is the inverse of SyncMode.String, for the wal.sync setting.
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("wal: unknown sync mode %q (want always, interval or none)", s)
}
