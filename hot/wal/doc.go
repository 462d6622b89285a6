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
