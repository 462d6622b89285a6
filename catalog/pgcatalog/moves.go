package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tierd/tierd/catalog"
	"github.com/tierd/tierd/tiers"
)

// PutIntent records that a move of segment (in.Stream, in.Base) starts, as
// catalog.Moves says: the segment must exist; a retry of the same kind
// changes only the key; another kind wraps catalog.ErrIntentConflict.
func (c *Catalog) PutIntent(ctx context.Context, in catalog.Intent) error {
	if err := tiers.ValidateStreamName(in.Stream); err != nil {
		return fmt.Errorf("pgcatalog: put intent: %w", err)
	}
	if err := catalog.CheckIntent(&in); err != nil {
		return fmt.Errorf("%w: %s/%d: %v", catalog.ErrInvalidIntent, in.Stream, in.Base, err)
	}
	in.LastError = catalog.TruncateMessage(in.LastError)
	in.Started = pgTime(in.Started)
	if in.Started.IsZero() {
		in.Started = c.stamp()
	}
	return c.write(ctx, "put_intent", func(ctx context.Context, tx pgx.Tx) error {
		// The segment's row is shared-locked so that its deletion waits.
		if _, ok, err := getSegment(ctx, tx, in.Stream, in.Base, "FOR SHARE"); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("pgcatalog: segment %s/%d: %w", in.Stream, in.Base, tiers.ErrSegmentNotFound)
		}
		old, ok, err := getIntent(ctx, tx, in.Stream, in.Base, "FOR UPDATE")
		if err != nil {
			return err
		}
		if ok {
			if old.Kind != in.Kind {
				return fmt.Errorf("%w: %s/%d has %q, not %q", catalog.ErrIntentConflict, in.Stream, in.Base, old.Kind, in.Kind)
			}
			_, err := tx.Exec(ctx, `UPDATE catalog_intents SET key = $3 WHERE stream = $1 AND base = $2`, in.Stream, int64(in.Base), in.Key)
			return err
		}
		// A concurrent insert of the same intent makes this one fail with a
		// unique violation, and the call is retried: it then sees that one.
		_, err = tx.Exec(ctx, `INSERT INTO catalog_intents (`+intentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			in.Stream, int64(in.Base), in.Kind, in.Key, in.Started, int32(in.Attempts), in.LastError)
		return err
	})
}

// getIntent reads one intent, locked as lock says; ok is false when none.
func getIntent(ctx context.Context, q querier, stream string, base uint64, lock string) (catalog.Intent, bool, error) {
	if base > maxOffset {
		return catalog.Intent{}, false, nil
	}
	var r intentRow
	err := q.QueryRow(ctx, `SELECT `+intentCols+` FROM catalog_intents WHERE stream = $1 AND base = $2 `+lock,
		stream, int64(base)).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.Intent{}, false, nil
	}
	if err != nil {
		return catalog.Intent{}, false, err
	}
	in, err := r.intent()
	return in, err == nil, err
}

// lockIntent locks the intent of a segment and reports whether it has one.
func lockIntent(ctx context.Context, tx pgx.Tx, stream string, base uint64) (bool, error) {
	_, ok, err := getIntent(ctx, tx, stream, base, "FOR UPDATE")
	return ok, err
}

// Intent returns segment (stream, base)'s intent; ok is false, with no
// error, when it has none.
func (c *Catalog) Intent(ctx context.Context, stream string, base uint64) (in catalog.Intent, ok bool, err error) {
	err = c.read(ctx, "intent", func(ctx context.Context, q *pgxpool.Pool) error {
		in, ok, err = getIntent(ctx, q, stream, base, "")
		return err
	})
	if err != nil {
		return catalog.Intent{}, false, err
	}
	return in, ok, nil
}

