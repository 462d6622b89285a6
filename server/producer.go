package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/tiers"
)

// An idempotent producer sends, with each append, its ID and the batch's
// sequence number in the stream (api.api.HeaderProducerID, api.HeaderProducerSeq);
// a retry repeats both, and is answered with the offsets the batch already
// got ("duplicate": true) instead of being appended twice (docs/api.md,
// "Idempotent producers").

// errInvalidProducer marks bad producer headers.
var errInvalidProducer = errors.New("server: invalid producer headers")

// parseProducer reads the producer headers: both or neither.
func parseProducer(r *http.Request) (tiers.Producer, error) {
	idv, seqv := r.Header.Values(api.HeaderProducerID), r.Header.Values(api.HeaderProducerSeq)
	if len(idv) == 0 && len(seqv) == 0 {
		return tiers.Producer{}, nil
	}
	if len(idv) != 1 || len(seqv) != 1 {
		return tiers.Producer{}, fmt.Errorf("%w: send %s and %s together, once each", errInvalidProducer, api.HeaderProducerID, api.HeaderProducerSeq)
	}
	id, err := tiers.ParseProducerID(idv[0])
	if err != nil {
		return tiers.Producer{}, fmt.Errorf("%w: %s: %v", errInvalidProducer, api.HeaderProducerID, err)
	}
	seq, err := strconv.ParseUint(seqv[0], 10, 64)
	if err != nil || seq == 0 {
		return tiers.Producer{}, fmt.Errorf("%w: %s %q: want an integer from 1", errInvalidProducer, api.HeaderProducerSeq, seqv[0])
	}
	return tiers.Producer{ID: id, Seq: seq}, nil
}
