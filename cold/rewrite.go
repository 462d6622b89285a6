package cold

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tierd/tierd/cold/objstore"
	"github.com/tierd/tierd/tiers"
)

// Rewrite converts the segment's object to the current Parquet format when
// it is older (format 1.x: ts in nanoseconds, every value in an unannotated
// BLOB), so that it can join the stream's Iceberg table; an object already
// in the current major format is left as it is. It reports whether it
// rewrote.
//
// The records are read from the old object with every check a read makes
// (its footer against m, each checksum block, the digest), written into
// the spool in the current format and verified there, then put at
// ObjectKey(m) and verified again in the store, exactly as an upload. When
// the old object is at ObjectKey(m) the put replaces it atomically (a
// crash leaves the old object or the new one, both the segment); when it
// is at the legacy key, it is deleted once the new object is verified (a
// crash between leaves both, and reads prefer the new one; Delete removes
// both).
//
// The caller serialises it with the segment's other moves (the mover's
// lock): a rewrite racing a deletion could put back a deleted object.
func (t *Tier) Rewrite(ctx context.Context, m tiers.SegmentMeta) (bool, error) {
	r, _, key, err := t.openObject(ctx, m)
	if err != nil {
		return false, err
	}
	if err := sameSegment(r.Meta(), m); err != nil {
		return false, fmt.Errorf("cold: rewrite %s: %w", key, &tiers.CorruptionError{Path: key, Offset: -1, Err: err})
	}
	major, _, _ := strings.Cut(r.FormatVersion(), ".")
	if major != "1" {
		return false, nil
	}
	records := func(yield func(tiers.Record, error) bool) {
		for rec, err := range r.Scan(ctx, tiers.AllRecords()) {
			if !yield(rec, err) || err != nil {
				return
			}
		}
	}
	newKey := ObjectKey(m)
	if _, err := t.put(ctx, newKey, m, records); err != nil {
		return false, fmt.Errorf("cold: rewrite %s as the current format: %w", key, err)
	}
	t.cache.drop(key)
	if key != newKey {
		if err := t.opts.Bucket.Delete(ctx, key); err != nil && !errors.Is(err, objstore.ErrNotFound) {
			return true, storeErr("delete", key, err)
		}
	}
	t.opts.Logger.Info("cold object rewritten in the current format", "key", newKey, "from", key)
	return true, nil
}
