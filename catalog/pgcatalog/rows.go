package pgcatalog

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// The tables' columns as the queries select them, and their decoding.
// Every row read is checked as the bbolt catalog checks its values: what
// no build of tierd writes is damage, reported, never repaired by a guess.

// Plausible times, as the bbolt catalog's: zero where zero means none, or
// within what Unix nanoseconds hold, so that ages cannot overflow.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64)
)

func plausibleTime(t time.Time) bool { return !t.Before(minTime) && !t.After(maxTime) }

// streamCols are catalog_streams' columns, prefixed s.
const streamCols = `s.stream, s.created_at, s.segments, s.records, s.bytes, s.next_offset, s.retained_from`

// streamRow is one catalog_streams row as scanned.
type streamRow struct {
	name                                     string
	createdAt                                time.Time
	segments, records, bytes, next, retained int64
}

func (r *streamRow) dest() []any {
	return []any{&r.name, &r.createdAt, &r.segments, &r.records, &r.bytes, &r.next, &r.retained}
}

// info decodes the row, or reports it damaged.
func (r *streamRow) info() (catalog.StreamInfo, error) {
	err := func() error {
		if err := tiers.ValidateStreamName(r.name); err != nil {
			return err
		}
		switch {
		case r.createdAt.IsZero() || !plausibleTime(r.createdAt):
			return fmt.Errorf("created_at %v", r.createdAt)
		case r.segments < 0 || r.records < 0 || r.bytes < 0 || r.next < 0 || r.retained < 0:
			return errors.New("a negative total or offset")
		case r.retained > r.next:
			return fmt.Errorf("retained from %d, past the next offset %d", r.retained, r.next)
		case r.segments > r.records:
			return fmt.Errorf("%d segments hold %d records", r.segments, r.records)
		}
		return nil
	}()
	if err != nil {
		return catalog.StreamInfo{}, damaged("catalog_streams", fmt.Sprintf("(%s)", r.name), err)
	}
	return catalog.StreamInfo{
		Name: r.name, CreatedAt: r.createdAt, Segments: int(r.segments), Records: uint64(r.records),
		Bytes: r.bytes, NextOffset: uint64(r.next), RetainedFrom: uint64(r.retained),
	}, nil
}

// segCols are catalog_segments' columns, prefixed g.
const segCols = `g.stream, g.base, g.last_offset, g.count, g.bytes, g.min_ts, g.max_ts, g.sealed_at, g.digest, g.placements, g.cold_bytes, g.tombstoned`

// segRow is one catalog_segments row as scanned; every field is nullable
// so that it can scan the missing side of a LEFT JOIN (base nil).
type segRow struct {
	stream                                 *string
	base, last, count, bytes, minTS, maxTS *int64
	sealed                                 *time.Time
	digest                                 []byte
	placements                             []*string
	cold                                   *int64
	tomb                                   *time.Time
}

func (r *segRow) dest() []any {
	return []any{&r.stream, &r.base, &r.last, &r.count, &r.bytes, &r.minTS, &r.maxTS, &r.sealed, &r.digest, &r.placements, &r.cold, &r.tomb}
}

// present reports whether the row holds a segment (not the NULLs of a
// LEFT JOIN that matched none).
func (r *segRow) present() bool { return r.base != nil }

// meta decodes the row, or reports it damaged.
func (r *segRow) meta() (tiers.SegmentMeta, error) {
	var m tiers.SegmentMeta
	key := "(?)"
	err := func() error {
		if r.stream == nil || r.base == nil || r.last == nil || r.count == nil || r.bytes == nil ||
			r.minTS == nil || r.maxTS == nil || r.sealed == nil || r.cold == nil || r.placements == nil {
			return errors.New("a NULL column")
		}
		m.Stream = *r.stream
		key = fmt.Sprintf("(%s, %d)", m.Stream, *r.base)
		if err := tiers.ValidateStreamName(m.Stream); err != nil {
			return err
		}
		if *r.base < 0 || *r.last < 0 || *r.count < 0 {
			return fmt.Errorf("negative offsets or count: base %d, last %d, count %d", *r.base, *r.last, *r.count)
		}
		m.Base, m.Last, m.Count = uint64(*r.base), uint64(*r.last), uint64(*r.count)
		m.Bytes, m.MinTS, m.MaxTS, m.ColdBytes = *r.bytes, *r.minTS, *r.maxTS, *r.cold
		m.SealedAt = *r.sealed
		if r.tomb != nil {
			if r.tomb.IsZero() {
				return errors.New("a zero tombstone time (NULL means live)")
			}
			m.Tombstoned = *r.tomb
		}
		if len(r.digest) != len(m.Digest) {
			return fmt.Errorf("digest of %d bytes, want %d", len(r.digest), len(m.Digest))
		}
		copy(m.Digest[:], r.digest)
		p, err := parsePlacements(r.placements)
		if err != nil {
			return err
		}
		m.Placements = p
		return catalog.CheckSegment(&m)
	}()
	if err != nil {
		return tiers.SegmentMeta{}, damaged("catalog_segments", key, err)
	}
	return m, nil
}

