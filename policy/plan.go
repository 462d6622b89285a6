package policy

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/tierd/tierd/tiers"
)

// Segment is what the planner knows of one sealed segment: its catalog
// entry (placements, size, SealedAt, and Tombstoned once deletion has
// begun) and whether a move of it is running.
type Segment struct {
	tiers.SegmentMeta
	// InFlight means a move of the segment is running; Plan plans nothing
	// for it until the move has committed or failed.
	InFlight bool
}

// ActionKind is one step the migrator can take for a segment.
type ActionKind int

// The actions, in the order Plan lists a segment's actions.
const (
	// EvictHot is a segment leaving memory. The hot tier alone does it
	// (hot.max_age since the seal, and the oldest first while memory is over
	// hot.max_bytes), so Plan never lists it: Next forecasts it, for explain
	// to say when a segment leaves memory and why. Only a segment with a
	// durable copy leaves.
	EvictHot ActionKind = iota + 1
	// Upload copies a warm segment to cold and commits the Cold placement;
	// the warm copy stays until a later DropWarm.
	Upload
	// DropWarm removes the warm copy of a segment whose cold copy is
	// committed. It is never planned before Placements has Cold.
	DropWarm
	// DeleteWarm deletes a warm segment outright: there is no cold store
	// to keep it in.
	DeleteWarm
	// Tombstone starts deletion by retention: the segment is no longer
	// served, and its copies go after cold.delete_delay.
	Tombstone
	// DeleteCold finishes deletion of a tombstoned segment: it removes the
	// cold object, whatever other copy is left, and the catalog entry.
	DeleteCold
)

var actionNames = [...]string{EvictHot: "evict-hot", Upload: "upload", DropWarm: "drop-warm", DeleteWarm: "delete-warm", Tombstone: "tombstone", DeleteCold: "delete-cold"}

// String returns the kind's name as the API and tierctl show it
// ("drop-warm").
func (k ActionKind) String() string {
	if k >= EvictHot && k <= DeleteCold {
		return actionNames[k]
	}
	return fmt.Sprintf("action(%d)", int(k))
}

