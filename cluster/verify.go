package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tierd/tierd/api"
	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/journal"
	"github.com/tierd/tierd/tiers"
)

// journalRange is one journal_ranges row.
type journalRange struct {
	first, last uint64
	key         string
	off, len    int64
}

// maxBlockBytes bounds one block read back by verify: a block is one
// batch, which the server caps (max_body_bytes) well below this.
const maxBlockBytes = 256 << 20

// verifyAttempts bounds the re-reads when compaction commits between the
// catalog's and the journal's reads of a stream.
const verifyAttempts = 5

// Verify proves, for stream (every stream when ""), that its offsets
// [retention watermark, next_offset) are held exactly once: by the
// catalog's live segments (catalog Coverage; each Parquet object read back
// against its digest) up to the first journal range, then by journal
// ranges dense up to cluster_streams.next_offset, each range's block read
// back from the store (a ranged GET of exactly its bytes) and decoded with
// the journal's checks against the row's stream and record count. It then
// lists the cold store and reports Parquet objects nothing claims
// (orphan_cold, or lost_segment when they hold offsets nothing else
// does). An error is returned only when verify cannot proceed (PostgreSQL does not
// answer); what it finds is in the report.
func (n *Node) Verify(ctx context.Context, stream string, progress engine.VerifyProgress) (engine.VerifyReport, error) {
	rep := engine.VerifyReport{Streams: []engine.StreamCheck{}, Findings: []engine.Finding{}}
	names := []string{stream}
	if stream == "" {
		var err error
		if names, err = n.streamNames(ctx); err != nil {
			return rep, fmt.Errorf("cluster: verify: %w", err)
		}
	} else if err := tiers.ValidateStreamName(stream); err != nil {
		return rep, err
	} else if _, err := n.Segments(ctx, stream); err != nil {
		return rep, err
	}
	type plan struct {
		cv      catalog.Coverage
		known   bool // the catalog knows the stream
		metas   []tiers.SegmentMeta
		ranges  []journalRange
		next    uint64
		written bool // cluster_streams knows the stream
	}
	plans := make([]plan, len(names))
	total := 0
	for i, name := range names {
		p := &plans[i]
		var err error
		p.cv, p.known, p.ranges, p.next, p.written, err = n.snapshot(ctx, name)
		if err != nil {
			return rep, fmt.Errorf("cluster: verify %s: %w", name, err)
		}
		if p.known {
			if p.metas, err = n.cat.Segments(ctx, name); err != nil {
				return rep, fmt.Errorf("cluster: verify %s: %w", name, err)
			}
		}
		for _, m := range p.metas {
			if m.Tombstoned.IsZero() {
				total++
			}
		}
		total += len(p.ranges)
	}
	done := 0
	tick := func() {
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	for i, name := range names {
		p := &plans[i]
		sc := engine.StreamCheck{Stream: name, First: p.cv.First, Next: p.next}
		if !p.written {
			sc.Next = p.cv.Next
		}
		if p.known {
			rep.Findings = append(rep.Findings, coverageFindings(name, p.cv)...)
			now := n.opts.Now()
			for _, m := range p.cv.Tombstoned {
				if err := n.mover.CheckRemoval(m, p.cv.First, now); err != nil {
					rep.Findings = append(rep.Findings, engine.Finding{Kind: api.FindingRetention, Stream: name, Base: m.Base,
						Message: fmt.Sprintf("tombstoned %v, but its deletion is not justified: %v", m.Tombstoned, err)})
				}
			}
		}
		for _, m := range p.metas {
			if !m.Tombstoned.IsZero() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			sc.Segments++
			sc.Placements++
			if f, bad := n.verifySegment(ctx, m); bad {
				rep.Findings = append(rep.Findings, f)
			}
			tick()
		}
		// The journal takes over where the catalog's segments end.
		start := p.cv.Next
		if p.written {
			rep.Findings = append(rep.Findings, journalCoverage(name, start, p.next, p.ranges)...)
		}
		for _, r := range p.ranges {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			sc.Segments++
			sc.Placements++
			if err := n.checkBlock(ctx, name, r); err != nil {
				rep.Findings = append(rep.Findings, blockFinding(name, r, err))
			}
			tick()
		}
		rep.Streams = append(rep.Streams, sc)
	}
	heldBy := map[string]*held{}
	for i, name := range names {
		heldBy[name] = &held{retainedFrom: plans[i].cv.First, segs: plans[i].metas, ranges: plans[i].ranges}
	}
	claimed := claimedObjects(heldBy)
	if err := n.findColdOrphans(ctx, heldBy, claimed, &rep); err != nil {
		return rep, err
	}
	rep.Findings = append(rep.Findings, engine.TableFindings(ctx, n.tables, names, func(key string) bool { return claimed[key] }, n.cold.Health())...)
	refused, err := n.refusals(ctx, stream)
	if err != nil {
		return rep, err
	}
	rep.Findings = append(rep.Findings, refused...)
	return rep, nil
}

// snapshot reads, consistently, stream's catalog coverage, its journal
// ranges and its next offset: a compaction committing between the reads
// would move ranges into a segment under verify's feet, so the coverage is
// read before and after the journal and the reads repeat until no segment
// was added in between (the catalog's NextOffset only grows by one).
func (n *Node) snapshot(ctx context.Context, stream string) (cv catalog.Coverage, known bool, ranges []journalRange, next uint64, written bool, err error) {
	for range verifyAttempts {
		cv, known, err = n.coverage(ctx, stream)
		if err != nil {
			return
		}
		ranges, next, written, err = n.ranges(ctx, stream)
		if err != nil {
			return
		}
		var after catalog.Coverage
		if after, _, err = n.coverage(ctx, stream); err != nil {
			return
		}
		if after.Next == cv.Next {
			return
		}
	}
	err = fmt.Errorf("cluster: verify %s: compaction kept committing while verify read it; run verify again", stream)
	return
}

// coverage is the catalog's Coverage of stream; known is false (with a
// zero coverage) when nothing of it was ever compacted.
func (n *Node) coverage(ctx context.Context, stream string) (catalog.Coverage, bool, error) {
	cv, err := n.cat.Coverage(ctx, stream)
	if errors.Is(err, tiers.ErrStreamNotFound) {
		return catalog.Coverage{}, false, nil
	}
	return cv, err == nil, err
}

// ranges reads stream's journal ranges and next offset in one snapshot.
func (n *Node) ranges(ctx context.Context, stream string) (out []journalRange, next uint64, written bool, err error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	err = pgx.BeginTxFunc(ctx, n.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var e error
		next, e = n.nextOffset(ctx, tx, stream)
		if errors.Is(e, tiers.ErrStreamNotFound) {
			return nil
		}
		if e != nil {
			return e
		}
		written = true
		rows, e := tx.Query(ctx, `SELECT first_offset, last_offset, object_key, byte_off, byte_len
FROM journal_ranges WHERE stream = $1 ORDER BY first_offset`, stream)
		if e != nil {
			return pgErr("list the journal ranges of "+stream, e)
		}
		var r journalRange
		var first, last int64
		_, e = pgx.ForEachRow(rows, []any{&first, &last, &r.key, &r.off, &r.len}, func() error {
			r.first, r.last = uint64(first), uint64(last)
			out = append(out, r)
			return nil
		})
		if e != nil {
			return pgErr("list the journal ranges of "+stream, e)
		}
		return nil
	})
	return out, next, written, err
}