// placementNames returns the stored form of a durable placement set:
// "warm" and "cold" in that order.
func placementNames(p tiers.Placements) []string { return p.Strings() }

// parsePlacements is the inverse of placementNames: a name it does not
// know, hot (never stored), a repeat or a disorder is damage.
func parsePlacements(names []*string) (tiers.Placements, error) {
	var p tiers.Placements
	prev := tiers.Placement(0)
	for _, n := range names {
		if n == nil {
			return 0, errors.New("a NULL placement")
		}
		pl, err := tiers.ParsePlacement(*n)
		if err != nil {
			return 0, fmt.Errorf("placement %q: %w", *n, err)
		}
		if pl == tiers.Hot || pl <= prev {
			return 0, fmt.Errorf("placement %q: hot, repeated or out of order", *n)
		}
		prev = pl
		p = p.With(pl)
	}
	return p, nil
}

// segArgs are the values of a segment row's columns, in segCols' order.
func segArgs(m *tiers.SegmentMeta) []any {
	var tomb *time.Time
	if !m.Tombstoned.IsZero() {
		t := m.Tombstoned
		tomb = &t
	}
	return []any{m.Stream, int64(m.Base), int64(m.Last), int64(m.Count), m.Bytes, m.MinTS, m.MaxTS,
		m.SealedAt, m.Digest[:], placementNames(m.Placements), m.ColdBytes, tomb}
}

// intentCols are catalog_intents' columns.
const intentCols = `stream, base, kind, key, started_at, attempts, last_error`

type intentRow struct {
	in   catalog.Intent
	base int64
}

func (r *intentRow) dest() []any {
	return []any{&r.in.Stream, &r.base, &r.in.Kind, &r.in.Key, &r.in.Started, &r.in.Attempts, &r.in.LastError}
}

func (r *intentRow) intent() (catalog.Intent, error) {
	in := r.in
	err := func() error {
		if err := tiers.ValidateStreamName(in.Stream); err != nil {
			return err
		}
		if r.base < 0 {
			return fmt.Errorf("negative base %d", r.base)
		}
		in.Base = uint64(r.base)
		if in.Started.IsZero() || !plausibleTime(in.Started) {
			return fmt.Errorf("started %v", in.Started)
		}
		if len(in.LastError) > catalog.MaxErrorBytes {
			return fmt.Errorf("last error of %d bytes", len(in.LastError))
		}
		return catalog.CheckIntent(&in)
	}()
	if err != nil {
		return catalog.Intent{}, damaged("catalog_intents", fmt.Sprintf("(%s, %d)", r.in.Stream, r.base), err)
	}
	return in, nil
}

// failureCols are catalog_failures' columns.
const failureCols = `stream, base, kind, error, at, attempts, refused`

type failureRow struct {
	f    catalog.Failure
	base int64
}

func (r *failureRow) dest() []any {
	return []any{&r.f.Stream, &r.base, &r.f.Kind, &r.f.Err, &r.f.At, &r.f.Attempts, &r.f.Refused}
}

func (r *failureRow) failure() (catalog.Failure, error) {
	f := r.f
	err := func() error {
		if err := tiers.ValidateStreamName(f.Stream); err != nil {
			return err
		}
		switch {
		case r.base < 0:
			return fmt.Errorf("negative base %d", r.base)
		case f.At.IsZero() || !plausibleTime(f.At):
			return fmt.Errorf("at %v", f.At)
		case f.Attempts < 1 || f.Attempts > math.MaxInt32:
			return fmt.Errorf("attempts %d", f.Attempts)
		case len(f.Kind) > catalog.MaxKindBytes || len(f.Err) > catalog.MaxErrorBytes:
			return errors.New("an oversized kind or message")
		}
		f.Base = uint64(r.base)
		return nil
	}()
	if err != nil {
		return catalog.Failure{}, damaged("catalog_failures", fmt.Sprintf("(%s, %d)", r.f.Stream, r.base), err)
	}
	return f, nil
}

// collect scans every row of rows with dest and decodes it with decode.
func collect[R any, T any](rows pgx.Rows, dest func(*R) []any, decode func(*R) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var r R
		if err := rows.Scan(dest(&r)...); err != nil {
			return nil, err
		}
		v, err := decode(&r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
