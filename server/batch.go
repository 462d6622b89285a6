package server

import (
	"bytes"
	"fmt"
	"io"
	"mime"

	"github.com/tierd/tierd/tiers"
)

// isBatchBody reports whether a Content-Type names the binary batch
// encoding (tiers.BatchMediaType, docs/format/batch.md). Anything else,
// including no Content-Type, is NDJSON as before.
func isBatchBody(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == tiers.BatchMediaType
}

// ParseBatch reads a whole body in the binary batch encoding and returns
// its records, under the same rules as ParseNDJSON: values capped at
// opts.MaxRecordBytes, at most opts.MaxRecords records, records without a
// ts stamped with opts.IngestTS, every record validated, and on any error
// no records at all. The body is checked against its CRC32C before any
// record is decoded, so a body damaged in transit changes nothing. Read
// errors from r (such as *http.MaxBytesError, which is how the body limit
// applies) come wrapped in ErrBodyRead; a malformed body is a
// *tiers.BatchError wrapping tiers.ErrInvalidBatch (400 invalid_batch),
// tiers.ErrBatchTooLarge (413 batch_too_large, like ErrBatchTooLarge) or the
// record sentinels NDJSON uses; an empty batch is ErrEmptyBatch.
func ParseBatch(r io.Reader, opts ParseOptions) ([]tiers.Record, error) {
	// The records' values alias this buffer, so it is never pooled: it
	// lives as long as they do.
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBodyRead, err)
	}
	recs, err := tiers.DecodeBatch(buf.Bytes(), tiers.BatchOptions{
		MaxRecords:    opts.MaxRecords,
		MaxValueBytes: opts.MaxRecordBytes,
		IngestTS:      opts.IngestTS,
	})
	switch {
	case err != nil:
		return nil, err
	case len(recs) == 0:
		return nil, ErrEmptyBatch
	}
	return recs, nil
}
