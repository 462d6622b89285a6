package catalog

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tierd/tierd/tiers"
)

// ctxCheckEvery is how many values a scan decodes between context checks.
const ctxCheckEvery = 1024

// ensureStream records the stream if it is new, stamping CreatedAt; it is a
// no-op for a known stream. The name must pass tiers.ValidateStreamName.
func (c *Catalog) ensureStream(ctx context.Context, name string) error {
	if err := tiers.ValidateStreamName(name); err != nil {
		return fmt.Errorf("catalog: ensure stream: %w", err)
	}
	return c.update(ctx, "ensure_stream", func(tx *bolt.Tx) error {
		_, _, err := c.ensureStreamTx(tx, name)
		return err
	})
}

// Streams lists every stream ordered by name, with its durable segment
// totals.
func (c *Catalog) Streams(ctx context.Context) ([]StreamInfo, error) {
	out := []StreamInfo{}
	err := c.view(ctx, "streams", func(tx *bolt.Tx) error {
		cur := tx.Bucket([]byte(bucketStreams)).Cursor()
		n := 0
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			name := string(k)
			if err := tiers.ValidateStreamName(name); err != nil {
				return c.corrupt(fmt.Errorf("stream key: %w", err))
			}
			if v == nil {
				return c.corrupt(fmt.Errorf("stream %q is a bucket, not a value", name))
			}
			s, err := decodeStream(name, v, false)
			if err != nil {
				return c.corrupt(fmt.Errorf("stream %q: %w", name, err))
			}
			out = append(out, s.info(name))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *streamValue) info(name string) StreamInfo {
	return StreamInfo{
		Name:         name,
		CreatedAt:    s.CreatedAt,
		Segments:     int(s.Segments),
		Records:      s.Records,
		Bytes:        int64(s.Bytes),
		NextOffset:   s.NextOffset,
		RetainedFrom: s.RetainedFrom,
	}
}

// loadStream reads a stream's value; ok is false for an unknown stream.
func (c *Catalog) loadStream(tx *bolt.Tx, name string) (s streamValue, ok bool, err error) {
	v := tx.Bucket([]byte(bucketStreams)).Get([]byte(name))
	if v == nil {
		return streamValue{}, false, nil
	}
	s, err = decodeStream(name, v, false)
	if err != nil {
		return streamValue{}, false, c.corrupt(fmt.Errorf("stream %q: %w", name, err))
	}
	return s, true, nil
}

// storeStream writes a stream's value.
func storeStream(tx *bolt.Tx, name string, s *streamValue) error {
	return tx.Bucket([]byte(bucketStreams)).Put([]byte(name), encodeStream(name, s))
}

// ensureStreamTx returns the stream's value and segment bucket, creating both
// for a new stream.
func (c *Catalog) ensureStreamTx(tx *bolt.Tx, name string) (streamValue, *bolt.Bucket, error) {
	s, ok, err := c.loadStream(tx, name)
	if err != nil {
		return streamValue{}, nil, err
	}
	if !ok {
		s = streamValue{CreatedAt: c.now().Round(0)}
		if err := storeStream(tx, name, &s); err != nil {
			return streamValue{}, nil, err
		}
	}
	segs, err := tx.Bucket([]byte(bucketSegments)).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return streamValue{}, nil, err
	}
	return s, segs, nil
}

// segmentBucket returns a known stream's segment bucket, or an error wrapping
// tiers.ErrStreamNotFound.
func (c *Catalog) segmentBucket(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	b := tx.Bucket([]byte(bucketSegments)).Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("catalog: stream %q: %w", name, tiers.ErrStreamNotFound)
	}
	return b, nil
}
