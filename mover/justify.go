package mover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/policy"
	"github.com/tierd/tierd/tiers"
)

// Destructive steps justify themselves when they execute, not only when
// they are planned: the plan was made from a catalog snapshot that may be
// stale or damaged, and a deletion cannot be undone. Each step re-reads the
// segment and checks it against the configuration (Options.Config) and the
// clock:
//
//   - a tombstone (the start of deletion by retention, with a cold store)
//     needs the stream's policy to have a cold.max_age that the segment has
//     passed;
//   - a delete-warm (no cold store) needs the configuration and the engine
//     to have no cold store, and the policy's warm.max_age passed or the
//     local disk over warm.max_bytes;
//   - removing the copies of a tombstoned segment needs a tombstone that
//     postdates the seal and is not in the future, the segment below the
//     stream's retention watermark, cold.delete_delay passed, and the
//     policy to still call for the deletion.
//
// Anything else is refused: nothing is deleted, the refusal is recorded as
// the segment's last failure (explain and status show it, verify reports
// it), and the error wraps ErrRefused.

// ErrRefused reports a destructive step that the catalog and the
// configuration do not justify.
var ErrRefused = errors.New("engine: deletion refused")

// refused is the error of a refused step on segment m.
func refused(m *tiers.SegmentMeta, format string, args ...any) error {
	return fmt.Errorf("%w: %s/%d: %s", ErrRefused, m.Stream, m.Base, fmt.Sprintf(format, args...))
}

// deleteBy is the reason a deletion by retention is asked for.
type deleteBy int

const (
	byColdAge deleteBy = iota // policy.Tombstone: cold.max_age
	byWarm                    // policy.DeleteWarm: warm.max_age or warm.max_bytes, no cold store
)

// policyOf returns the policy that applies to stream, or a refusal when the
// engine was given no configuration.
func (mv *Mover) policyOf(m *tiers.SegmentMeta) (policy.Policy, error) {
	if mv.cfg == nil {
		return policy.Policy{}, refused(m, "the engine has no retention configuration")
	}
	return mv.cfg.PolicyFor(m.Stream), nil
}

// checkSeal refuses a segment whose seal time cannot anchor an age.
func checkSeal(m *tiers.SegmentMeta, now time.Time) error {
	if m.SealedAt.IsZero() || m.SealedAt.After(now) {
		return refused(m, "sealed_at %v is not in the past (now %v)", m.SealedAt, now)
	}
	return nil
}

// justifyDeletion checks that the configuration calls, now, for the
// deletion of live segment m by retention: by is why it was planned, and
// overBudget whether local disk is over warm.max_bytes now.
func (mv *Mover) justifyDeletion(m *tiers.SegmentMeta, by deleteBy, now time.Time, overBudget bool) error {
	pol, err := mv.policyOf(m)
	if err != nil {
		return err
	}
	if err := checkSeal(m, now); err != nil {
		return err
	}
	age := now.Sub(m.SealedAt)
	switch by {
	case byColdAge:
		switch {
		case !mv.cfg.HasColdStore() || mv.cold == nil:
			return refused(m, "a tombstone by cold.max_age needs a cold store")
		case pol.ColdMaxAge <= 0:
			return refused(m, "policy %s keeps cold segments forever (no cold.max_age)", pol.Name)
		case age < pol.ColdMaxAge:
			return refused(m, "age %s < cold.max_age %s (policy %s)", policy.FormatAge(age), policy.FormatDuration(pol.ColdMaxAge), pol.Name)
		}
	case byWarm:
		switch {
		case mv.cfg.HasColdStore() || mv.cold != nil:
			return refused(m, "delete-warm with a cold store configured: segments are uploaded, not deleted")
		case m.Placements.Has(tiers.Cold):
			return refused(m, "delete-warm of a segment with a cold copy")
		case pol.WarmMaxAge > 0 && age >= pol.WarmMaxAge, overBudget:
		default:
			return refused(m, "age %s, warm.max_age %s (policy %s), local disk within warm.max_bytes", policy.FormatAge(age), policy.FormatDuration(pol.WarmMaxAge), pol.Name)
		}
	default:
		return refused(m, "unknown reason %d", by)
	}
	return nil
}

