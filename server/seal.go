package server

import (
	"net/http"

	"github.com/tierd/tierd/tiers"
)

// sealOut is the answer to POST /v1/streams/{stream}/seal: one shape
// whether or not there was something to seal, so that a script reads
// .segment either way and never special-cases an error.
type sealOut struct {
	Stream string `json:"stream"`
	// Sealed is true when the active segment held records and was sealed
	// and persisted now; false when nothing was appended since the last
	// seal.
	Sealed bool `json:"sealed"`
	// Segment is the segment sealed now, or when Sealed is false the
	// stream's last sealed segment (null if it has none), as the segments
	// listing shows it.
	Segment *segmentOut `json:"segment"`
	// Note says, when Sealed is false, why nothing was sealed.
	Note string `json:"note,omitempty"`
}

// handleSeal seals a stream's active segment now and answers once it is
// persisted warm (docs/api.md, "Seal a stream's active segment").
func (s *Server) handleSeal(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := tiers.ValidateStreamName(stream); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := adminParams(r); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, stop := s.untilShutdown(r)
	defer stop()
	res, err := s.eng.Seal(ctx, stream)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := sealOut{Stream: stream, Sealed: res.Sealed}
	if res.HasSegment {
		seg := toSegmentOut(&res.Segment)
		out.Segment = &seg
	}
	if !res.Sealed {
		out.Note = "nothing to seal: no record was appended to " + stream + " since its last seal"
	}
	writeJSON(w, http.StatusOK, out)
}
