package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/tiers"
)

// held is what accounts for a stream's offsets when verify looks at an
// object no segment claims: the retention watermark, the live catalog
// segments and the journal ranges.
type held struct {
	retainedFrom uint64
	segs         []tiers.SegmentMeta
	ranges       []journalRange
}

// unheld returns the first offsets of [base, last] that nothing holds and
// retention did not delete: what only an orphan may still hold.
func (h *held) unheld(base, last uint64) (from, to uint64, ok bool) {
	next := max(base, h.retainedFrom)
	advance := func(b, l uint64) bool { // false: a hole before b
		if l < next || next > last {
			return true
		}
		if b > next {
			return false
		}
		next = l + 1
		return true
	}
	for _, m := range h.segs {
		if m.Tombstoned.IsZero() && !advance(m.Base, m.Last) {
			break
		}
	}
	for _, r := range h.ranges {
		if !advance(r.first, r.last) {
			break
		}
	}
	if next <= last {
		return next, last + 1, true
	}
	return 0, 0, false
}

// claimedObjects is the set of the cold object keys of heldBy's catalog
// segments, tombstoned ones included, under their current and legacy keys.
func claimedObjects(heldBy map[string]*held) map[string]bool {
	claimed := map[string]bool{}
	for _, h := range heldBy {
		for _, m := range h.segs {
			claimed[cold.ObjectKey(m)] = true
			claimed[cold.LegacyObjectKey(m)] = true // written before names were encoded
		}
	}
	return claimed
}

// findColdOrphans lists the cold store's segment objects of every stream
// verify looked at (stream=<name>/ of each: the journal's objects, many
// and garbage collection's business, are not walked) and reports those not
// claimed (claimedObjects) and no open compaction job is writing: orphan_cold, or
// lost_segment when it holds offsets nothing else holds. Compaction's
// garbage collection removes true orphans after cluster.gc_delay; verify
// only reports.
func (n *Node) findColdOrphans(ctx context.Context, heldBy map[string]*held, claimed map[string]bool, rep *engine.VerifyReport) error {
	jobs, err := n.openJobs(ctx)
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(heldBy)) {
		if err := n.coldOrphansOf(ctx, name, claimed, jobs, heldBy, rep); err != nil {
			return err
		}
	}
	return nil
}

// coldOrphansOf is findColdOrphans for one stream.
func (n *Node) coldOrphansOf(ctx context.Context, stream string, claimed map[string]bool, jobs openJobSet, heldBy map[string]*held, rep *engine.VerifyReport) error {
	for o, err := range n.cold.Objects(ctx, stream) {
		if err != nil {
			return fmt.Errorf("cluster: verify: %w", err)
		}
		rep.ColdObjects++
		if claimed[o.Key] || (o.Segment && jobs.writes(o.Stream, o.Base, o.Last)) {
			continue
		}
		if !o.Segment {
			rep.Findings = append(rep.Findings, engine.Finding{Kind: api.FindingOrphanCold, Tier: tiers.Cold.String(), Path: o.Key,
				Message: "an object in the cold store that is not a segment"})
			continue
		}
		// A segment committed since the listing is no orphan.
		if m, err := n.cat.Segment(ctx, o.Stream, o.Base); err == nil && cold.IsObjectKeyOf(o.Key, m) {
			continue
		}
		f := engine.Finding{Kind: api.FindingOrphanCold, Stream: o.Stream, Base: o.Base, Tier: tiers.Cold.String(), Path: o.Key,
			Message: fmt.Sprintf("segment object [%d, %d] that no catalog segment and no compaction job claims; compaction's garbage collection removes it after cluster.gc_delay", o.Base, o.Last)}
		if h := heldBy[o.Stream]; h != nil {
			if from, to, ok := h.unheld(o.Base, o.Last); ok {
				f.Kind, f.From, f.To = api.FindingLostSegment, from, to
				f.Message = fmt.Sprintf("segment object [%d, %d] that nothing claims holds offsets [%d, %d) that no segment and no journal range holds and retention did not delete: it may be their only copy; do not delete it", o.Base, o.Last, from, to)
			}
		}
		rep.Findings = append(rep.Findings, f)
	}
	return nil
}

// openJobSet is the offset ranges [base, last] of the open compaction jobs,
// by stream.
type openJobSet map[string][][2]uint64

// writes reports whether an open job may be writing the segment object
// [base, last] of stream: a job writes one segment per same-day run of its
// records, so any object inside its range may be one of its own.
func (s openJobSet) writes(stream string, base, last uint64) bool {
	for _, r := range s[stream] {
		if r[0] <= base && last <= r[1] {
			return true
		}
	}
	return false
}

// openJobs are the offset ranges compaction jobs are writing now: their
// objects may be in the store before their commit.
func (n *Node) openJobs(ctx context.Context) (openJobSet, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	rows, err := n.pool.Query(ctx, `SELECT stream, base, last_offset FROM compaction_jobs`)
	if err != nil {
		return nil, pgErr("list the compaction jobs", err)
	}
	defer rows.Close()
	out := openJobSet{}
	for rows.Next() {
		var s string
		var b, l int64
		if err := rows.Scan(&s, &b, &l); err != nil {
			return nil, pgErr("list the compaction jobs", err)
		}
		out[s] = append(out[s], [2]uint64{uint64(b), uint64(l)})
	}
	if err := rows.Err(); err != nil {
		return nil, pgErr("list the compaction jobs", err)
	}
	return out, nil
}