// ParseActionKind is the inverse of ActionKind.String.
func ParseActionKind(s string) (ActionKind, error) {
	for k := EvictHot; k <= DeleteCold; k++ {
		if actionNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("policy: unknown action %q", s)
}

// MarshalText implements encoding.TextMarshaler, so JSON carries the name.
func (k ActionKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *ActionKind) UnmarshalText(b []byte) error {
	v, err := ParseActionKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// Action is one planned step for one segment, with the reason an operator
// reads in explain and dry runs.
type Action struct {
	Kind   ActionKind
	Stream string
	Base   uint64
	// Bytes is the segment's size, what the move costs (the byte-rate
	// limit) or frees.
	Bytes int64
	// Policy is the name of the policy that applies to the stream.
	Policy string
	// Reason says why, in words: "age 25h >= warm.max_age 24h (policy
	// trading)".
	Reason string
	// Due is when the action became (or, from Next, becomes) due: when the
	// age limit was reached, when the delete delay ran out, or the
	// planning time for a budget.
	Due time.Time
}

// String renders "upload IF2406@42 (16MiB): <reason>".
func (a Action) String() string {
	return fmt.Sprintf("%s %s@%d (%s): %s", a.Kind, a.Stream, a.Base, FormatSize(a.Bytes), a.Reason)
}

// Plan returns what should happen now to segs under cfg: a pure function
// of its arguments (no clock, no I/O), so the same catalog snapshot always
// gives the same plan, and a dry run shows exactly what a run would do.
//
// Ages (now − SealedAt) against each stream's policy come first: at
// warm.max_age a segment is uploaded, then (once Cold is committed) dropped from
// warm, or deleted with no cold store; at cold.max_age it is tombstoned,
// and DeleteCold follows once now − Tombstoned ≥ cold.delete_delay. Then
// the budget: while the segments on local disk exceed warm.max_bytes, after
// the actions already planned, the oldest (by SealedAt) move down early.
// Memory is not planned: the hot tier owns residency, evicting a
// persisted segment at hot.max_age, and the oldest ones as soon as memory
// is over hot.max_bytes, in real time and counting what it really
// allocates, which a plan made on a schedule from catalog sizes cannot
// (Next still forecasts EvictHot for explain). In-flight segments get no
// action. The result is sorted by stream, base and kind, with at most one
// action per segment and kind.
//
// Retention deletes each stream's segments oldest first, in offset order
// (the engine tombstones a segment together with every live one below it,
// and the stream's retention watermark records how far it went): a segment
// is due for Tombstone, or DeleteWarm by age, only once every live segment
// below it is, so a seal clock that stepped back cannot make a newer
// segment go first.
func Plan(now time.Time, segs []Segment, cfg Config) []Action {
	p := planner{now: now, cfg: cfg, policies: map[string]Policy{}, planned: map[segKey]uint8{}, retainSeal: retentionSeals(segs)}
	for i := range segs {
		p.ages(&segs[i])
	}
	p.warmBudget(segs)
	slices.SortFunc(p.out, func(a, b Action) int {
		return cmp.Or(cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Base, b.Base), cmp.Compare(a.Kind, b.Kind))
	})
	return p.out
}

// Next returns the next action for seg alone and when it is due: an action
// due now (Due ≤ now) if Plan would take one for its age, else the earliest
// one ahead. Budgets, which depend on the other segments, are not
// considered. Unlike Plan, Next includes EvictHot: the hot tier's own rule
// (hot.max_age since the seal), forecast so that explain says when the
// segment leaves memory. false means nothing will ever happen to seg as it stands:
// the policy keeps it forever, it is in flight, or it waits for a move
// that only the flusher makes (a segment in memory alone).
func Next(now time.Time, seg Segment, cfg Config) (Action, bool) {
	if seg.InFlight {
		return Action{}, false
	}
	p := planner{now: now, cfg: cfg, policies: map[string]Policy{}, planned: map[segKey]uint8{}, forecast: true}
	p.ages(&seg)
	if len(p.out) > 0 {
		slices.SortFunc(p.out, func(a, b Action) int { return cmp.Compare(a.Kind, b.Kind) })
		return p.out[0], true
	}
	// Nothing is due: the earliest of the actions ahead, by due time.
	var best Action
	found := false
	for _, a := range p.candidates(&seg) {
		if !found || a.Due.Before(best.Due) || a.Due.Equal(best.Due) && a.Kind < best.Kind {
			best, found = a, true
		}
	}
	return best, found
}

// segKey identifies a segment.
type segKey struct {
	stream string
	base   uint64
}

// planner is one Plan call's state.
type planner struct {
	now      time.Time
	cfg      Config
	policies map[string]Policy // by stream, so globs are matched once
	planned  map[segKey]uint8  // a bit per ActionKind planned
	out      []Action
	// retainSeal is, per live segment, the latest SealedAt of it and the
	// live segments below it: retention's ages count from it (see Plan).
	retainSeal map[segKey]time.Time
	// forecast includes the hot tier's EvictHot among the due actions
	// (Next); Plan leaves it to the hot tier.
	forecast bool
}

// retentionSeals returns, for every live segment, the latest SealedAt of it
// and of every live segment of its stream with a lower base.
func retentionSeals(segs []Segment) map[segKey]time.Time {
	idx := make([]int, 0, len(segs))
	for i := range segs {
		if segs[i].Tombstoned.IsZero() {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(i, j int) int {
		return cmp.Or(cmp.Compare(segs[i].Stream, segs[j].Stream), cmp.Compare(segs[i].Base, segs[j].Base))
	})
	out := make(map[segKey]time.Time, len(idx))
	var stream string
	var latest time.Time
	for n, i := range idx {
		s := &segs[i]
		if n == 0 || s.Stream != stream {
			stream, latest = s.Stream, s.SealedAt
		} else if s.SealedAt.After(latest) {
			latest = s.SealedAt
		}
		out[segKey{s.Stream, s.Base}] = latest
	}
	return out
}

// retentionSeal is when s's retention age counts from: its own SealedAt,
// or a later one of a live segment below it.
func (p *planner) retentionSeal(s *Segment) time.Time {
	if t, ok := p.retainSeal[segKey{s.Stream, s.Base}]; ok {
		return t
	}
	return s.SealedAt
}

func (p *planner) policy(stream string) Policy {
	pol, ok := p.policies[stream]
	if !ok {
		pol = p.cfg.PolicyFor(stream)
		p.policies[stream] = pol
	}
	return pol
}

// add records an action unless the segment already has one of that kind.
func (p *planner) add(s *Segment, kind ActionKind, pol Policy, due time.Time, reason string) {
	if p.has(s, kind) {
		return
	}
	p.planned[segKey{s.Stream, s.Base}] |= 1 << uint(kind)
	p.out = append(p.out, Action{Kind: kind, Stream: s.Stream, Base: s.Base, Bytes: s.Bytes, Policy: pol.Name, Reason: reason, Due: due})
}

// has reports whether kind is planned for s.
func (p *planner) has(s *Segment, kind ActionKind) bool {
	return p.planned[segKey{s.Stream, s.Base}]&(1<<uint(kind)) != 0
}

// candidates returns every action seg's age will call for as it stands,
// each with its due time, whether due yet or not.
func (p *planner) candidates(s *Segment) []Action {
	if s.InFlight {
		return nil
	}
	pol := p.policy(s.Stream)
	mk := func(kind ActionKind, due time.Time, reason string) Action {
		return Action{Kind: kind, Stream: s.Stream, Base: s.Base, Bytes: s.Bytes, Policy: pol.Name, Reason: reason, Due: due}
	}
	if !s.Tombstoned.IsZero() {
		due := s.Tombstoned.Add(p.cfg.Cold.DeleteDelay)
		return []Action{mk(DeleteCold, due, fmt.Sprintf("tombstoned %s ago, cold.delete_delay %s (policy %s)",
			FormatAge(p.now.Sub(s.Tombstoned)), FormatDuration(p.cfg.Cold.DeleteDelay), pol.Name))}
	}
	a := p.now.Sub(s.SealedAt)
	because := func(limit string, d time.Duration) string {
		if a < d {
			return fmt.Sprintf("at age %s: %s %s (policy %s); age now %s", FormatDuration(d), limit, FormatDuration(d), pol.Name, FormatAge(a))
		}
		return fmt.Sprintf("age %s >= %s %s (policy %s)", FormatAge(a), limit, FormatDuration(d), pol.Name)
	}
	var out []Action
	pl := s.Placements
	durable := pl.Has(tiers.Warm) || pl.Has(tiers.Cold)
	if pl.Has(tiers.Hot) && durable && pol.HotMaxAge > 0 {
		by := fmt.Sprintf("; by the hot tier, sooner while memory is over hot.max_bytes %s", FormatSize(p.cfg.Hot.MaxBytes))
		if a >= pol.HotMaxAge {
			by = "; by the hot tier at its next pass"
		}
		out = append(out, mk(EvictHot, s.SealedAt.Add(pol.HotMaxAge), because("hot.max_age", pol.HotMaxAge)+by))
	}
	if pl.Has(tiers.Warm) && pol.WarmMaxAge > 0 {
		due := s.SealedAt.Add(pol.WarmMaxAge)
		switch {
		case !p.cfg.HasColdStore():
			due = p.retentionSeal(s).Add(pol.WarmMaxAge)
			out = append(out, mk(DeleteWarm, due, because("warm.max_age", pol.WarmMaxAge)+", no cold store"))
		case pl.Has(tiers.Cold):
			out = append(out, mk(DropWarm, due, because("warm.max_age", pol.WarmMaxAge)+", cold copy committed"))
		default:
			out = append(out, mk(Upload, due, because("warm.max_age", pol.WarmMaxAge)))
		}
	}
	if pol.ColdMaxAge > 0 && p.cfg.HasColdStore() {
		out = append(out, mk(Tombstone, p.retentionSeal(s).Add(pol.ColdMaxAge), because("cold.max_age", pol.ColdMaxAge)))
	}
	return out
}

// ages plans the actions s's age calls for now, EvictHot only in a
// forecast. A segment due for Tombstone gets only that: moving data about
// to be deleted is waste.
func (p *planner) ages(s *Segment) {
	var due []Action
	for _, a := range p.candidates(s) {
		if a.Due.After(p.now) || a.Kind == EvictHot && !p.forecast {
			continue
		}
		if a.Kind == Tombstone {
			due = []Action{a}
			break
		}
		due = append(due, a)
	}
	pol := p.policy(s.Stream)
	for _, a := range due {
		p.add(s, a.Kind, pol, a.Due, a.Reason)
	}
}

// live reports whether a budget may move s: not in flight, not being
// deleted.
func (p *planner) live(s *Segment) bool {
	return !s.InFlight && s.Tombstoned.IsZero() && !p.has(s, Tombstone)
}

// oldestFirst returns the indexes of segs by SealedAt, then stream and
// base, so that budgets pick deterministically.
func oldestFirst(segs []Segment) []int {
	idx := make([]int, len(segs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int {
		a, b := &segs[i], &segs[j]
		return cmp.Or(a.SealedAt.Compare(b.SealedAt), cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Base, b.Base))
	})
	return idx
}

// warmBudget moves the oldest warm segments down while local disk holds
// more than warm.max_bytes: DropWarm when the cold copy is committed,
// else Upload (counted as freeing, since DropWarm follows on the next
// run), or DeleteWarm with no cold store.
func (p *planner) warmBudget(segs []Segment) {
	var used int64
	for i := range segs {
		s := &segs[i]
		if s.Placements.Has(tiers.Warm) && !p.has(s, DropWarm) && !p.has(s, DeleteWarm) && !p.has(s, Upload) {
			used += s.Bytes
		}
	}
	limit := p.cfg.Warm.MaxBytes
	if used <= limit {
		return
	}
	total := used
	for _, i := range oldestFirst(segs) {
		if used <= limit {
			return
		}
		s := &segs[i]
		if !s.Placements.Has(tiers.Warm) || p.has(s, DropWarm) || p.has(s, DeleteWarm) || p.has(s, Upload) || !p.live(s) {
			continue
		}
		kind := Upload
		switch {
		case !p.cfg.HasColdStore():
			kind = DeleteWarm
		case s.Placements.Has(tiers.Cold):
			kind = DropWarm
		}
		p.add(s, kind, p.policy(s.Stream), p.now, fmt.Sprintf("warm.max_bytes %s exceeded (%s on local disk), oldest first", FormatSize(limit), FormatSize(total)))
		used -= s.Bytes
	}
}

// FormatAge renders an age truncated to the second, "0s" for none or a
// negative one: "1d1h3s".
func FormatAge(d time.Duration) string {
	if d < 0 {
		return "0s"
	}
	return FormatDuration(d.Truncate(time.Second))
}
