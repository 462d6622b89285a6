package api

// ErrorBody is the JSON of every error answer, {"error":{"code","message"}},
// and of the line that ends a streamed answer (a read, a progress stream)
// that failed after it began. Error is never nil in what the server sends;
// a decoder that finds it nil did not get an API error (a proxy's page).
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Error is the error object: Code is the stable part a program checks (one
// of the Code* constants), Message says what happened in words.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// The error codes, by the HTTP status they come with. docs/api.md lists
// when each is answered.
const (
	// 400
	CodeInvalidBody       = "invalid_body"
	CodeEmptyBatch        = "empty_batch"
	CodeInvalidBatch      = "invalid_batch"
	CodeInvalidJSON       = "invalid_json"
	CodeInvalidTS         = "invalid_ts"
	CodeInvalidBase64     = "invalid_base64"
	CodeInvalidProducer   = "invalid_producer"
	CodeInvalidParameter  = "invalid_parameter"
	CodeInvalidStreamName = "invalid_stream_name"
	CodeInvalidRecord     = "invalid_record"
	CodeInvalidPath       = "invalid_path"
	// 401 and 403
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	// 404 and 405
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeStreamNotFound   = "stream_not_found"
	CodeSegmentNotFound  = "segment_not_found"
	// CodeNotInClusterMode: a cluster route (GET /v1/cluster) asked of a
	// node in local mode.
	CodeNotInClusterMode = "not_in_cluster_mode"
	// CodeNoTable: the stream has no Iceberg table yet (nothing cold, or
	// not published yet: POST /v1/tables/sync publishes it now).
	CodeNoTable = "no_table"
	// CodeTablesDisabled: a table route asked of a tierd without tables
	// (tables.enabled false, or no cold store).
	CodeTablesDisabled = "tables_disabled"
	// 409
	CodeProducerSequence    = "producer_sequence"
	CodeSegmentNotPersisted = "segment_not_persisted"
	CodeMigratorDisabled    = "migrator_disabled"
	CodeNoColdTier          = "no_cold_tier"
	// 410: the records were deleted by retention.
	CodeExpired = "expired"
	// 413
	CodeBodyTooLarge    = "body_too_large"
	CodeBatchTooLarge   = "batch_too_large"
	CodeKeyTooLarge     = "key_too_large"
	CodeRecordTooLarge  = "record_too_large"
	CodeBatchOverBudget = "batch_over_budget"
	// 503: retry later (Retry-After says when, where it is sent), except
	// storage_failed, which lasts until a restart.
	CodeColdStoreUnavailable = "cold_store_unavailable"
	// CodeTablesUnavailable: the Iceberg catalog or the table's metadata
	// could not be reached or committed now.
	CodeTablesUnavailable  = "tables_unavailable"
	CodeStorageFull        = "storage_full"
	CodeStorageUnavailable = "storage_unavailable"
	CodeStorageFailed      = "storage_failed"
	CodeBackpressure       = "backpressure"
	CodeShuttingDown       = "shutting_down"
	CodeCanceled           = "canceled"
	CodeTooManyConnections = "too_many_connections"
	// CodeOutcomeUnknown: the write's commit was sent and its answer
	// lost (cluster mode); it may be stored. Retry the same batch: an
	// idempotent producer's retry is answered duplicate if it was.
	CodeOutcomeUnknown = "outcome_unknown"
	// 500: data missing or damaged, or a bug.
	CodeSegmentMissing = "segment_missing"
	CodeCorruption     = "corruption"
	CodeInternal       = "internal"
)
