package cold

import (
	"context"
	"fmt"
	"iter"
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
	// Legacy is true for a segment object at LegacyObjectKey of a name
	// ObjectKey now encodes: written before issue 14, still served.
	Legacy bool
}

// Objects lists the store's objects, those of one stream when stream is
// not empty, in key order. Objects that are not segments (Segment false)
// are listed too: verify reports them. A stream's objects are under two
// prefixes when its name is encoded (EscapeStream): the encoded one, then
// the legacy raw one ('%' sorts before every character a name starts
// with, so this is key order too).
func (t *Tier) Objects(ctx context.Context, stream string) iter.Seq2[Object, error] {
	return func(yield func(Object, error) bool) {
		prefixes := []string{""}
		if stream != "" {
			prefixes = []string{"stream=" + EscapeStream(stream) + "/"}
			if needsEscape(stream) {
				prefixes = append(prefixes, "stream="+stream+"/")
			}
		}
		for _, prefix := range prefixes {
			for a, err := range t.opts.Bucket.List(ctx, prefix) {
				if err != nil {
					yield(Object{}, storeErr("list", prefix, err))
					return
				}
				o := Object{Key: a.Key, Size: a.Size, ModTime: a.ModTime}
				if k, ok := parseKey(a.Key); ok {
					o.Segment, o.Stream, o.Base, o.Last, o.Legacy = true, k.stream, k.base, k.last, k.legacy
				}
				if !yield(o, nil) {
					return
				}
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
	if !IsObjectKeyOf(key, m) {
		return tiers.SegmentMeta{}, fmt.Errorf("cold: object %s holds segment %s/%d, which belongs at %s", key, m.Stream, m.Base, ObjectKey(m))
	}
	m.ColdBytes = size
	m.Placements = tiers.Of(tiers.Cold)
	return m, nil
}
