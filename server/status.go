package server

import (
	"math"
	"net/http"
	"reflect"
	"time"
	"unicode"

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
	tout := map[string]tierOut{}
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

// tierOut is one tier in the status answer.
type tierOut struct {
	Streams        int    `json:"streams"`
	Segments       int    `json:"segments"`
	Bytes          int64  `json:"bytes"`
	OldestTS       string `json:"oldest_ts,omitempty"`
	NewestTS       string `json:"newest_ts,omitempty"`
	OldestSealedAt string `json:"oldest_sealed_at,omitempty"`
	// BudgetBytes is 0 for a tier without a budget (cold).
	BudgetBytes int64 `json:"budget_bytes"`
	BudgetUsed  int64 `json:"budget_used_bytes"`
}

func toTierOut(t engine.TierStatus) tierOut {
	out := tierOut{Streams: t.Streams, Segments: t.Segments, Bytes: t.Bytes, OldestSealedAt: formatTime(t.OldestSealedAt),
		BudgetBytes: t.BudgetBytes, BudgetUsed: t.BudgetUsed}
	if t.Segments > 0 {
		out.OldestTS, out.NewestTS = formatTS(t.OldestTS), formatTS(t.NewestTS)
	}
	return out
}

// migratorOut is the migrator in the status answer.
type migratorOut struct {
	Schedule    string          `json:"schedule"`
	NextRun     string          `json:"next_run,omitempty"`
	Running     bool            `json:"running"`
	LastRun     *lastRunOut     `json:"last_run"`
	LastError   string          `json:"last_error,omitempty"`
	LastErrorAt string          `json:"last_error_at,omitempty"`
	Failing     int             `json:"failing_segments"`
	Failures    []segFailureOut `json:"failures"`
}

// lastRunOut sums up the latest run; migrate's answer lists its actions.
type lastRunOut struct {
	Started    string `json:"started"`
	DurationMS int64  `json:"duration_ms"`
	Actions    int    `json:"actions"`
	Failed     int    `json:"failed"`
	Skipped    int    `json:"skipped"`
}

type segFailureOut struct {
	Stream string `json:"stream"`
	Base   uint64 `json:"base"`
	Action string `json:"action"`
	failureOut
}

// maxStatusFailures bounds the failures listed; failing_segments counts all.
const maxStatusFailures = 20

func toMigratorOut(st migrator.Status) migratorOut {
	out := migratorOut{Schedule: st.Schedule, NextRun: formatTime(st.NextRun), Running: st.Running,
		LastError: st.LastError, LastErrorAt: formatTime(st.LastErrorAt), Failing: len(st.Failures), Failures: []segFailureOut{}}
	if rep := st.LastRun; rep != nil {
		m := toMigrateOut(*rep)
		out.LastRun = &lastRunOut{Started: m.Started, DurationMS: m.DurationMS, Actions: len(m.Actions), Failed: m.Failed, Skipped: m.Skipped}
	}
	for _, f := range st.Failures[:min(len(st.Failures), maxStatusFailures)] {
		out.Failures = append(out.Failures, segFailureOut{Stream: f.Stream, Base: f.Base, Action: f.Action.Kind.String(),
			failureOut: failureOut{Error: f.Err, At: formatTime(f.At), Attempts: f.Attempts, RetryAt: formatTime(f.RetryAt)}})
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
