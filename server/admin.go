package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/migrator"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// The operator's endpoints: migrate (plan, or run now), explain and verify.

// errNoMigrator answers migrate and explain on a server built without one.
var errNoMigrator = errors.New("server: this server has no migrator")

// adminParams checks that params holds only the allowed names, each once,
// and returns them.
func adminParams(r *http.Request, allowed ...string) (url.Values, error) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalidParameter, err)
	}
	for name, vals := range params {
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			return nil, fmt.Errorf("%w: unknown parameter %q (allowed: %v)", errInvalidParameter, name, allowed)
		}
		if len(vals) != 1 {
			return nil, fmt.Errorf("%w: %s given %d times", errInvalidParameter, name, len(vals))
		}
	}
	if st := params.Get("stream"); params.Has("stream") {
		if err := tiers.ValidateStreamName(st); err != nil {
			return nil, err
		}
	}
	return params, nil
}

// handleMigrate plans a migration run (dry_run=true, the default) or runs
// one now, for every stream or one (stream=), and reports each action.
func (s *Server) handleMigrate(w http.ResponseWriter, r *http.Request) {
	if s.opts.Migrator == nil {
		s.fail(w, r, errNoMigrator)
		return
	}
	params, err := adminParams(r, "dry_run", "stream")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	dryRun := true
	if v := params.Get("dry_run"); params.Has("dry_run") {
		if dryRun, err = strconv.ParseBool(v); err != nil {
			s.fail(w, r, fmt.Errorf("%w: dry_run=%q is not true or false", errInvalidParameter, v))
			return
		}
	}
	stream := params.Get("stream")
	if stream != "" {
		// Only whether the stream exists (404 stream_not_found otherwise):
		// the migrator plans retention, the server does not.
		if _, err := s.eng.Retention(r.Context(), stream); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	ctx, stop := s.untilShutdown(r)
	defer stop()
	ps := newProgressStream(w, r)
	rep, err := s.opts.Migrator.RunProgress(ctx, stream, dryRun, func(p migrator.Progress) {
		ps.report(api.Progress{Done: int64(p.Done), Total: int64(p.Total), Unit: "actions", Bytes: p.Bytes, TotalBytes: p.TotalBytes}, p.Done == p.Total)
	})
	s.answerLong(w, r, ps, toMigrateOut(rep), err)
}

func toActionOut(a policy.Action) api.MigrateAction {
	return api.MigrateAction{Action: a.Kind.String(), Stream: a.Stream, Base: a.Base, Bytes: a.Bytes, Policy: a.Policy, Reason: a.Reason, Due: api.UTC(a.Due)}
}

func toMigrateOut(rep migrator.Report) api.MigrateReport {
	out := api.MigrateReport{DryRun: rep.DryRun, Started: api.UTC(rep.Started), DurationMS: rep.Duration.Milliseconds(), Actions: []api.MigrateAction{}, Skipped: rep.Skipped}
	for _, res := range rep.Results {
		a := toActionOut(res.Action)
		a.Error = res.Err
		if res.Err != "" {
			out.Failed++
		}
		out.Actions = append(out.Actions, a)
	}
	return out
}

// handleExplain says, per segment of a stream, where it is, which policy
// applies, what happens next and when, and its last error.
func (s *Server) handleExplain(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := tiers.ValidateStreamName(stream); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := adminParams(r); err != nil {
		s.fail(w, r, err)
		return
	}
	if s.opts.Migrator == nil {
		s.fail(w, r, errNoMigrator)
		return
	}
	infos, err := s.eng.Segments(r.Context(), stream)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ex, err := s.opts.Migrator.Explain(r.Context(), stream)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toExplainOut(ex, infos))
}

// fmtDueIn renders the time until an action is due, rounded up to the
// second so that only an action due now reads "0s".
func fmtDueIn(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return policy.FormatDuration((d + time.Second - 1).Truncate(time.Second))
}

