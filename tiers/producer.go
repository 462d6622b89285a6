package tiers

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// ProducerID names an idempotent producer: 16 random bytes, written as 32
// lowercase hex digits (the Tierd-Producer-Id header, the WAL's producer
// table). The zero ID means no producer.
type ProducerID [16]byte

// IsZero reports whether id is the zero ID.
func (id ProducerID) IsZero() bool { return id == ProducerID{} }

// String renders id as 32 lowercase hex digits.
func (id ProducerID) String() string { return hex.EncodeToString(id[:]) }

// ParseProducerID reads 32 lowercase hex digits; the zero ID is refused.
func ParseProducerID(s string) (ProducerID, error) {
	var id ProducerID
	if len(s) != 2*len(id) || strings.ToLower(s) != s {
		return id, fmt.Errorf("producer id %q: want 32 lowercase hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil || id.IsZero() {
		return ProducerID{}, fmt.Errorf("producer id %q: want 32 lowercase hex digits, not all zero", s)
	}
	return id, nil
}

// Producer identifies an idempotent producer's batch: the producer and the
// batch's sequence number, at least 1 and larger than the producer's
// previous batch to the stream (a retry repeats it). The zero Producer is
// a plain append. It is the shared vocabulary of the API (which parses it
// from the producer headers), the engine and the hot tier (which answer a
// retry with the offsets the batch already got) and the WAL (which keeps
// each producer's last batch).
type Producer struct {
	ID  ProducerID
	Seq uint64
}
