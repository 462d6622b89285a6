// Package wal is tierd's write-ahead log, shared by all streams.
package wal

// SyncMode says when an append is acknowledged.
type SyncMode int

// The sync modes of wal.sync.
const (
	SyncAlways   SyncMode = iota // ack after fsync (default)
	SyncInterval                 // ack after write; fsync every interval
	SyncNone                     // ack after write; never fsync on the append path
)
