package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tablesync"
	"github.com/tierd/tierd/tiers"
	"github.com/tierd/tierd/warm"
)

// Finding is one problem verify found.
type Finding struct {
	Kind   string // one of api.Finding*
	Stream string
	// Base identifies the segment, for segment findings.
	Base uint64
	// From and To bound a gap or overlap: offsets [From, To).
	From, To uint64
	// Tier is the placement checked ("warm", "cold").
	Tier string
	// Path is the file or object key concerned.
	Path    string
	Message string
}

// StreamCheck is what verify covered of one stream.
type StreamCheck struct {
	Stream string
	// First and Next bound the retained, persisted offsets [First, Next)
	// that must be covered exactly once.
	First, Next uint64
	// Segments live segments were checked, Placements copies of them.
	Segments, Placements int
	// UnpersistedRecords are the records at or above Next held only in
	// memory (and the WAL), in UnpersistedSegments segments (the active
	// one included): durable and readable, but not yet persisted warm, so
	// there is no copy to check yet. They are checked once the flusher
	// (or a seal) persists them.
	UnpersistedRecords  uint64
	UnpersistedSegments int
}

// unpersisted counts, from a snapshot of stream's memory taken after its
// coverage was read, the records and segments at or above next (the
// persisted watermark): those held only in memory. Counting by offset
// keeps the two figures consistent with Next even when the flusher
// persists a segment in between.
func (e *Engine) unpersisted(stream string, next uint64) (records uint64, segments int) {
	sn := e.hot.Snapshot(stream)
	if sn.Next > next {
		records = sn.Next - next
	}
	for _, s := range sn.Segments() {
		if s.Count > 0 && s.Last >= next {
			segments++
		}
	}
	return records, segments
}

// VerifyReport is the outcome of Verify. It is clean when Findings is
// empty.
type VerifyReport struct {
	Streams  []StreamCheck
	Findings []Finding
	// WarmFiles and ColdObjects count what the orphan scan looked at.
	WarmFiles, ColdObjects int
}

// VerifyProgress is told, after each segment, how many of the segments to
// check are done.
type VerifyProgress func(done, total int)