// justifyRemoval checks that the copies of tombstoned segment m may be
// removed now; delay requires cold.delete_delay to have passed since the
// tombstone (a delete-warm removes at once). retainedFrom is the stream's
// retention watermark.
func (mv *Mover) justifyRemoval(m *tiers.SegmentMeta, retainedFrom uint64, now time.Time, delay bool) error {
	pol, err := mv.policyOf(m)
	if err != nil {
		return err
	}
	if err := checkSeal(m, now); err != nil {
		return err
	}
	switch {
	case m.Tombstoned.IsZero():
		return refused(m, "not tombstoned")
	case m.Tombstoned.Before(m.SealedAt):
		return refused(m, "tombstoned %v before its seal %v", m.Tombstoned, m.SealedAt)
	case m.Tombstoned.After(now):
		return refused(m, "tombstoned %v, in the future (now %v)", m.Tombstoned, now)
	case m.Last >= retainedFrom:
		return refused(m, "above the stream's retention watermark %d", retainedFrom)
	case delay && now.Sub(m.Tombstoned) < mv.cfg.Cold.DeleteDelay:
		return refused(m, "tombstoned %s ago, cold.delete_delay %s", policy.FormatAge(now.Sub(m.Tombstoned)), policy.FormatDuration(mv.cfg.Cold.DeleteDelay))
	}
	age := now.Sub(m.SealedAt)
	if mv.cfg.HasColdStore() || mv.cold != nil {
		if pol.ColdMaxAge <= 0 || age < pol.ColdMaxAge {
			return refused(m, "policy %s does not delete it (age %s, cold.max_age %s)", pol.Name, policy.FormatAge(age), policy.FormatDuration(pol.ColdMaxAge))
		}
		return nil
	}
	// No cold store: a tombstone was set by warm.max_age or by the warm
	// budget, which the deletion itself has relieved since; the
	// tombstone, checked above, stands for it.
	return nil
}

// checkColdCopy justifies removing the warm copy of segment m: its cold
// object must be in the store and hold the catalogued segment (its footer's
// offsets, count and digest), and be as big as the catalog says. A store
// that cannot answer is an ordinary failure, retried; anything else is a
// refusal.
func (mv *Mover) checkColdCopy(ctx context.Context, m tiers.SegmentMeta) error {
	if mv.cold == nil {
		return refused(&m, "no cold store to hold the copy that would remain")
	}
	size, err := mv.cold.Check(ctx, m)
	switch {
	case errors.Is(err, cold.ErrStoreUnavailable):
		return fmt.Errorf("engine: check the cold copy of %s/%d before dropping the warm one: %w", m.Stream, m.Base, err)
	case err != nil:
		return refused(&m, "its cold copy, the one that would remain, is not sound: %v", err)
	case m.ColdBytes > 0 && size != m.ColdBytes:
		return refused(&m, "its cold copy is %d bytes, the catalog says %d", size, m.ColdBytes)
	}
	return nil
}

// overWarmBudget reports whether local disk holds more than warm.max_bytes
// now. Without a cold store every catalogued segment is a warm file, so the
// catalog's stream totals are the disk's use.
func (mv *Mover) overWarmBudget(ctx context.Context) (bool, error) {
	if mv.cfg == nil {
		return false, nil
	}
	streams, err := mv.cat.Streams(ctx)
	if err != nil {
		return false, err
	}
	var used int64
	for _, s := range streams {
		used += s.Bytes
	}
	return used > mv.cfg.Warm.MaxBytes, nil
}

// recordOutcome books a failed step on segment (stream, base): a refusal as
// such, so that verify reports it.
func (mv *Mover) recordOutcome(ctx context.Context, stream string, base uint64, msg string, err error) {
	record := mv.cat.RecordFailure
	if errors.Is(err, ErrRefused) || errors.Is(err, catalog.ErrUnjustified) {
		record = mv.cat.RecordRefusal
		mv.log.Error("destructive step refused: nothing was deleted", "stream", stream, "base", base, "err", err)
	}
	if rerr := record(context.WithoutCancel(ctx), stream, base, msg); rerr != nil {
		mv.log.Warn("record move failure", "stream", stream, "base", base, "err", rerr)
	}
}

// CheckRemoval is justifyRemoval for verify: it says why the copies of
// tombstoned segment m could not be removed now (nil when they could, the
// delete delay aside), retainedFrom being the stream's retention watermark.
func (mv *Mover) CheckRemoval(m tiers.SegmentMeta, retainedFrom uint64, now time.Time) error {
	return mv.justifyRemoval(&m, retainedFrom, now, false)
}
