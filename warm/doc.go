// Package warm is tierd's local journal: one immutable file per sealed
// segment at <dir>/<stream>/<base:020d>.seg, written atomically (temp file,
// fsync, rename, directory fsync) and read through a shared, read-only mmap.
//
// The byte layout is documented in docs/format/segment.md. Everything read
// from a file is bounds-checked before the mapping is sliced, so a damaged,
// truncated or foreign file yields a *tiers.CorruptionError from Acquire,
// Get, Scan or Verify and never a panic. A file truncated underneath a live
// mapping (by someone else) faults on access; reads convert that fault into
// a CorruptionError too.
//
// Mapped pages do not stay resident between reads: each read gives back
// the pages it touched, and the readers cached between reads are bounded
// by the bytes of their footer copies (Options.MapCacheBytes; pages.go).
package warm
