// Package api is tierd's HTTP API on the wire: the JSON answers the server
// writes and the client reads, the error codes and the header names
// (docs/api.md is the reference). The server encodes these types and the
// client decodes them, so the two cannot drift apart; the standard library
// is its only dependency, so any Go program can speak the API with it.
//
// Times are time.Time: encoding/json writes them as RFC 3339 with as many
// fractional digits as needed, in the location they carry, so the server
// fills them in UTC. A field tagged omitzero is left out when zero (the
// server has nothing to say), never written as the zero time.
package api

import "time"

// The producer headers: an idempotent producer sends, with each append, its
// ID and the batch's sequence number in the stream; a retry repeats both
// and is answered with the offsets the batch already got (Duplicate)
// instead of being appended twice (docs/api.md, "Idempotent producers").
// The server echoes HeaderProducerSeq on every answer to such an append.
const (
	HeaderProducerID  = "Tierd-Producer-Id"
	HeaderProducerSeq = "Tierd-Producer-Seq"
)

// MediaNDJSON is the media type of NDJSON bodies: appends, reads and
// progress streams (asked for with "Accept: application/x-ndjson").
const MediaNDJSON = "application/x-ndjson"

// UTC returns t in UTC, and the zero time unchanged, which is how every
// time goes on the wire.
func UTC(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// UnixNano returns the time of ns Unix nanoseconds in UTC: a record's ts as
// the wire carries it.
func UnixNano(ns int64) time.Time { return time.Unix(0, ns).UTC() }