// Verify proves, for stream (every stream when ""), that its offsets
// [first retained, next persisted) are covered by committed live segments
// exactly once, and that every placement of every live segment is there
// and hashes to the catalog's digest (warm: every frame and the footer;
// cold: the whole object read back). It then lists the warm directory and
// the cold store and reports files and objects no segment claims (a move
// in progress is not reported). It reads every byte of every copy, so it
// takes as long as reading the archive. An error is returned only when
// verify itself cannot proceed (the catalog is unreadable); what it finds
// is in the report. With tables on, it also reports the data files a
// stream's Iceberg table lists that no segment holds (TableFindings).
func (e *Engine) Verify(ctx context.Context, stream string, progress VerifyProgress) (VerifyReport, error) {
	rep := VerifyReport{Streams: []StreamCheck{}, Findings: []Finding{}}
	names := []string{stream}
	if stream == "" {
		cs, err := e.catalog.Streams(ctx)
		if err != nil {
			return rep, fmt.Errorf("engine: verify: %w", err)
		}
		// Every stream the engine knows, those with nothing persisted yet
		// too, as verify --stream S would show each.
		names = e.hot.StreamNames()
		for _, s := range cs {
			names = append(names, s.Name)
		}
		slices.Sort(names)
		names = slices.Compact(names)
	} else if err := tiers.ValidateStreamName(stream); err != nil {
		return rep, err
	} else if !e.hot.Snapshot(stream).Known {
		return rep, tiers.ErrStreamNotFound
	}
	// claimed holds every file and object a segment accounts for: its
	// committed placements, and the destination of a move in progress.
	claimedWarm, claimedCold := map[string]bool{}, map[string]bool{}
	segsOf := map[string][]tiers.SegmentMeta{}
	retainedFrom := map[string]uint64{}
	unsound := map[segID]bool{}
	total := 0
	for _, name := range names {
		metas, err := e.catalog.Segments(ctx, name)
		if errors.Is(err, tiers.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("engine: verify %s: %w", name, err)
		}
		segsOf[name] = metas
		for _, m := range metas {
			if m.Tombstoned.IsZero() {
				total++
			}
			// A tombstoned segment's copies are claimed until deleted.
			claimedWarm[e.warm.Path(m.Stream, m.Base)] = m.Placements.Has(tiers.Warm) || !m.Tombstoned.IsZero()
			claimedCold[cold.ObjectKey(m)] = m.Placements.Has(tiers.Cold) || !m.Tombstoned.IsZero()
			claimedCold[cold.LegacyObjectKey(m)] = claimedCold[cold.ObjectKey(m)] // written before names were encoded
		}
	}
	intents, err := e.catalog.Intents(ctx)
	if err != nil {
		return rep, fmt.Errorf("engine: verify: %w", err)
	}
	for _, in := range intents {
		if m, err := e.catalog.Segment(ctx, in.Stream, in.Base); err == nil {
			claimedWarm[e.warm.Path(m.Stream, m.Base)] = true
			claimedCold[cold.ObjectKey(m)] = true
			claimedCold[cold.LegacyObjectKey(m)] = true
		}
	}

	done := 0
	for _, name := range names {
		metas, ok := segsOf[name]
		if !ok {
			sc := StreamCheck{Stream: name}
			sc.UnpersistedRecords, sc.UnpersistedSegments = e.unpersisted(name, 0)
			rep.Streams = append(rep.Streams, sc)
			continue
		}
		sc := StreamCheck{Stream: name}
		cv, err := e.catalog.Coverage(ctx, name)
		if err != nil {
			return rep, fmt.Errorf("engine: verify %s: %w", name, err)
		}
		sc.First, sc.Next = cv.First, cv.Next
		sc.UnpersistedRecords, sc.UnpersistedSegments = e.unpersisted(name, cv.Next)
		retainedFrom[name] = cv.First
		for _, g := range cv.Gaps {
			rep.Findings = append(rep.Findings, Finding{Kind: api.FindingGap, Stream: name, From: g[0], To: g[1],
				Message: fmt.Sprintf("offsets [%d, %d) are held by no segment, and retention deleted only those below %d: records are missing", g[0], g[1], cv.First)})
		}
		for _, o := range cv.Overlaps {
			rep.Findings = append(rep.Findings, Finding{Kind: api.FindingOverlap, Stream: name, From: o[0], To: o[1],
				Message: fmt.Sprintf("offsets [%d, %d) are held by more than one segment", o[0], o[1])})
		}
		rep.Findings = append(rep.Findings, e.retentionFindings(name, cv)...)
		for _, m := range metas {
			if !m.Tombstoned.IsZero() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			sc.Segments++
			findings, n := e.verifySegment(ctx, m)
			sc.Placements += n
			rep.Findings = append(rep.Findings, findings...)
			if n > 0 && len(findings) >= n {
				unsound[segID{m.Stream, m.Base}] = true // no copy checked out
			}
			done++
			if progress != nil {
				progress(done, total)
			}
		}
		rep.Streams = append(rep.Streams, sc)
	}
	refusals, err := e.refusalFindings(ctx, stream)
	if err != nil {
		return rep, err
	}
	rep.Findings = append(rep.Findings, refusals...)
	o := orphanScan{claimedWarm: claimedWarm, claimedCold: claimedCold, segsOf: segsOf, retainedFrom: retainedFrom, unsound: unsound}
	if err := e.findOrphans(ctx, stream, &o, &rep); err != nil {
		return rep, err
	}
	if e.cold != nil {
		rep.Findings = append(rep.Findings, TableFindings(ctx, e.tables, names, func(key string) bool { return claimedCold[key] }, e.cold.Health())...)
	}
	return rep, nil
}

// retentionFindings reports what contradicts a stream's retention
// watermark, and tombstones the policy no longer justifies.
func (e *Engine) retentionFindings(name string, cv catalog.Coverage) []Finding {
	var out []Finding
	for _, m := range cv.Misplaced {
		msg := fmt.Sprintf("segment [%d, %d] is live below the retention watermark %d", m.Base, m.Last, cv.First)
		if !m.Tombstoned.IsZero() {
			msg = fmt.Sprintf("segment [%d, %d] is tombstoned at or above the retention watermark %d", m.Base, m.Last, cv.First)
		}
		out = append(out, Finding{Kind: api.FindingRetention, Stream: name, Base: m.Base, Message: msg})
	}
	now := e.opts.Now()
	for _, m := range cv.Tombstoned {
		if err := e.mover.CheckRemoval(m, cv.First, now); err != nil {
			out = append(out, Finding{Kind: api.FindingRetention, Stream: name, Base: m.Base,
				Message: fmt.Sprintf("tombstoned %v, but its deletion is not justified: %v", m.Tombstoned, err)})
		}
	}
	return out
}