// coverageFindings are the catalog's gaps, overlaps and segments misplaced
// against the retention watermark.
func coverageFindings(name string, cv catalog.Coverage) []engine.Finding {
	var out []engine.Finding
	for _, g := range cv.Gaps {
		out = append(out, engine.Finding{Kind: api.FindingGap, Stream: name, From: g[0], To: g[1],
			Message: fmt.Sprintf("offsets [%d, %d) are held by no segment, and retention deleted only those below %d: records are missing", g[0], g[1], cv.First)})
	}
	for _, o := range cv.Overlaps {
		out = append(out, engine.Finding{Kind: api.FindingOverlap, Stream: name, From: o[0], To: o[1],
			Message: fmt.Sprintf("offsets [%d, %d) are held by more than one segment", o[0], o[1])})
	}
	for _, m := range cv.Misplaced {
		msg := fmt.Sprintf("segment [%d, %d] is live below the retention watermark %d", m.Base, m.Last, cv.First)
		if !m.Tombstoned.IsZero() {
			msg = fmt.Sprintf("segment [%d, %d] is tombstoned at or above the retention watermark %d", m.Base, m.Last, cv.First)
		}
		out = append(out, engine.Finding{Kind: api.FindingRetention, Stream: name, Base: m.Base, Message: msg})
	}
	return out
}

// journalCoverage checks that the ranges run dense from start (where the
// catalog's segments end) to next: a hole is a gap, a range reaching below
// start or below its predecessor's end an overlap.
func journalCoverage(name string, start, next uint64, ranges []journalRange) []engine.Finding {
	var out []engine.Finding
	expect := start
	for _, r := range ranges {
		switch {
		case r.first > expect:
			out = append(out, engine.Finding{Kind: api.FindingGap, Stream: name, From: expect, To: r.first, Tier: tiers.Warm.String(),
				Message: fmt.Sprintf("offsets [%d, %d) are held by no segment and no journal range: records are missing", expect, r.first)})
		case r.first < expect:
			out = append(out, engine.Finding{Kind: api.FindingOverlap, Stream: name, From: r.first, To: min(expect, r.last+1), Tier: tiers.Warm.String(), Path: r.key,
				Message: fmt.Sprintf("journal range [%d, %d] in %s overlaps offsets already held below %d", r.first, r.last, r.key, expect)})
		}
		expect = max(expect, r.last+1)
	}
	if expect < next {
		out = append(out, engine.Finding{Kind: api.FindingGap, Stream: name, From: expect, To: next, Tier: tiers.Warm.String(),
			Message: fmt.Sprintf("offsets [%d, %d) were acknowledged (next offset %d) but no journal range holds them: records are missing", expect, next, next)})
	} else if expect > next {
		out = append(out, engine.Finding{Kind: api.FindingOverlap, Stream: name, From: next, To: expect, Tier: tiers.Warm.String(),
			Message: fmt.Sprintf("journal ranges hold offsets [%d, %d) at or above the stream's next offset %d", next, expect, next)})
	}
	return out
}

