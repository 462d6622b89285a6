package tiers

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"time"
)

// Placement is a tier that holds a copy of a segment's bytes.
type Placement uint8

// The placements, from fastest to cheapest. Routing prefers the lowest.
const (
	Hot  Placement = 1 // in memory
	Warm Placement = 2 // a local journal file
	Cold Placement = 3 // a Parquet object in the cold store
)

// String returns "hot", "warm" or "cold".
func (p Placement) String() string {
	switch p {
	case Hot:
		return "hot"
	case Warm:
		return "warm"
	case Cold:
		return "cold"
	}
	return fmt.Sprintf("placement(%d)", uint8(p))
}

// ParsePlacement is the inverse of Placement.String.
func ParsePlacement(s string) (Placement, error) {
	switch s {
	case "hot":
		return Hot, nil
	case "warm":
		return Warm, nil
	case "cold":
		return Cold, nil
	}
	return 0, fmt.Errorf("tiers: unknown placement %q", s)
}

// Placements is a set of placements.
type Placements uint8

// Of builds a set from its members.
func Of(ps ...Placement) Placements {
	var s Placements
	for _, p := range ps {
		s = s.With(p)
	}
	return s
}

// Has reports whether p is in the set.
func (s Placements) Has(p Placement) bool { return s&(1<<p) != 0 }

// With returns the set with p added.
func (s Placements) With(p Placement) Placements { return s | 1<<p }

// Without returns the set with p removed.
func (s Placements) Without(p Placement) Placements { return s &^ (1 << p) }

// Best returns the fastest placement in the set, or 0 if it is empty.
func (s Placements) Best() Placement {
	for _, p := range []Placement{Hot, Warm, Cold} {
		if s.Has(p) {
			return p
		}
	}
	return 0
}

// List returns the members in order hot, warm, cold.
func (s Placements) List() []Placement {
	var out []Placement
	for _, p := range []Placement{Hot, Warm, Cold} {
		if s.Has(p) {
			out = append(out, p)
		}
	}
	return out
}

// Strings returns the members' names in order hot, warm, cold.
func (s Placements) Strings() []string {
	out := []string{}
	for _, p := range s.List() {
		out = append(out, p.String())
	}
	return out
}

// String joins the members' names with "+".
func (s Placements) String() string { return strings.Join(s.Strings(), "+") }

// SegmentMeta describes one sealed segment: the contiguous run [Base, Last]
// of one stream's records. (Stream, Base) identifies it.
type SegmentMeta struct {
	Stream     string
	Base       uint64
	Last       uint64
	Count      uint64
	Bytes      int64 // encoded record bytes (the warm file's size once persisted)
	MinTS      int64
	MaxTS      int64
	SealedAt   time.Time
	Digest     Digest
	Placements Placements
	// ColdBytes is the size of the cold object, 0 while there is none.
	ColdBytes int64
	// Tombstoned is when deletion by retention began (step one of two:
	// the segment is no longer served; its objects go after a delay).
	// Zero while the segment is live.
	Tombstoned time.Time
}

// Contains reports whether offset lies in the segment.
func (m *SegmentMeta) Contains(offset uint64) bool { return offset >= m.Base && offset <= m.Last }

// Digest is the SHA-256 of a segment's records in their canonical encoding
// (AppendRecord, each preceded by its length as a uvarint), in offset order.
// It depends only on the records, never on a container, so every placement
// of a segment has the same digest and any tier can recompute it.
type Digest [sha256.Size]byte

// String returns "sha256:" and the lower-case hex digest.
func (d Digest) String() string { return "sha256:" + hex.EncodeToString(d[:]) }

// IsZero reports whether the digest is unset.
func (d Digest) IsZero() bool { return d == Digest{} }

// ParseDigest is the inverse of Digest.String.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return d, fmt.Errorf("tiers: digest %q lacks the sha256: prefix", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(d) {
		return d, fmt.Errorf("tiers: bad digest %q", s)
	}
	copy(d[:], b)
	return d, nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	v, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Digester computes a segment Digest incrementally. The zero value is not
// ready; use NewDigester.
type Digester struct {
	h   hash.Hash
	buf []byte
}

// NewDigester returns a Digester with nothing added.
func NewDigester() *Digester { return &Digester{h: sha256.New()} }

// Add adds the next record, in offset order.
func (d *Digester) Add(r *Record) {
	d.buf = AppendRecord(d.buf[:0], r)
	d.AddEncoded(d.buf)
}

// AddEncoded adds the next record given as its AppendRecord encoding, which
// saves re-encoding where the bytes already exist.
func (d *Digester) AddEncoded(enc []byte) {
	var l [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(l[:], uint64(len(enc)))
	d.h.Write(l[:n])
	d.h.Write(enc)
}

// Sum returns the digest of the records added so far.
func (d *Digester) Sum() Digest {
	var out Digest
	d.h.Sum(out[:0])
	return out
}

// CorruptionError reports bytes on disk or from a store that fail their
// checks. Reads return it; it never crashes the daemon.
type CorruptionError struct {
	Path   string // file or object key
	Offset int64  // byte offset of the damage, -1 if unknown
	Err    error
}

// Error names the path and offset.
func (e *CorruptionError) Error() string {
	return fmt.Sprintf("corruption in %s at byte %d: %v", e.Path, e.Offset, e.Err)
}

// Unwrap returns the underlying cause.
func (e *CorruptionError) Unwrap() error { return e.Err }
