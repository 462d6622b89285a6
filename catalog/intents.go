package catalog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

// Kinds of move intent the migrator records. The catalog stores any
// non-empty kind; these are the ones tierd writes, named here so that the
// migrator and the recovery code at start-up spell them alike.
const (
	// IntentUpload: copying a warm segment to its cold object (Key).
	IntentUpload = "upload"
	// IntentDropWarm: removing the warm file once the cold copy is committed.
	IntentDropWarm = "drop_warm"
	// IntentDeleteWarm: deleting by retention a segment that lives only warm.
	IntentDeleteWarm = "delete_warm"
	// IntentDeleteCold: deleting by retention a tombstoned cold object.
	IntentDeleteCold = "delete_cold"
)

// Bounds on the strings an intent or a failure carries, so that a runaway
// error message cannot bloat the catalog and a decoder never trusts a length
// beyond them.
const (
	maxKindBytes  = 64
	maxKeyBytes   = 4096
	maxErrorBytes = 4096
)

// Errors of the intent calls; check them with errors.Is.
var (
	// ErrIntentConflict refuses an intent while the segment has another one
	// of a different kind: one move at a time per segment, so recovery at
	// start-up never has to untangle two.
	ErrIntentConflict = errors.New("catalog: segment already has a move intent of another kind")
	// ErrNoIntent refuses CommitMove for a segment without an intent: the
	// intent may have been rolled back, and with it the destination.
	ErrNoIntent = errors.New("catalog: segment has no move intent")
	// ErrInvalidIntent rejects an intent with an empty or oversized kind or
	// an oversized key.
	ErrInvalidIntent = errors.New("catalog: invalid intent")
)

// Intent is a move of one segment in progress (docs/architecture.md,
// "Moving without losing or doubling"; mover/):
// recorded before the destination is written and cleared once the move is
// committed or rolled back, so that the migrator at start-up finds every
// move a crash interrupted.
type Intent struct {
	Stream string
	Base   uint64
	// Kind says what the move does: one of the Intent* constants.
	Kind string
	// Key is the destination (an object key or a path), so that recovery
	// can verify it or remove a partial copy.
	Key string
	// Started is when the move was first recorded; PutIntent stamps it
	// when zero.
	Started time.Time
	// Attempts counts failures recorded by RecordFailure.
	Attempts int
	// LastError is the most recent failure's message.
	LastError string
}

// Failure is the last failure of a move of one segment, kept for explain
// until a later move of the segment succeeds.
type Failure struct {
	Stream string
	Base   uint64
	// Kind is the kind of the intent that failed, empty if none was
	// recorded.
	Kind string
	// Err is the failure's message.
	Err string
	// At is when it was recorded.
	At time.Time
	// Attempts counts failures since the segment's last success.
	Attempts int
	// Refused marks a destructive step (a deletion by retention) that was
	// refused because the catalog or the configuration did not justify it:
	// verify reports it.
	Refused bool
}

// PutIntent records in intent that a move of its segment starts. The segment
// must exist (tiers.ErrSegmentNotFound otherwise). If the segment already has
// an intent of the same kind — a retry, or recovery resuming it — PutIntent
// updates only its Key and keeps Started, Attempts and LastError, so a retry
// does not erase the history explain shows; an intent of another kind fails
// with ErrIntentConflict.
func (c *Catalog) PutIntent(ctx context.Context, in Intent) error {
	if err := tiers.ValidateStreamName(in.Stream); err != nil {
		return fmt.Errorf("catalog: put intent: %w", err)
	}
	if err := checkIntent(&in); err != nil {
		return fmt.Errorf("%w: %s/%d: %v", ErrInvalidIntent, in.Stream, in.Base, err)
	}
	in.LastError = truncate(in.LastError, maxErrorBytes)
	if in.Started.IsZero() {
		in.Started = c.now()
	}
	return c.update(ctx, "put_intent", func(tx *bolt.Tx) error {
		if _, err := c.getTx(tx, in.Stream, in.Base); err != nil {
			return err
		}
		old, ok, err := c.intentTx(tx, in.Stream, in.Base)
		if err != nil {
			return err
		}
		if ok {
			if old.Kind != in.Kind {
				return fmt.Errorf("%w: %s/%d has %q, not %q", ErrIntentConflict, in.Stream, in.Base, old.Kind, in.Kind)
			}
			old.Key = in.Key
			in = old
		}
		return putNested(tx, bucketIntents, in.Stream, in.Base, encodeIntent(&in))
	})
}

// checkIntent enforces what every stored intent satisfies.
func checkIntent(in *Intent) error {
	switch {
	case in.Kind == "" || len(in.Kind) > maxKindBytes:
		return fmt.Errorf("kind %q must be 1 to %d bytes", in.Kind, maxKindBytes)
	case len(in.Key) > maxKeyBytes:
		return fmt.Errorf("key is %d bytes, max %d", len(in.Key), maxKeyBytes)
	case in.Attempts < 0 || in.Attempts > math.MaxInt32:
		return fmt.Errorf("attempts %d out of range", in.Attempts)
	}
	return nil
}