// checkBlock reads one range's block back from the store and decodes it
// with every journal check against the row.
func (n *Node) checkBlock(ctx context.Context, stream string, r journalRange) error {
	if r.len <= 0 || r.len > maxBlockBytes {
		return &tiers.CorruptionError{Path: r.key, Offset: r.off, Err: fmt.Errorf("journal range [%d, %d] claims a block of %d bytes", r.first, r.last, r.len)}
	}
	ctx, cancel := context.WithTimeout(ctx, n.blockTimeout())
	defer cancel()
	rc, err := n.opts.Bucket.GetRange(ctx, r.key, r.off, r.len)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(rc, r.len+1))
	rc.Close()
	if err != nil {
		return err
	}
	if int64(len(b)) != r.len {
		return &tiers.CorruptionError{Path: r.key, Offset: r.off, Err: fmt.Errorf("a ranged GET of %d bytes answered %d: the object is shorter than its catalog range", r.len, len(b))}
	}
	_, err = journal.DecodeBlock(b, journal.BlockCheck{Key: r.key, Pos: r.off, Stream: stream, Records: int(r.last - r.first + 1), First: r.first, MaxValueBytes: n.maxRecordBytes()})
	return err
}

// blockTimeout bounds one block's read-back.
func (n *Node) blockTimeout() time.Duration {
	if d := n.opts.Config.Cold.ReadTimeout; d > 0 {
		return 4 * d
	}
	return time.Minute
}

// blockFinding classifies a journal block's failed read-back.
func blockFinding(name string, r journalRange, err error) engine.Finding {
	f := engine.Finding{Stream: name, Base: r.first, From: r.first, To: r.last + 1, Tier: tiers.Warm.String(), Path: r.key,
		Message: fmt.Sprintf("journal range [%d, %d] at %s bytes [%d, +%d): %v", r.first, r.last, r.key, r.off, r.len, err)}
	f.Kind = findingKind(err)
	return f
}

// findingKind names what a failed check of a copy means, as the engine's
// verify does.
func findingKind(err error) string {
	var ce *tiers.CorruptionError
	switch {
	case errors.Is(err, tiers.ErrSegmentNotFound) || errors.Is(err, os.ErrNotExist) || errors.Is(err, objstore.ErrNotFound):
		return api.FindingMissing
	case errors.Is(err, cold.ErrStoreUnavailable):
		return api.FindingUnreadable
	case errors.As(err, &ce), errors.Is(err, cold.ErrDigestMismatch):
		return api.FindingDigest
	}
	return api.FindingUnreadable
}

// verifySegment reads a catalog segment's Parquet object back against its
// digest.
func (n *Node) verifySegment(ctx context.Context, m tiers.SegmentMeta) (engine.Finding, bool) {
	f := engine.Finding{Stream: m.Stream, Base: m.Base, Tier: tiers.Cold.String(), Path: cold.ObjectKey(m)}
	if !m.Placements.Has(tiers.Cold) {
		f.Kind, f.Message = api.FindingMissing, fmt.Sprintf("segment [%d, %d] is placed %s: in cluster mode every segment is a Parquet object", m.Base, m.Last, m.Placements)
		return f, true
	}
	err := n.cold.Verify(ctx, m)
	if err == nil {
		return f, false
	}
	if cur, cerr := n.cat.Segment(ctx, m.Stream, m.Base); cerr != nil || !cur.Tombstoned.IsZero() {
		return f, false // deleted or tombstoned by retention meanwhile
	}
	f.Kind, f.Message = findingKind(err), err.Error()
	return f, true
}

// refusals reports every deletion refused for lack of justification.
func (n *Node) refusals(ctx context.Context, stream string) ([]engine.Finding, error) {
	fs, err := n.cat.Failures(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: verify: %w", err)
	}
	var out []engine.Finding
	for _, f := range fs {
		if f.Refused && (stream == "" || f.Stream == stream) {
			out = append(out, engine.Finding{Kind: api.FindingRefused, Stream: f.Stream, Base: f.Base,
				Message: fmt.Sprintf("at %s: %s", f.At.UTC().Format(time.RFC3339), f.Err)})
		}
	}
	return out, nil
}
