package cold

import (
	"context"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/tierd/tierd/tiers"
)

// Object is one object in the cold store, as a listing shows it.
type Object struct {
	Key  string
	Size int64
	// ModTime is when the object was last written, as the store reports
	// it: garbage collection leaves young objects alone, since an upload
	// may be on its way to a commit.
	ModTime time.Time
	// Segment is true when Key has the form of ObjectKey; Stream, Base and
	// Last are then what the key names.
	Segment    bool
	Stream     string
	Base, Last uint64
}

// ParseObjectKey reads the stream, base and last offsets out of a key of
// the form ObjectKey writes; ok is false for any other key.
func ParseObjectKey(key string) (stream string, base, last uint64, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[1], "date=") {
		return "", 0, 0, false
	}
	stream, ok = strings.CutPrefix(parts[0], "stream=")
	if !ok || tiers.ValidateStreamName(stream) != nil {
		return "", 0, 0, false
	}
	name, ok := strings.CutSuffix(parts[2], ".parquet")
	b, l, found := strings.Cut(name, "-")
	if !ok || !found || len(b) != 20 || len(l) != 20 {
		return "", 0, 0, false
	}
	var err1, err2 error
	base, err1 = strconv.ParseUint(b, 10, 64)
	last, err2 = strconv.ParseUint(l, 10, 64)
	if err1 != nil || err2 != nil || last < base {
		return "", 0, 0, false
	}
	return stream, base, last, true
}

// Objects lists the store's objects, those of one stream when stream is
// not empty, in key order. Objects that are not segments (Segment false)
// are listed too: verify reports them.
func (t *Tier) Objects(ctx context.Context, stream string) iter.Seq2[Object, error] {
	return func(yield func(Object, error) bool) {
		prefix := ""
		if stream != "" {
			prefix = "stream=" + stream + "/"
		}
		for a, err := range t.opts.Bucket.List(ctx, prefix) {
			if err != nil {
				yield(Object{}, storeErr("list", prefix, err))
				return
			}
			o := Object{Key: a.Key, Size: a.Size, ModTime: a.ModTime}
			o.Stream, o.Base, o.Last, o.Segment = ParseObjectKey(a.Key)
			if !yield(o, nil) {
				return
			}
		}
	}
}

// ObjectMeta reads the segment metadata in an object's footer: what a
// catalog rebuild needs. ColdBytes is the object's size; Placements is
// Cold; SealedAt is zero for files written before format 1.1.
func (t *Tier) ObjectMeta(ctx context.Context, key string) (tiers.SegmentMeta, error) {
	r, size, err := t.open(ctx, key)
	if err != nil {
		return tiers.SegmentMeta{}, err
	}
	m := r.Meta()
	if want := ObjectKey(m); want != key {
		return tiers.SegmentMeta{}, fmt.Errorf("cold: object %s holds segment %s/%d, which belongs at %s", key, m.Stream, m.Base, want)
	}
	m.ColdBytes = size
	m.Placements = tiers.Of(tiers.Cold)
	return m, nil
}