// Intent returns the intent of segment (stream, base); ok is false when it
// has none.
func (c *Catalog) Intent(ctx context.Context, stream string, base uint64) (in Intent, ok bool, err error) {
	err = c.view(ctx, "intent", func(tx *bolt.Tx) error {
		in, ok, err = c.intentTx(tx, stream, base)
		return err
	})
	return in, ok, err
}

// Intents returns every recorded intent, ordered by stream and base, for the
// migrator to finish or roll back at start-up.
func (c *Catalog) Intents(ctx context.Context) ([]Intent, error) {
	out := []Intent{}
	err := c.view(ctx, "intents", func(tx *bolt.Tx) error {
		return c.forNested(ctx, tx, bucketIntents, func(stream string, base uint64, v []byte) error {
			in, err := decodeIntent(stream, base, v, false)
			if err != nil {
				return c.corrupt(fmt.Errorf("intent %s/%d: %w", stream, base, err))
			}
			out = append(out, in)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ClearIntent forgets the intent of segment (stream, base), after a rollback
// or once the source of a committed move is gone. It leaves the segment's
// last failure alone (a rollback is no success). Clearing an absent intent
// is not an error, so a retrying caller need not check first.
func (c *Catalog) ClearIntent(ctx context.Context, stream string, base uint64) error {
	return c.update(ctx, "clear_intent", func(tx *bolt.Tx) error {
		return deleteNested(tx, bucketIntents, stream, base)
	})
}

// CommitMove is the commit step of a move: in one transaction it applies fn
// to the segment as UpdateSegment does, clears the segment's intent and
// forgets its last failure. Either all of that happens or, when fn or a check
// fails, none of it. A segment without an intent fails with ErrNoIntent
// (use UpdateSegment for changes that are not moves).
func (c *Catalog) CommitMove(ctx context.Context, stream string, base uint64, fn func(*tiers.SegmentMeta) error) (tiers.SegmentMeta, error) {
	return c.updateSegment(ctx, "commit_move", stream, base, true, fn)
}

// CommitDelete is the last step of a deletion by retention: in one
// transaction it forgets segment (stream, base), its intent and its last
// failure. The segment must be tombstoned and below its stream's retention
// watermark (ErrNotTombstoned otherwise: nothing changes), so that a
// deletion never leaves retained offsets without a segment. An already
// forgotten segment is not an error (its intent and failure are still
// cleared), so that recovery can repeat it.
func (c *Catalog) CommitDelete(ctx context.Context, stream string, base uint64) error {
	return c.update(ctx, "commit_delete", func(tx *bolt.Tx) error {
		if err := c.deleteTx(tx, stream, base, true); err != nil && !errors.Is(err, tiers.ErrSegmentNotFound) {
			return err
		}
		return clearSegmentTx(tx, stream, base)
	})
}

// RecordFailure notes that a move of segment (stream, base) failed with
// message errMsg: it increments the intent's Attempts and sets its LastError
// when there is an intent, and records the segment's last failure (see
// LastError) either way. Messages are cut to 4 KiB.
func (c *Catalog) RecordFailure(ctx context.Context, stream string, base uint64, errMsg string) error {
	return c.recordFailure(ctx, stream, base, errMsg, false)
}

// RecordRefusal is RecordFailure for a destructive step that was refused
// because nothing justified it: the failure is marked Refused, so that
// verify reports it until a later action on the segment succeeds.
func (c *Catalog) RecordRefusal(ctx context.Context, stream string, base uint64, errMsg string) error {
	return c.recordFailure(ctx, stream, base, errMsg, true)
}

func (c *Catalog) recordFailure(ctx context.Context, stream string, base uint64, errMsg string, refused bool) error {
	if err := tiers.ValidateStreamName(stream); err != nil {
		return fmt.Errorf("catalog: record failure: %w", err)
	}
	errMsg = truncate(errMsg, maxErrorBytes)
	return c.update(ctx, "record_failure", func(tx *bolt.Tx) error {
		f := Failure{Stream: stream, Base: base, Err: errMsg, At: c.now(), Refused: refused}
		in, ok, err := c.intentTx(tx, stream, base)
		if err != nil {
			return err
		}
		if ok {
			in.Attempts = min(in.Attempts+1, math.MaxInt32)
			in.LastError = errMsg
			if err := putNested(tx, bucketIntents, stream, base, encodeIntent(&in)); err != nil {
				return err
			}
			f.Kind = in.Kind
		}
		old, had, err := c.failureTx(tx, stream, base)
		if err != nil {
			return err
		}
		f.Attempts = 1
		if had {
			f.Attempts = min(old.Attempts+1, math.MaxInt32)
		}
		return putNested(tx, bucketErrors, stream, base, encodeFailure(&f))
	})
}

// ClearFailure forgets the last failure of segment (stream, base), once a
// later action on it succeeded; its intent, if any, stays. Clearing an
// absent failure is not an error.
func (c *Catalog) ClearFailure(ctx context.Context, stream string, base uint64) error {
	return c.update(ctx, "clear_failure", func(tx *bolt.Tx) error {
		return deleteNested(tx, bucketErrors, stream, base)
	})
}

// Failures returns every recorded failure, ordered by stream and base.
func (c *Catalog) Failures(ctx context.Context) ([]Failure, error) {
	out := []Failure{}
	err := c.view(ctx, "failures", func(tx *bolt.Tx) error {
		return c.forNested(ctx, tx, bucketErrors, func(stream string, base uint64, v []byte) error {
			f, err := decodeFailure(stream, base, v, false)
			if err != nil {
				return c.corrupt(fmt.Errorf("last error %s/%d: %w", stream, base, err))
			}
			out = append(out, f)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LastError returns the last failure of a move of segment (stream, base)
// since its last success; ok is false when there is none.
func (c *Catalog) LastError(ctx context.Context, stream string, base uint64) (f Failure, ok bool, err error) {
	err = c.view(ctx, "last_error", func(tx *bolt.Tx) error {
		f, ok, err = c.failureTx(tx, stream, base)
		return err
	})
	return f, ok, err
}

// intentTx reads one intent inside tx.
func (c *Catalog) intentTx(tx *bolt.Tx, stream string, base uint64) (Intent, bool, error) {
	v := getNested(tx, bucketIntents, stream, base)
	if v == nil {
		return Intent{}, false, nil
	}
	in, err := decodeIntent(stream, base, v, false)
	if err != nil {
		return Intent{}, false, c.corrupt(fmt.Errorf("intent %s/%d: %w", stream, base, err))
	}
	return in, true, nil
}

// failureTx reads one failure record inside tx.
func (c *Catalog) failureTx(tx *bolt.Tx, stream string, base uint64) (Failure, bool, error) {
	v := getNested(tx, bucketErrors, stream, base)
	if v == nil {
		return Failure{}, false, nil
	}
	f, err := decodeFailure(stream, base, v, false)
	if err != nil {
		return Failure{}, false, c.corrupt(fmt.Errorf("last error %s/%d: %w", stream, base, err))
	}
	return f, true, nil
}

// clearSegmentTx forgets the intent and the last failure of a segment.
func clearSegmentTx(tx *bolt.Tx, stream string, base uint64) error {
	if err := deleteNested(tx, bucketErrors, stream, base); err != nil {
		return err
	}
	return deleteNested(tx, bucketIntents, stream, base)
}

// getNested returns the value at top/<stream>/<base>, nil if absent.
func getNested(tx *bolt.Tx, top, stream string, base uint64) []byte {
	b := tx.Bucket([]byte(top)).Bucket([]byte(stream))
	if b == nil {
		return nil
	}
	return b.Get(segmentKey(base))
}

// putNested stores v at top/<stream>/<base>.
func putNested(tx *bolt.Tx, top, stream string, base uint64, v []byte) error {
	b, err := tx.Bucket([]byte(top)).CreateBucketIfNotExists([]byte(stream))
	if err != nil {
		return err
	}
	return b.Put(segmentKey(base), v)
}

// deleteNested removes top/<stream>/<base>, and the stream's bucket once it
// is empty, so that these buckets hold only streams with something pending.
func deleteNested(tx *bolt.Tx, top, stream string, base uint64) error {
	parent := tx.Bucket([]byte(top))
	b := parent.Bucket([]byte(stream))
	if b == nil {
		return nil
	}
	if err := b.Delete(segmentKey(base)); err != nil {
		return err
	}
	if k, _ := b.Cursor().First(); k == nil {
		return parent.DeleteBucket([]byte(stream))
	}
	return nil
}

// forNested calls fn for every value of top, by stream and base.
func (c *Catalog) forNested(ctx context.Context, tx *bolt.Tx, top string, fn func(stream string, base uint64, v []byte) error) error {
	parent := tx.Bucket([]byte(top))
	var streams []string
	if err := parent.ForEachBucket(func(k []byte) error {
		streams = append(streams, string(k))
		return nil
	}); err != nil {
		return err
	}
	sort.Strings(streams) // bbolt's order already; cheap insurance
	n := 0
	for _, stream := range streams {
		b := parent.Bucket([]byte(stream))
		cur := b.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			base, err := keyBase(k)
			if err == nil && v == nil {
				err = errors.New("a bucket where a value belongs")
			}
			if err != nil {
				return c.corrupt(fmt.Errorf("%s/%s: %w", top, stream, err))
			}
			if err := fn(stream, base, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
