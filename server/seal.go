package server

import (
	"net/http"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/tiers"
)

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
	out := api.SealResult{Stream: stream, Sealed: res.Sealed}
	if res.HasSegment {
		seg := toSegmentOut(&res.Segment)
		out.Segment = &seg
	}
	if !res.Sealed {
		out.Note = "nothing to seal: no record was appended to " + stream + " since its last seal"
	}
	writeJSON(w, http.StatusOK, out)
}