// refusalFindings reports every deletion refused for lack of justification
// since the segment's last success.
func (e *Engine) refusalFindings(ctx context.Context, stream string) ([]Finding, error) {
	fs, err := e.catalog.Failures(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: verify: %w", err)
	}
	var out []Finding
	for _, f := range fs {
		if f.Refused && (stream == "" || f.Stream == stream) {
			out = append(out, Finding{Kind: api.FindingRefused, Stream: f.Stream, Base: f.Base,
				Message: fmt.Sprintf("at %s: %s", f.At.UTC().Format(time.RFC3339), f.Err)})
		}
	}
	return out, nil
}

// verifySegment checks every copy of a segment, holding the segment's move
// lock so that no move or deletion changes its placements meanwhile (the
// placements are read again under the lock). It returns the findings and
// how many copies it checked.
func (e *Engine) verifySegment(ctx context.Context, m tiers.SegmentMeta) ([]Finding, int) {
	defer e.mover.Lock(m.Stream, m.Base)()
	cur, err := e.catalog.Segment(ctx, m.Stream, m.Base)
	if err != nil || !cur.Tombstoned.IsZero() {
		return nil, 0 // deleted or tombstoned since the listing
	}
	var out []Finding
	n := 0
	for _, p := range cur.Placements.List() {
		n++
		if f, bad := e.verifyPlacement(ctx, cur, p); bad {
			out = append(out, f)
		}
	}
	return out, n
}

// claimedNow reports whether the catalog, read now, accounts for the warm
// file or cold object of segment (stream, base): a move committed after
// verify's first listing must not make its destination look orphaned.
func (e *Engine) claimedNow(ctx context.Context, stream string, base uint64, p tiers.Placement, key string) bool {
	m, err := e.catalog.Segment(ctx, stream, base)
	if err != nil {
		return false
	}
	if p == tiers.Cold && !cold.IsObjectKeyOf(key, m) {
		return false
	}
	return m.Placements.Has(p) || !m.Tombstoned.IsZero()
}

// verifyPlacement checks one copy of a segment against the catalog.
func (e *Engine) verifyPlacement(ctx context.Context, m tiers.SegmentMeta, p tiers.Placement) (Finding, bool) {
	f := Finding{Stream: m.Stream, Base: m.Base, Tier: p.String()}
	var err error
	switch p {
	case tiers.Warm:
		f.Path = e.warm.Path(m.Stream, m.Base)
		var r *warm.Reader
		if r, err = e.warm.AcquireUncached(m.Stream, m.Base); err == nil {
			err = r.Verify()
			if got := r.Meta(); err == nil && (got.Digest != m.Digest || got.Last != m.Last) {
				err = fmt.Errorf("file holds [%d, %d] %s, catalog has [%d, %d] %s", got.Base, got.Last, got.Digest, m.Base, m.Last, m.Digest)
				f.Kind = api.FindingDigest
			}
			r.Release()
		}
	case tiers.Cold:
		f.Path = cold.ObjectKey(m)
		if e.cold == nil {
			err = ErrNoColdTier
			f.Kind = api.FindingUnreadable
		} else {
			err = e.cold.Verify(ctx, m)
		}
	default:
		return f, false
	}
	if err == nil {
		return f, false
	}
	if f.Kind == "" {
		var ce *tiers.CorruptionError
		switch {
		case errors.Is(err, tiers.ErrSegmentNotFound) || errors.Is(err, os.ErrNotExist) || errors.Is(err, objstore.ErrNotFound):
			f.Kind = api.FindingMissing
		case errors.Is(err, cold.ErrStoreUnavailable):
			f.Kind = api.FindingUnreadable
		case errors.As(err, &ce), errors.Is(err, cold.ErrDigestMismatch):
			f.Kind = api.FindingDigest
		default:
			f.Kind = api.FindingUnreadable
		}
	}
	f.Message = err.Error()
	return f, true
}

// segID names a segment.
type segID struct {
	stream string
	base   uint64
}

// orphanScan is what findOrphans needs to know of the catalog.
type orphanScan struct {
	claimedWarm, claimedCold map[string]bool
	segsOf                   map[string][]tiers.SegmentMeta
	retainedFrom             map[string]uint64
	// unsound are live segments none of whose copies verified: their
	// offsets count as held by nothing.
	unsound map[segID]bool
}

