// Package pqfile is the codec of cold segments: one sealed segment as one
// zstd-compressed Parquet file (docs/format/parquet.md).
//
// Write streams a segment's records into a file with bounded memory (about
// one row group) and computes the segment digest on the way; Open checks a
// file's footer and tierd metadata through an io.ReaderAt, reading only the
// footer, so a cold reader can serve it with ranged GETs; Reader.Scan reads
// only the row groups (and pages) a query needs; Reader.Verify re-reads every
// row and checks the digest. Files are plain Parquet: DuckDB, Spark or
// pyarrow read the same rows. Format 2.0 (what Write writes) stores JSON
// values in a JSON column that engines query (value->>'px') and other
// values in value_bin, ts in µs beside ts_nanos, and the typed columns a
// policy projects from JSON values; the reader also reads format 1 files.
//
// Damaged bytes never panic: they come back as *tiers.CorruptionError.
package pqfile
