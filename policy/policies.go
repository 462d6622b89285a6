package policy

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/tierd/tierd/cold/colproj"
)

// DefaultPolicyName names the policy of a stream that matches no entry of
// policies: (the top-level settings, every tier keeping data forever past
// hot.max_age).
const DefaultPolicyName = "default"

// Policy is one entry of policies: how long each tier keeps the segments
// of the streams it matches. Ages count from a segment's SealedAt.
//
// In Config.Policies, zero Segment fields and a zero HotMaxAge mean "the
// top-level setting"; PolicyFor returns them filled in. A zero WarmMaxAge
// or ColdMaxAge means that tier keeps segments forever.
type Policy struct {
	// Name identifies the policy in reasons, explain and errors; unique.
	Name string
	// Streams are path.Match globs ("IF*", "trades.[0-9]*"); the policy
	// applies to a stream any of them matches.
	Streams []string
	// Segment is when the matched streams' active segments seal.
	Segment SegmentConfig
	// HotMaxAge is how long a sealed, persisted segment stays in memory.
	HotMaxAge time.Duration
	// WarmMaxAge is when a segment leaves local disk: it is uploaded to
	// cold and then dropped from warm, or deleted with no cold store.
	WarmMaxAge time.Duration
	// ColdMaxAge is when a segment is deleted (tombstoned, then removed
	// after cold.delete_delay).
	ColdMaxAge time.Duration
	// Columns are typed columns projected from the streams' JSON values
	// into their cold files (cold/colproj), in this order; nil for none.
	Columns []colproj.Column
}

// Matches reports whether the policy applies to stream.
func (p Policy) Matches(stream string) bool {
	for _, g := range p.Streams {
		if ok, _ := path.Match(g, stream); ok {
			return true
		}
	}
	return false
}

// DefaultPolicy is the policy of streams that no entry of Policies matches:
// the top-level segment and hot settings, and no warm or cold limit.
func (c Config) DefaultPolicy() Policy {
	return Policy{Name: DefaultPolicyName, Streams: []string{"*"}, Segment: c.Segment, HotMaxAge: c.Hot.MaxAge}
}

// PolicyFor returns the policy of stream: the first entry of Policies that
// matches it, else DefaultPolicy, with inherited settings filled in.
func (c Config) PolicyFor(stream string) Policy {
	for _, p := range c.Policies {
		if p.Matches(stream) {
			return c.Resolve(p)
		}
	}
	return c.DefaultPolicy()
}

// Resolve returns p with the settings it inherits from the top level
// filled in, as PolicyFor does.
func (c Config) Resolve(p Policy) Policy {
	if p.Segment.MaxBytes == 0 {
		p.Segment.MaxBytes = c.Segment.MaxBytes
	}
	if p.Segment.MaxAge == 0 {
		p.Segment.MaxAge = c.Segment.MaxAge
	}
	if p.HotMaxAge == 0 {
		p.HotMaxAge = c.Hot.MaxAge
	}
	return p
}

// policyPath is the field path of policies[i], plus sub if not empty.
func policyPath(i int, sub string) string {
	if sub == "" {
		return fmt.Sprintf("policies[%d]", i)
	}
	return fmt.Sprintf("policies[%d].%s", i, sub)
}

// checkPolicies applies the rules of policies:. A zero the file wrote
// explicitly is an error (omit the field instead); in code, zero inherits.
func (v *validator) checkPolicies(c *Config) {
	seen := map[string]int{}
	for i, p := range c.Policies {
		f := func(sub string) string { return policyPath(i, sub) }
		if !v.ok(f("")) {
			continue // not a mapping; reported once already
		}
		if v.ok(f("name")) {
			switch j, dup := seen[p.Name]; {
			case strings.TrimSpace(p.Name) == "":
				v.errorf(f("name"), "every policy needs a name")
			case dup:
				v.errorf(f("name"), "%q is already the name of policies[%d]", p.Name, j)
			default:
				seen[p.Name] = i
			}
		}
		if v.ok(f("streams")) && len(p.Streams) == 0 {
			v.errorf(f("streams"), "must list at least one glob (\"*\" matches every stream)")
		}
		for k, g := range p.Streams {
			gf := fmt.Sprintf("%s[%d]", f("streams"), k)
			if !v.ok(f("streams"), gf) {
				continue
			}
			if err := checkGlob(g); err != nil {
				v.errorf(gf, "%v", err)
			}
		}
		for _, d := range []struct {
			field string
			n     int64
		}{{f("segment.max_bytes"), p.Segment.MaxBytes}} {
			if v.ok(d.field) && (d.n < 0 || d.n == 0 && v.set(d.field)) {
				v.bad[d.field] = true
				v.errorf(d.field, "%s must be positive (omit it to use the top-level setting)", FormatSize(d.n))
			}
		}
		ages := []struct {
			field string
			d     time.Duration
			omit  string
		}{
			{f("segment.max_age"), p.Segment.MaxAge, "to use the top-level setting"},
			{f("hot.max_age"), p.HotMaxAge, "to use the top-level hot.max_age"},
			{f("warm.max_age"), p.WarmMaxAge, "to keep segments warm forever"},
			{f("cold.max_age"), p.ColdMaxAge, "to keep segments forever"},
		}
		for _, a := range ages {
			if v.ok(a.field) && (a.d < 0 || a.d == 0 && v.set(a.field)) {
				v.bad[a.field] = true
				v.errorf(a.field, "%s must be positive (omit it %s)", FormatDuration(a.d), a.omit)
			}
		}
		if p.Segment.MaxBytes > 0 {
			v.notAbove(p.Segment.MaxBytes, f("segment.max_bytes"), c.Hot.MaxBytes, "hot.max_bytes", "a sealed segment must fit in the memory budget")
			v.notAbove(c.MaxRecordBytes, "max_record_bytes", p.Segment.MaxBytes, f("segment.max_bytes"), "a record must fit in a segment")
		}
		v.checkOrder(c, i, p)
		v.checkColumns(i, p)
	}
}

