package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

// Open decodes every value of the catalog before it serves anything
// (checkTx), so that damage anywhere is refused at start-up rather than met
// by a read, a plan or a deletion later; and it upgrades a catalog of an
// older schema by rewriting every value in its checksummed version
// (upgradeTx), in one transaction, so that no value is left unprotected.

// topBuckets are the catalog's top-level buckets, in bbolt's key order.
var topBuckets = []string{bucketErrors, bucketIntents, bucketMeta, bucketSegments, bucketStreams}

// checkTx decodes every value and checks what the values say about each
// other: the layout (the five buckets, nothing else; values and nested
// buckets where each belongs), every checksum and plausibility rule, that
// every stream has a value and a segments bucket, that a stream's segments
// do not overlap, sum to its totals and stay below its next offset. legacy
// accepts the value versions of older schemas. It returns the streams'
// values, by name.
func (c *Catalog) checkTx(tx *bolt.Tx, legacy bool) (map[string]streamValue, error) {
	if err := c.checkTopTx(tx); err != nil {
		return nil, err
	}
	meta := tx.Bucket([]byte(bucketMeta))
	if err := meta.ForEach(func(k, v []byte) error {
		if string(k) != keySchema || v == nil {
			return c.corrupt(fmt.Errorf("meta holds an unknown key %q", k))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	streams := map[string]streamValue{}
	if err := tx.Bucket([]byte(bucketStreams)).ForEach(func(k, v []byte) error {
		name := string(k)
		if err := tiers.ValidateStreamName(name); err != nil {
			return c.corrupt(fmt.Errorf("stream key: %w", err))
		}
		if v == nil {
			return c.corrupt(fmt.Errorf("stream %q is a bucket, not a value", name))
		}
		s, err := decodeStream(name, v, legacy)
		if err != nil {
			return c.corrupt(fmt.Errorf("stream %q: %w", name, err))
		}
		streams[name] = s
		return nil
	}); err != nil {
		return nil, err
	}
	segs := tx.Bucket([]byte(bucketSegments))
	seen := map[string]bool{}
	if err := segs.ForEach(func(k, v []byte) error {
		name := string(k)
		s, ok := streams[name]
		if v != nil || !ok {
			return c.corrupt(fmt.Errorf("segments/%q is not the bucket of a known stream", k))
		}
		seen[name] = true
		return c.checkSegmentsTx(segs.Bucket(k), name, s, legacy)
	}); err != nil {
		return nil, err
	}
	if len(seen) != len(streams) {
		for name := range streams {
			if !seen[name] {
				return nil, c.corrupt(fmt.Errorf("stream %q has no segments bucket", name))
			}
		}
	}
	for _, top := range []string{bucketIntents, bucketErrors} {
		parent := tx.Bucket([]byte(top))
		if err := parent.ForEach(func(k, v []byte) error {
			name := string(k)
			if _, ok := streams[name]; v != nil || !ok {
				return c.corrupt(fmt.Errorf("%s/%q is not the bucket of a known stream", top, k))
			}
			return parent.Bucket(k).ForEach(func(bk, bv []byte) error {
				base, err := keyBase(bk)
				if err == nil && bv == nil {
					err = errors.New("a bucket where a value belongs")
				}
				if err == nil && top == bucketIntents {
					_, err = decodeIntent(name, base, bv, legacy)
				} else if err == nil {
					_, err = decodeFailure(name, base, bv, legacy)
				}
				if err != nil {
					return c.corrupt(fmt.Errorf("%s/%s/%x: %w", top, name, bk, err))
				}
				return nil
			})
		}); err != nil {
			return nil, err
		}
	}
	return streams, nil
}

// checkTopTx checks that the top level holds the five buckets and nothing
// else: a damaged bucket name would otherwise read as an empty catalog.
func (c *Catalog) checkTopTx(tx *bolt.Tx) error {
	var names []string
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, string(name))
		return nil
	}); err != nil {
		return err
	}
	if !slices.Equal(names, topBuckets) {
		return c.corrupt(fmt.Errorf("top-level buckets %q, want %q", names, topBuckets))
	}
	// bbolt's ForEach on the root lists keys; each must be a bucket.
	cur := tx.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if v != nil {
			return c.corrupt(fmt.Errorf("top-level key %q is a value, not a bucket", k))
		}
	}
	return nil
}

