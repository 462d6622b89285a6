package catalog

import "github.com/tierd/tierd/tiers"

// The rules below are the contract's checks, exported so that a second
// implementation of Store (catalog/pgcatalog) enforces exactly the same
// ones instead of a copy that drifts: each rule keeps one owner.

// Bounds on the strings an intent or a failure carries (see PutIntent and
// RecordFailure).
const (
	MaxKindBytes  = maxKindBytes
	MaxKeyBytes   = maxKeyBytes
	MaxErrorBytes = maxErrorBytes
)

// CheckSegment reports why m breaks an invariant every stored segment keeps
// (dense offsets, Last < MaxUint64, Bytes and ColdBytes >= 0, ColdBytes > 0
// only with a cold placement, MinTS <= MaxTS, warm or cold and nothing else
// among the placements, SealedAt set and plausible, a Tombstoned time not
// before it), or returns nil. PutSegment refuses such metadata with
// ErrInvalidSegment; a stored value that breaks one is damage.
func CheckSegment(m *tiers.SegmentMeta) error { return checkSegment(m) }

// CheckIntent reports why in breaks what every stored intent satisfies
// (a kind of 1 to MaxKindBytes bytes, a key of at most MaxKeyBytes,
// Attempts within int32), or returns nil.
func CheckIntent(in *Intent) error { return checkIntent(in) }

// SameRecords reports whether a and b describe the same records: every
// field but Placements, ColdBytes and Tombstoned is equal. UpdateSegment
// and CommitMove refuse a change to any of those fields.
func SameRecords(a, b *tiers.SegmentMeta) bool { return sameRecords(a, b) }

// TruncateMessage cuts a failure message to MaxErrorBytes without
// splitting a UTF-8 sequence, as RecordFailure stores it.
func TruncateMessage(s string) string { return truncate(s, maxErrorBytes) }