// checkOrder enforces hot.max_age ≤ warm.max_age ≤ cold.max_age for the
// ages a policy sets, blaming the later tier's field.
func (v *validator) checkOrder(c *Config, i int, p Policy) {
	hot, hotField, hotNote := p.HotMaxAge, policyPath(i, "hot.max_age"), ""
	if hot == 0 {
		hot, hotField, hotNote = c.Hot.MaxAge, "hot.max_age", ", the top-level setting"
	}
	warmField, coldField := policyPath(i, "warm.max_age"), policyPath(i, "cold.max_age")
	if !v.ok(hotField, warmField, coldField) || hot < 0 || p.WarmMaxAge < 0 || p.ColdMaxAge < 0 {
		return
	}
	if p.WarmMaxAge > 0 && hot > p.WarmMaxAge {
		v.errorf(warmField, "%s is below hot.max_age (%s%s): a segment leaves memory before it leaves local disk", FormatDuration(p.WarmMaxAge), FormatDuration(hot), hotNote)
	}
	if p.ColdMaxAge == 0 {
		return
	}
	if !c.HasColdStore() {
		v.errorf(coldField, "is set but cold.store is none: there is no cold tier (with no cold store, warm.max_age deletes)")
		return
	}
	if p.WarmMaxAge == 0 {
		v.errorf(coldField, "needs warm.max_age: while warm keeps segments forever they never reach cold")
		return
	}
	if p.WarmMaxAge > p.ColdMaxAge {
		v.errorf(coldField, "%s is below warm.max_age (%s): a segment is deleted only after it has left local disk", FormatDuration(p.ColdMaxAge), FormatDuration(p.WarmMaxAge))
	}
}

// checkGlob accepts a path.Match pattern that could match a stream name.
func checkGlob(g string) error {
	if g == "" {
		return fmt.Errorf("an empty glob matches no stream")
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("%q is not a valid glob (path.Match syntax: *, ?, [a-z], \\x)", g)
	}
	if strings.Contains(g, "/") {
		return fmt.Errorf("%q can never match: stream names contain no /", g)
	}
	return nil
}

// Warnings returns what is valid but probably not meant: data deleted for
// want of a cold store, policies that can never apply. The errors carry the
// field and no position; Check adds file positions.
func (c Config) Warnings() []FieldError {
	v := validator{bad: map[string]bool{}}
	return v.warnings(&c)
}

// Check parses like Parse and also returns the warnings, located in the
// file. It is what `tierctl policy check` runs.
func Check(file string, data []byte) (Config, []FieldError, error) {
	cfg, v, err := parse(file, data)
	if err != nil {
		return Config{}, nil, err
	}
	return cfg, v.warnings(&cfg), nil
}

func (v *validator) warnings(c *Config) []FieldError {
	w := validator{file: v.file, pos: v.pos, bad: map[string]bool{}}
	if !c.HasColdStore() {
		for i, p := range c.Policies {
			if p.WarmMaxAge > 0 {
				w.errorf(policyPath(i, "warm.max_age"), "deletes segments at %s: cold.store is none, so nothing is kept after warm", FormatDuration(p.WarmMaxAge))
			}
			if len(p.Columns) > 0 {
				w.errorf(policyPath(i, "columns"), "are never written: typed columns are projected into cold files, and cold.store is none")
			}
		}
		w.errorf("cold.store", "is none: the oldest segments are deleted whenever local disk holds more than warm.max_bytes (%s)", FormatSize(c.Warm.MaxBytes))
	}
	for i, p := range c.Policies {
		for j, q := range c.Policies[:i] {
			if covers(q.Streams, p.Streams) {
				w.errorf(policyPath(i, ""), "policy %q never applies: policies[%d] (%q) comes first and matches all its streams", p.Name, j, q.Name)
				break
			}
		}
	}
	w.clusterWarnings(c)
	if len(w.errs) == 0 {
		return nil
	}
	return w.result().(*ValidationError).Errors
}

// covers reports, conservatively, whether every stream some glob of inner
// matches is matched by a glob of outer: outer has "*" or each inner glob
// appears in outer.
func covers(outer, inner []string) bool {
	if len(inner) == 0 {
		return false
	}
	for _, g := range outer {
		if g == "*" {
			return true
		}
	}
	for _, g := range inner {
		found := false
		for _, o := range outer {
			if o == g {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
