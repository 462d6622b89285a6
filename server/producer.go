package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tierd/tierd/hot"
	"github.com/tierd/tierd/hot/wal"
)

// An idempotent producer sends, with each append, its ID and the batch's
// sequence number in the stream; a retry repeats both, and is answered
// with the offsets the batch already got ("duplicate": true) instead of
// being appended twice (docs/api.md, "Idempotent producers").
const (
	HeaderProducerID  = "Tierd-Producer-Id"
	HeaderProducerSeq = "Tierd-Producer-Seq"
)

// errInvalidProducer marks bad producer headers.
var errInvalidProducer = errors.New("server: invalid producer headers")

// parseProducer reads the producer headers: both or neither.
func parseProducer(r *http.Request) (hot.Producer, error) {
	idv, seqv := r.Header.Values(HeaderProducerID), r.Header.Values(HeaderProducerSeq)
	if len(idv) == 0 && len(seqv) == 0 {
		return hot.Producer{}, nil
	}
	if len(idv) != 1 || len(seqv) != 1 {
		return hot.Producer{}, fmt.Errorf("%w: send %s and %s together, once each", errInvalidProducer, HeaderProducerID, HeaderProducerSeq)
	}
	id, err := wal.ParseProducerID(idv[0])
	if err != nil {
		return hot.Producer{}, fmt.Errorf("%w: %s: %v", errInvalidProducer, HeaderProducerID, err)
	}
	seq, err := strconv.ParseUint(seqv[0], 10, 64)
	if err != nil || seq == 0 {
		return hot.Producer{}, fmt.Errorf("%w: %s %q: want an integer from 1", errInvalidProducer, HeaderProducerSeq, seqv[0])
	}
	return hot.Producer{ID: id, Seq: seq}, nil
}
