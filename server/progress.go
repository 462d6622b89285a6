package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tierd/tierd/api"
)

// Long operations (migrate, verify) report progress to a client that asks
// for it with "Accept: application/x-ndjson": the answer is then a stream
// of lines, {"progress":{…}} at most every progressInterval, and last
// either {"result":{…}} (the body the plain answer would have) or
// {"error":{…}}. A request refused before the work starts is answered with
// its usual status and error body, as without the header.

// progressInterval spaces progress lines.
const progressInterval = 200 * time.Millisecond

// progressStream writes a long operation's answer as NDJSON.
type progressStream struct {
	w       http.ResponseWriter
	mu      sync.Mutex
	started bool
	last    time.Time
	broken  bool // the client went away
}

// wantsProgress reports whether the client asked for a progress stream.
func wantsProgress(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(mt), api.MediaNDJSON) {
				return true
			}
		}
	}
	return false
}

// newProgressStream returns a stream for r, or nil when the client did not
// ask for one; report on a nil stream does nothing.
func newProgressStream(w http.ResponseWriter, r *http.Request) *progressStream {
	if !wantsProgress(r) {
		return nil
	}
	return &progressStream{w: w}
}

// report sends a progress line unless one went out less than
// progressInterval ago; final forces it. Safe for concurrent use.
func (p *progressStream) report(po api.Progress, final bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !final && now.Sub(p.last) < progressInterval {
		return
	}
	p.last = now
	p.line(api.ProgressLine{Progress: &po})
}

// line writes one line and flushes it; p.mu held.
func (p *progressStream) line(v any) {
	if p.broken {
		return
	}
	if !p.started {
		p.w.Header().Set("Content-Type", api.MediaNDJSON)
		p.w.WriteHeader(http.StatusOK)
		p.started = true
	}
	b, err := json.Marshal(v)
	if err == nil {
		_, err = p.w.Write(append(b, '\n'))
	}
	if err == nil {
		err = http.NewResponseController(p.w).Flush()
	}
	p.broken = err != nil
}

// resultLine writes the line {"result":…}; p.mu held.
func (p *progressStream) resultLine(result any) {
	b, err := json.Marshal(result)
	if err != nil { // only a type the server defines can get here
		p.line(api.ErrorBody{Error: &api.Error{Code: api.CodeInternal, Message: "encoding the response failed"}})
		return
	}
	p.line(api.ProgressLine{Result: b})
}

// answerLong answers a long operation's result or error: as plain JSON
// when no progress stream was asked for (p is nil) or an error came before
// any progress, else as the stream's last line.
func (s *Server) answerLong(w http.ResponseWriter, r *http.Request, p *progressStream, result any, err error) {
	if p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
	}
	switch {
	case err != nil && (p == nil || !p.started):
		s.fail(w, r, err)
	case err != nil:
		p.line(s.errorLine(r, err))
	case p == nil:
		writeJSON(w, http.StatusOK, result)
	default:
		p.resultLine(result)
	}
}