// unheld returns the first range of offsets in [base, last] that no live
// segment of stream holds with a sound copy and that retention did not
// delete: what only an orphan may still hold. ok is false when there is
// none.
func (o *orphanScan) unheld(stream string, base, last uint64) (from, to uint64, ok bool) {
	next := max(base, o.retainedFrom[stream])
	for _, m := range o.segsOf[stream] {
		if next > last {
			return 0, 0, false
		}
		if !m.Tombstoned.IsZero() || m.Last < next || o.unsound[segID{m.Stream, m.Base}] {
			continue
		}
		if m.Base > next {
			return next, min(m.Base-1, last) + 1, true
		}
		next = m.Last + 1
	}
	if next <= last {
		return next, last + 1, true
	}
	return 0, 0, false
}

// orphanFinding is the finding for an orphan of stream holding [base,
// last]: lost_segment when it holds offsets nothing else does.
func (o *orphanScan) orphanFinding(kind, stream string, base, last uint64, tier, path, msg string) Finding {
	f := Finding{Kind: kind, Stream: stream, Base: base, Tier: tier, Path: path, Message: msg}
	if from, to, ok := o.unheld(stream, base, last); ok {
		f.Kind, f.From, f.To = api.FindingLostSegment, from, to
		f.Message = fmt.Sprintf("%s, and it holds offsets [%d, %d) that no live segment holds with a sound copy and retention did not delete: it may be their only copy; do not delete it (docs/operations.md, Verify)", msg, from, to)
		return f
	}
	f.Message = msg + "; every offset it holds is held by a live segment with a sound copy or was deleted by retention"
	return f
}

// findOrphans lists the warm directory and the cold store and reports what
// no segment claims.
func (e *Engine) findOrphans(ctx context.Context, stream string, o *orphanScan, rep *VerifyReport) error {
	files, err := e.warm.List()
	if err != nil {
		return fmt.Errorf("engine: verify: %w", err)
	}
	cs, err := e.catalog.Streams(ctx)
	if err != nil {
		return fmt.Errorf("engine: verify: %w", err)
	}
	persisted := map[string]uint64{}
	for _, s := range cs {
		persisted[s.Name] = s.NextOffset
	}
	// A file at or above its stream's persisted offset may be the flusher's,
	// written but not yet committed.
	unpersisted := func(stream string, base uint64) bool {
		n, ok := persisted[stream]
		return !ok || base >= n
	}
	for _, f := range files {
		if stream != "" && f.Stream != stream {
			continue
		}
		rep.WarmFiles++
		if !o.claimedWarm[filepath.Clean(f.Path)] && !e.mover.Busy(f.Stream, f.Base) && !unpersisted(f.Stream, f.Base) &&
			!e.claimedNow(ctx, f.Stream, f.Base, tiers.Warm, "") {
			rep.Findings = append(rep.Findings, o.orphanFinding(api.FindingOrphanWarm, f.Stream, f.Base, e.warmLast(f), "warm", f.Path,
				"no segment places this file warm"))
		}
	}
	if e.cold == nil {
		return nil
	}
	for ob, err := range e.cold.Objects(ctx, stream) {
		if err != nil {
			rep.Findings = append(rep.Findings, Finding{Kind: api.FindingUnreadable, Stream: stream, Tier: "cold", Message: "listing the cold store: " + err.Error()})
			return nil
		}
		if tablesync.NotASegment(ob.Key, ob.Size) {
			continue // the Iceberg tables' metadata, not segments
		}
		rep.ColdObjects++
		if o.claimedCold[ob.Key] || (ob.Segment && (e.mover.Busy(ob.Stream, ob.Base) || e.claimedNow(ctx, ob.Stream, ob.Base, tiers.Cold, ob.Key))) {
			continue
		}
		if !ob.Segment {
			rep.Findings = append(rep.Findings, Finding{Kind: api.FindingOrphanCold, Tier: "cold", Path: ob.Key, Message: "not a segment object"})
			continue
		}
		rep.Findings = append(rep.Findings, o.orphanFinding(api.FindingOrphanCold, ob.Stream, ob.Base, ob.Last, "cold", ob.Key,
			"no segment places this object cold"))
	}
	return nil
}

// warmLast reads the last offset of a warm file from its footer; a file
// that cannot be read counts as holding its first offset at least.
func (e *Engine) warmLast(f warm.SegmentFile) uint64 {
	r, err := e.warm.AcquireUncached(f.Stream, f.Base)
	if err != nil {
		return f.Base
	}
	defer r.Release()
	return r.Meta().Last
}