// checkSegmentsTx checks one stream's segments against each other and
// against its stream value s.
func (c *Catalog) checkSegmentsTx(b *bolt.Bucket, name string, s streamValue, legacy bool) error {
	var n, records, bytes uint64
	var prev *tiers.SegmentMeta
	cur := b.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		base, err := keyBase(k)
		if err == nil && v == nil {
			err = errors.New("a bucket where a value belongs")
		}
		if err != nil {
			return c.corrupt(fmt.Errorf("segments/%s/%x: %w", name, k, err))
		}
		m, err := decodeSegment(name, base, v, legacy)
		if err != nil {
			return c.corrupt(fmt.Errorf("segment %s/%d: %w", name, base, err))
		}
		if prev != nil && m.Base <= prev.Last {
			return c.corrupt(fmt.Errorf("segment %s/%d overlaps [%d, %d]", name, m.Base, prev.Base, prev.Last))
		}
		if m.Last >= s.NextOffset {
			return c.corrupt(fmt.Errorf("segment %s/%d reaches offset %d, past the stream's next offset %d", name, m.Base, m.Last, s.NextOffset))
		}
		n++
		records += m.Count
		bytes += uint64(m.Bytes)
		prev = &m
	}
	if n != s.Segments || records != s.Records || bytes != s.Bytes {
		return c.corrupt(fmt.Errorf("stream %q totals (%d segments, %d records, %d bytes) differ from its segments' (%d, %d, %d)", name, s.Segments, s.Records, s.Bytes, n, records, bytes))
	}
	return nil
}

// upgradeTx rewrites a schema 1 or 2 catalog as schema 3: every value in its
// checksummed version, each stream with its retention watermark (the base
// of its first live segment: the segments below it are tombstoned; its next
// offset when none is live), segments without a seal time stamped now
// (their age restarts: retention comes late, never early). Nothing is
// changed unless all of it checks.
func (c *Catalog) upgradeTx(tx *bolt.Tx, from uint64) error {
	for _, name := range []string{bucketIntents, bucketErrors} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return err
		}
	}
	streams, err := c.checkTx(tx, true)
	if err != nil {
		return err
	}
	now := c.now().Round(0).UTC()
	segsTop := tx.Bucket([]byte(bucketSegments))
	for name, s := range streams {
		b := segsTop.Bucket([]byte(name))
		type kv struct{ k, v []byte }
		var all []kv
		cur := b.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			all = append(all, kv{bytes.Clone(k), bytes.Clone(v)})
		}
		watermark, live := s.NextOffset, false
		for _, e := range all {
			base, _ := keyBase(e.k)
			m, err := decodeSegment(name, base, e.v, true)
			if err != nil {
				return c.corrupt(fmt.Errorf("segment %s/%d: %w", name, base, err))
			}
			if m.SealedAt.IsZero() {
				m.SealedAt = now
				if !m.Tombstoned.IsZero() && m.Tombstoned.Before(now) {
					m.SealedAt = m.Tombstoned
				}
			}
			if !live && m.Tombstoned.IsZero() {
				watermark, live = m.Base, true
			}
			if err := checkSegment(&m); err != nil {
				return c.corrupt(fmt.Errorf("segment %s/%d: %w", name, base, err))
			}
			if err := b.Put(e.k, encodeSegment(&m)); err != nil {
				return err
			}
		}
		if s.CreatedAt.IsZero() || !plausibleTime(s.CreatedAt) {
			s.CreatedAt = now
		}
		s.RetainedFrom = watermark
		if err := storeStream(tx, name, &s); err != nil {
			return err
		}
	}
	if err := rewriteNested(tx, bucketIntents, func(stream string, base uint64, v []byte) ([]byte, error) {
		in, err := decodeIntent(stream, base, v, true)
		if err != nil {
			return nil, c.corrupt(fmt.Errorf("intent %s/%d: %w", stream, base, err))
		}
		if in.Started.IsZero() || !plausibleTime(in.Started) {
			in.Started = now
		}
		return encodeIntent(&in), nil
	}); err != nil {
		return err
	}
	if err := rewriteNested(tx, bucketErrors, func(stream string, base uint64, v []byte) ([]byte, error) {
		f, err := decodeFailure(stream, base, v, true)
		if err != nil {
			return nil, c.corrupt(fmt.Errorf("last error %s/%d: %w", stream, base, err))
		}
		if f.At.IsZero() || !plausibleTime(f.At) {
			f.At = now
		}
		return encodeFailure(&f), nil
	}); err != nil {
		return err
	}
	if err := tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), encodeSchema()); err != nil {
		return err
	}
	if _, err := c.checkTx(tx, false); err != nil {
		return fmt.Errorf("catalog: upgrade from schema %d produced a catalog that does not check: %w", from, err)
	}
	return nil
}

// rewriteNested replaces every value top/<stream>/<base> with what fn makes
// of it. The values are read first and written after, as bbolt cursors do
// not survive writes to their bucket.
func rewriteNested(tx *bolt.Tx, top string, fn func(stream string, base uint64, v []byte) ([]byte, error)) error {
	parent := tx.Bucket([]byte(top))
	var streams [][]byte
	if err := parent.ForEachBucket(func(k []byte) error {
		streams = append(streams, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, name := range streams {
		b := parent.Bucket(name)
		type kv struct{ k, v []byte }
		var all []kv
		if err := b.ForEach(func(k, v []byte) error {
			all = append(all, kv{bytes.Clone(k), bytes.Clone(v)})
			return nil
		}); err != nil {
			return err
		}
		for _, e := range all {
			base, err := keyBase(e.k)
			if err != nil {
				return err
			}
			enc, err := fn(string(name), base, e.v)
			if err != nil {
				return err
			}
			if err := b.Put(e.k, enc); err != nil {
				return err
			}
		}
	}
	return nil
}
