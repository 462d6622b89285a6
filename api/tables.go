package api

import "time"

// Table is the answer to GET /v1/streams/{stream}/table: the stream's
// Apache Iceberg table over its cold segments (docs/analytics.md), and a
// ready query for each engine. A stream with no table yet (nothing cold,
// or not published yet) answers 404 no_table; a tierd without tables
// (tables.enabled false, or no cold store) answers 404 tables_disabled.
type Table struct {
	Stream string `json:"stream"`
	// Table is the table's identifier in its catalog, "<namespace>.<stream>".
	Table string `json:"table"`
	// MetadataLocation is the URI of the table's current metadata file,
	// in the cold store beside the data (<cold root>/_iceberg/…): what an
	// engine without the catalog opens.
	MetadataLocation string `json:"metadata_location"`
	// SnapshotID is the table's current snapshot; 0 for none.
	SnapshotID int64 `json:"snapshot_id"`
	// Files and Records count the data files (cold segments) and their
	// records in the current snapshot.
	Files   int64 `json:"files"`
	Records int64 `json:"records"`
	// LastUpdated is when the table's metadata last changed.
	LastUpdated time.Time    `json:"last_updated,omitzero"`
	Queries     TableQueries `json:"queries"`
}

// TableQueries are ready queries of a table, one per engine, as an analyst
// pastes them (docs/analytics.md says what each engine needs first).
type TableQueries struct {
	DuckDB string `json:"duckdb"`
	Spark  string `json:"spark"`
	Trino  string `json:"trino"`
}

// TableSync is what POST /v1/tables/sync did to one stream's table: the
// table made exactly the stream's retained cold segments.
type TableSync struct {
	Stream string `json:"stream"`
	// Added and Removed count the data files the sync's snapshot added and
	// removed; both 0 when the table was already exact (no snapshot).
	Added   int `json:"added"`
	Removed int `json:"removed"`
	// Skipped lists the keys of cold objects that could not be published as
	// they are (Parquet format 1 files: their value column is an
	// unannotated binary and ts is in nanoseconds); they stay readable
	// through tierd and as plain Parquet.
	Skipped []string `json:"skipped,omitempty"`
	// SnapshotID is the table's current snapshot after the sync; 0 for none.
	SnapshotID int64 `json:"snapshot_id"`
	// Error is the sync's failure; the others are then zero. Other streams
	// are synced regardless.
	Error *Error `json:"error,omitempty"`
}

// TableSyncReport is the answer to POST /v1/tables/sync: one TableSync per
// stream synced, ordered by stream, and how many failed.
type TableSyncReport struct {
	Streams []TableSync `json:"streams"`
	Failed  int         `json:"failed"`
}