func toExplainOut(ex migrator.Explanation, infos []engine.SegmentInfo) api.Explanation {
	p := ex.Policy
	out := api.Explanation{Stream: ex.Stream, Now: api.UTC(ex.Now), Segments: []api.ExplainSegment{},
		Policy: api.Policy{Name: p.Name}}
	if p.HotMaxAge > 0 {
		out.Policy.HotMaxAge = policy.FormatDuration(p.HotMaxAge)
	}
	if p.WarmMaxAge > 0 {
		out.Policy.WarmMaxAge = policy.FormatDuration(p.WarmMaxAge)
	}
	if p.ColdMaxAge > 0 {
		out.Policy.ColdMaxAge = policy.FormatDuration(p.ColdMaxAge)
	}
	byBase := map[uint64]migrator.SegmentExplanation{}
	for _, se := range ex.Segments {
		byBase[se.Segment.Base] = se
	}
	for i := range infos {
		info := &infos[i]
		so := api.ExplainSegment{Segment: toSegmentOut(info)}
		se, durable := byBase[info.Base]
		switch {
		case info.Active:
			so.Note = "active: seals at the policy's segment.max_bytes or max_age"
		case !durable:
			so.Note = "sealed, in memory only: the flusher persists it warm"
		default:
			if !info.SealedAt.IsZero() {
				so.Age = policy.FormatAge(se.Age)
			}
			so.InFlight = se.Segment.InFlight
			if a := se.Next; a != nil {
				so.Next = &api.NextAction{Action: a.Kind.String(), Due: api.UTC(a.Due), In: fmtDueIn(a.Due.Sub(ex.Now)), Reason: a.Reason}
			}
			if f := se.Failure; f != nil {
				so.LastError = &api.MoveFailure{Error: f.Err, At: api.UTC(f.At), Attempts: f.Attempts, RetryAt: api.UTC(f.RetryAt)}
			}
		}
		out.Segments = append(out.Segments, so)
	}
	return out
}

// handleVerify checks coverage, digests and orphans (engine.Verify) for
// every stream or one (stream=). It answers 200 with "ok": false and the
// findings when something is wrong: the check itself succeeded.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	params, err := adminParams(r, "stream")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, stop := s.untilShutdown(r)
	defer stop()
	ps := newProgressStream(w, r)
	rep, err := s.eng.Verify(ctx, params.Get("stream"), func(done, total int) {
		ps.report(api.Progress{Done: int64(done), Total: int64(total), Unit: "segments"}, done == total)
	})
	s.answerLong(w, r, ps, toVerifyOut(rep), err)
}

func toVerifyOut(rep engine.VerifyReport) api.VerifyReport {
	out := api.VerifyReport{OK: len(rep.Findings) == 0, Streams: []api.StreamCheck{}, Findings: []api.Finding{}, WarmFiles: rep.WarmFiles, ColdObjects: rep.ColdObjects}
	for _, s := range rep.Streams {
		out.Streams = append(out.Streams, api.StreamCheck{Stream: s.Stream, First: s.First, Next: s.Next, Segments: s.Segments, Placements: s.Placements,
			UnpersistedRecords: s.UnpersistedRecords, UnpersistedSegments: s.UnpersistedSegments})
	}
	for _, f := range rep.Findings {
		fo := api.Finding{Kind: f.Kind, Stream: f.Stream, Tier: f.Tier, Path: f.Path, Message: f.Message}
		switch f.Kind {
		case api.FindingGap, api.FindingOverlap:
			from, to := f.From, f.To
			fo.From, fo.To = &from, &to
		default:
			if f.Stream != "" {
				base := f.Base
				fo.Base = &base
			}
		}
		if f.Kind == api.FindingLostSegment {
			// The offsets only this file or object holds.
			from, to := f.From, f.To
			fo.From, fo.To = &from, &to
		}
		out.Findings = append(out.Findings, fo)
	}
	return out
}

// formatTime renders t in RFC 3339 UTC, "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