// Intents returns every intent, ordered by stream and base.
func (c *Catalog) Intents(ctx context.Context) ([]catalog.Intent, error) {
	var out []catalog.Intent
	err := c.read(ctx, "intents", func(ctx context.Context, q *pgxpool.Pool) error {
		rows, err := q.Query(ctx, `SELECT `+intentCols+` FROM catalog_intents ORDER BY stream, base`)
		if err != nil {
			return err
		}
		out, err = collect(rows, (*intentRow).dest, (*intentRow).intent)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ClearIntent forgets segment (stream, base)'s intent; its last failure
// stays. Clearing an absent intent is no error.
func (c *Catalog) ClearIntent(ctx context.Context, stream string, base uint64) error {
	if base > maxOffset {
		return c.read(ctx, "clear_intent", func(context.Context, *pgxpool.Pool) error { return nil })
	}
	return c.write(ctx, "clear_intent", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM catalog_intents WHERE stream = $1 AND base = $2`, stream, int64(base))
		return err
	})
}

// clearSegment forgets a segment's intent and last failure.
func clearSegment(ctx context.Context, tx pgx.Tx, stream string, base uint64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM catalog_intents WHERE stream = $1 AND base = $2`, stream, int64(base)); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM catalog_failures WHERE stream = $1 AND base = $2`, stream, int64(base))
	return err
}

// Tombstone starts the deletion by retention of segment (stream, base) and
// of every live segment between the watermark and it, oldest first, each
// justified, and moves the watermark past it, in one transaction holding
// the stream's row, as catalog.Moves says.
func (c *Catalog) Tombstone(ctx context.Context, stream string, base uint64, at time.Time, justify func(*tiers.SegmentMeta) error) ([]tiers.SegmentMeta, error) {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return nil, fmt.Errorf("pgcatalog: tombstone: %w", err)
	}
	at = pgTime(at)
	var done []tiers.SegmentMeta
	err := c.write(ctx, "tombstone", func(ctx context.Context, tx pgx.Tx) error {
		done = []tiers.SegmentMeta{}
		s, found, err := lockStream(ctx, tx, stream)
		if err != nil {
			return err
		}
		target, ok, err := getSegment(ctx, tx, stream, base, "FOR UPDATE")
		if err != nil {
			return err
		}
		if !found || !ok {
			return fmt.Errorf("pgcatalog: segment %s/%d: %w", stream, base, tiers.ErrSegmentNotFound)
		}
		if target.Last < s.RetainedFrom && !target.Tombstoned.IsZero() {
			return nil // tombstoned already
		}
		// Below the watermark segments are tombstoned or gone; the one
		// named may be a live one left there, tombstoned alone.
		from := min(s.RetainedFrom, target.Base)
		rows, err := tx.Query(ctx, `SELECT `+segCols+` FROM catalog_segments g
			WHERE g.stream = $1 AND g.base >= $2 AND g.base <= $3 ORDER BY g.base FOR UPDATE`,
			stream, int64(from), int64(target.Base))
		if err != nil {
			return err
		}
		segs, err := collect(rows, (*segRow).dest, (*segRow).meta)
		if err != nil {
			return err
		}
		expect := from
		for _, m := range segs {
			if m.Base >= s.RetainedFrom && m.Base != expect {
				return damaged("catalog_segments", segKey(stream, expect), fmt.Errorf("%w: offsets [%d, %d) of stream %s, above its retention watermark %d",
					catalog.ErrRetainedGap, expect, m.Base, stream, s.RetainedFrom))
			}
			expect = m.Last + 1
			if !m.Tombstoned.IsZero() || m.Base < s.RetainedFrom && m.Base != target.Base {
				continue
			}
			if err := justify(&m); err != nil {
				return fmt.Errorf("pgcatalog: tombstone %s/%d: %w", stream, m.Base, err)
			}
			m.Tombstoned = at
			if err := catalog.CheckSegment(&m); err != nil {
				return fmt.Errorf("%w: %s/%d: %v", catalog.ErrInvalidSegment, stream, m.Base, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE catalog_segments SET tombstoned = $3 WHERE stream = $1 AND base = $2`,
				stream, int64(m.Base), at); err != nil {
				return err
			}
			done = append(done, m)
		}
		if w := target.Last + 1; w > s.RetainedFrom {
			s.RetainedFrom = w
			return storeTotals(ctx, tx, &s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}

// CommitDelete forgets a tombstoned segment below the watermark, its
// intent and its last failure, and takes it out of its stream's totals, in
// one transaction; an already forgotten segment is no error.
func (c *Catalog) CommitDelete(ctx context.Context, stream string, base uint64) error {
	return c.write(ctx, "commit_delete", func(ctx context.Context, tx pgx.Tx) error {
		if base > maxOffset {
			return nil
		}
		s, found, err := lockStream(ctx, tx, stream)
		if err != nil {
			return err
		}
		m, ok, err := getSegment(ctx, tx, stream, base, "FOR UPDATE")
		if err != nil {
			return err
		}
		if found && ok {
			if m.Tombstoned.IsZero() || m.Last >= s.RetainedFrom {
				return fmt.Errorf("%w: %s/%d: not tombstoned below the retention watermark %d (tombstoned %v)",
					catalog.ErrNotTombstoned, stream, base, s.RetainedFrom, m.Tombstoned)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM catalog_segments WHERE stream = $1 AND base = $2`, stream, int64(base)); err != nil {
				return err
			}
			if err := subtract(&s, &m); err != nil {
				return err
			}
			if err := storeTotals(ctx, tx, &s); err != nil {
				return err
			}
		}
		return clearSegment(ctx, tx, stream, base)
	})
}

// RecordFailure notes a failed move of segment (stream, base): counted in
// its intent, if any, and as the segment's last failure.
func (c *Catalog) RecordFailure(ctx context.Context, stream string, base uint64, msg string) error {
	return c.recordFailure(ctx, "record_failure", stream, base, msg, false)
}

// RecordRefusal is RecordFailure for a destructive step nothing justified:
// the failure is marked Refused.
func (c *Catalog) RecordRefusal(ctx context.Context, stream string, base uint64, msg string) error {
	return c.recordFailure(ctx, "record_refusal", stream, base, msg, true)
}

func (c *Catalog) recordFailure(ctx context.Context, op, stream string, base uint64, msg string, refused bool) error {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return fmt.Errorf("pgcatalog: record failure: %w", err)
	}
	if base > maxOffset {
		return fmt.Errorf("pgcatalog: record failure: base %d past the PostgreSQL catalog's offsets", base)
	}
	msg = catalog.TruncateMessage(msg)
	return c.write(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		kind := ""
		if _, ok, err := getIntent(ctx, tx, stream, base, "FOR UPDATE"); err != nil {
			return err
		} else if ok {
			if err := tx.QueryRow(ctx, `UPDATE catalog_intents SET attempts = LEAST(attempts + 1, $3), last_error = $4
				WHERE stream = $1 AND base = $2 RETURNING kind`, stream, int64(base), int32(math.MaxInt32), msg).Scan(&kind); err != nil {
				return err
			}
		}
		// One statement: concurrent failures of one segment each count.
		_, err := tx.Exec(ctx, `INSERT INTO catalog_failures (`+failureCols+`) VALUES ($1, $2, $3, $4, $5, 1, $6)
			ON CONFLICT (stream, base) DO UPDATE SET kind = EXCLUDED.kind, error = EXCLUDED.error, at = EXCLUDED.at,
				attempts = LEAST(catalog_failures.attempts + 1, $7), refused = EXCLUDED.refused`,
			stream, int64(base), kind, msg, c.stamp(), refused, int32(math.MaxInt32))
		return err
	})
}

// ClearFailure forgets segment (stream, base)'s last failure; its intent
// stays. Clearing an absent failure is no error.
func (c *Catalog) ClearFailure(ctx context.Context, stream string, base uint64) error {
	if base > maxOffset {
		return c.read(ctx, "clear_failure", func(context.Context, *pgxpool.Pool) error { return nil })
	}
	return c.write(ctx, "clear_failure", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM catalog_failures WHERE stream = $1 AND base = $2`, stream, int64(base))
		return err
	})
}

// LastError returns segment (stream, base)'s last failure; ok is false
// when it has none.
func (c *Catalog) LastError(ctx context.Context, stream string, base uint64) (f catalog.Failure, ok bool, err error) {
	err = c.read(ctx, "last_error", func(ctx context.Context, q *pgxpool.Pool) error {
		if base > maxOffset {
			return nil
		}
		var r failureRow
		err := q.QueryRow(ctx, `SELECT `+failureCols+` FROM catalog_failures WHERE stream = $1 AND base = $2`,
			stream, int64(base)).Scan(r.dest()...)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		f, err = r.failure()
		ok = err == nil
		return err
	})
	if err != nil {
		return catalog.Failure{}, false, err
	}
	return f, ok, nil
}

// Failures returns every last failure, ordered by stream and base.
func (c *Catalog) Failures(ctx context.Context) ([]catalog.Failure, error) {
	var out []catalog.Failure
	err := c.read(ctx, "failures", func(ctx context.Context, q *pgxpool.Pool) error {
		rows, err := q.Query(ctx, `SELECT `+failureCols+` FROM catalog_failures ORDER BY stream, base`)
		if err != nil {
			return err
		}
		out, err = collect(rows, (*failureRow).dest, (*failureRow).failure)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
