package server

import (
	"math"
	"net/http"
	"reflect"
	"time"
	"unicode"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/migrator"
)

// handleStatus answers the engine's flat fields (statusOut), each tier's
// summary under "tiers" and the migrator's state under "migrator".
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	out := statusOut(s.eng.Status(r.Context()))
	ts, err := s.eng.Tiers(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tout := map[string]api.TierStatus{}
	for p, t := range ts {
		tout[p.String()] = toTierOut(t)
	}
	out["tiers"] = tout
	if s.opts.Migrator != nil {
		out["migrator"] = toMigratorOut(s.opts.Migrator.Status(r.Context()))
	} else {
		out["migrator"] = nil
	}
	writeJSON(w, http.StatusOK, out)
}

func toTierOut(t engine.TierStatus) api.TierStatus {
	out := api.TierStatus{Streams: t.Streams, Segments: t.Segments, Bytes: t.Bytes, OldestSealedAt: api.UTC(t.OldestSealedAt),
		BudgetBytes: t.BudgetBytes, BudgetUsed: t.BudgetUsed}
	if t.Segments > 0 {
		out.OldestTS, out.NewestTS = api.UnixNano(t.OldestTS), api.UnixNano(t.NewestTS)
	}
	return out
}

func toMigratorOut(st migrator.Status) api.MigratorStatus {
	out := api.MigratorStatus{Schedule: st.Schedule, NextRun: api.UTC(st.NextRun), Running: st.Running,
		LastError: st.LastError, LastErrorAt: api.UTC(st.LastErrorAt), Failing: len(st.Failures), Failures: []api.SegmentFailure{}}
	if rep := st.LastRun; rep != nil {
		m := toMigrateOut(*rep)
		out.LastRun = &api.LastRun{Started: m.Started, DurationMS: m.DurationMS, Actions: len(m.Actions), Failed: m.Failed, Skipped: m.Skipped}
	}
	for _, f := range st.Failures[:min(len(st.Failures), api.MaxStatusFailures)] {
		out.Failures = append(out.Failures, api.SegmentFailure{Stream: f.Stream, Base: f.Base, Action: f.Action.Kind.String(),
			Error: f.Err, At: api.UTC(f.At), Attempts: f.Attempts, RetryAt: api.UTC(f.RetryAt)})
	}
	return out
}

// statusOut renders engine.Status with snake_case names by reflection, so
// fields the engine adds later show up without a server change. Times are
// RFC 3339 in UTC, durations Go duration strings.
func statusOut(st engine.Status) map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(st)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		val := v.Field(i).Interface()
		switch x := val.(type) {
		case time.Time:
			if x.IsZero() {
				val = nil
			} else {
				val = x.UTC().Format(time.RFC3339Nano)
			}
		case time.Duration:
			val = x.String()
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				val = nil
			}
		}
		out[snakeCase(f.Name)] = val
	}
	return out
}

// snakeCase turns a Go field name into snake_case, keeping initialisms
// together: HotMaxBytes → hot_max_bytes, WALFiles → wal_files.
func snakeCase(s string) string {
	rs := []rune(s)
	var b []rune
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b = append(b, '_')
			}
		}
		b = append(b, unicode.ToLower(r))
	}
	return string(b)
}
