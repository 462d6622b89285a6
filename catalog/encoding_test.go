package catalog

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/tierd/tierd/tiers"
)

func sampleMeta() tiers.SegmentMeta {
	return tiers.SegmentMeta{
		Stream: "IF2406", Base: 100, Last: 199, Count: 100, Bytes: 12345,
		MinTS: -7, MaxTS: 1_700_000_000_123_456_789,
		SealedAt:   time.Date(2024, 6, 1, 12, 30, 45, 123456789, time.UTC),
		Digest:     tiers.Digest{1, 2, 3, 31: 0xff},
		Placements: tiers.Of(tiers.Warm, tiers.Cold),
	}
}

func TestZeroUnixConstant(t *testing.T) {
	if got := (time.Time{}).Unix(); got != zeroUnix {
		t.Fatalf("time.Time{}.Unix() = %d, zeroUnix = %d", got, zeroUnix)
	}
}

// encodeSegmentV1 writes a version-1 segment value the way builds before
// ColdBytes and Tombstoned did, field by field, independent of encodeSegment.
func encodeSegmentV1(m *tiers.SegmentMeta) []byte {
	b := []byte{1}
	b = binary.AppendUvarint(b, m.Last)
	b = binary.AppendUvarint(b, m.Count)
	b = binary.AppendVarint(b, m.Bytes)
	b = binary.AppendVarint(b, m.MinTS)
	b = binary.AppendVarint(b, m.MaxTS)
	b = binary.AppendVarint(b, m.SealedAt.Unix())
	b = binary.AppendUvarint(b, uint64(m.SealedAt.Nanosecond()))
	b = append(b, m.Digest[:]...)
	return append(b, byte(m.Placements))
}

func TestDecodeSegmentV1(t *testing.T) {
	m := sampleMeta()
	v1 := encodeSegmentV1(&m)
	got, err := decodeSegment(m.Stream, m.Base, v1)
	if err != nil {
		t.Fatalf("decode v1: %v", err)
	}
	if got.ColdBytes != 0 || !got.Tombstoned.IsZero() {
		t.Fatalf("v1 value read as ColdBytes %d, Tombstoned %v; want 0 and live", got.ColdBytes, got.Tombstoned)
	}
	if !got.SealedAt.Equal(m.SealedAt) {
		t.Fatalf("SealedAt %v, want %v", got.SealedAt, m.SealedAt)
	}
	got.SealedAt = m.SealedAt
	if got != m {
		t.Fatalf("got %+v\nwant %+v", got, m)
	}
	if enc := encodeSegment(&got); enc[0] != segmentValueVersion || bytes.Equal(enc, v1) {
		t.Fatalf("re-encoding a v1 value wrote version %d", enc[0])
	}
	for cut := range v1 {
		if _, err := decodeSegment(m.Stream, m.Base, v1[:cut]); err == nil {
			t.Fatalf("v1 prefix of %d bytes decoded", cut)
		}
	}
	if _, err := decodeSegment(m.Stream, m.Base, append(v1, 0)); err == nil {
		t.Fatal("v1 with a trailing byte decoded")
	}
}

func TestSegmentEncodingRoundTrip(t *testing.T) {
	full := sampleMeta()
	zeroTime := sampleMeta()
	zeroTime.SealedAt = time.Time{}
	cold := sampleMeta()
	cold.Placements = tiers.Of(tiers.Cold)
	cold.ColdBytes = 4321
	cold.Tombstoned = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	extreme := tiers.SegmentMeta{Stream: "x", Base: 0, Last: math.MaxUint64 - 1, Count: math.MaxUint64,
		Bytes: math.MaxInt64, MinTS: math.MinInt64, MaxTS: math.MaxInt64,
		SealedAt: time.Unix(1<<40, 999_999_999).UTC(), Placements: tiers.Of(tiers.Cold),
		ColdBytes: math.MaxInt64, Tombstoned: time.Unix(-1<<40, 999_999_999).UTC()}
	for name, m := range map[string]tiers.SegmentMeta{"full": full, "zero sealed_at": zeroTime, "cold tombstoned": cold, "extreme": extreme} {
		t.Run(name, func(t *testing.T) {
			if err := checkSegment(&m); err != nil {
				t.Fatalf("checkSegment: %v", err)
			}
			enc := encodeSegment(&m)
			if len(enc) > maxSegmentValueBytes {
				t.Fatalf("encoding is %d bytes, max %d", len(enc), maxSegmentValueBytes)
			}
			got, err := decodeSegment(m.Stream, m.Base, enc)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !got.SealedAt.Equal(m.SealedAt) || got.SealedAt.IsZero() != m.SealedAt.IsZero() {
				t.Fatalf("SealedAt %v, want %v", got.SealedAt, m.SealedAt)
			}
			if !got.Tombstoned.Equal(m.Tombstoned) || got.Tombstoned.IsZero() != m.Tombstoned.IsZero() {
				t.Fatalf("Tombstoned %v, want %v", got.Tombstoned, m.Tombstoned)
			}
			got.SealedAt, got.Tombstoned = m.SealedAt, m.Tombstoned
			if got != m {
				t.Fatalf("got %+v\nwant %+v", got, m)
			}
			for cut := range enc {
				if _, err := decodeSegment(m.Stream, m.Base, enc[:cut]); err == nil {
					t.Fatalf("prefix of %d bytes decoded", cut)
				}
			}
			if _, err := decodeSegment(m.Stream, m.Base, append(enc, 0)); err == nil {
				t.Fatal("trailing byte accepted")
			}
		})
	}
}

func TestDecodeSegmentRejects(t *testing.T) {
	good := sampleMeta()
	placementAt := len(encodeSegmentV1(&good)) - 1
	cases := map[string]func(b []byte) []byte{
		"version 0":     func(b []byte) []byte { b[0] = 0; return b },
		"version 3":     func(b []byte) []byte { b[0] = 3; return b },
		"v2 as v1":      func(b []byte) []byte { b[0] = 1; return b },
		"hot placement": func(b []byte) []byte { b[placementAt] |= 1 << tiers.Hot; return b },
		"no placement":  func(b []byte) []byte { b[placementAt] = 0; return b },
		"unknown bit":   func(b []byte) []byte { b[placementAt] |= 0x80; return b },
		"negative cold bytes": func(b []byte) []byte {
			return appendTime(binary.AppendVarint(b[:placementAt+1], -1), time.Time{})
		},
		"tombstone nanoseconds": func(b []byte) []byte {
			return binary.AppendUvarint(binary.AppendVarint(binary.AppendVarint(b[:placementAt+1], 5), 1), 1e9)
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			b := mutate(encodeSegment(&good))
			if _, err := decodeSegment(good.Stream, good.Base, b); err == nil {
				t.Fatal("decoded")
			}
		})
	}
	// A value that is well-formed but describes a wrong segment for its key.
	if _, err := decodeSegment(good.Stream, good.Base+1, encodeSegment(&good)); err == nil {
		t.Fatal("count that does not match the key's base decoded")
	}
}

func TestStreamEncodingRoundTrip(t *testing.T) {
	for _, s := range []streamValue{
		{},
		{CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Segments: 3, Records: 1 << 40, Bytes: math.MaxInt64, NextOffset: math.MaxUint64},
	} {
		enc := encodeStream(&s)
		got, err := decodeStream(enc)
		if err != nil {
			t.Fatalf("decode %+v: %v", s, err)
		}
		if !got.CreatedAt.Equal(s.CreatedAt) || got.CreatedAt.IsZero() != s.CreatedAt.IsZero() {
			t.Fatalf("CreatedAt %v, want %v", got.CreatedAt, s.CreatedAt)
		}
		got.CreatedAt = s.CreatedAt
		if got != s {
			t.Fatalf("got %+v want %+v", got, s)
		}
		for cut := range enc {
			if _, err := decodeStream(enc[:cut]); err == nil {
				t.Fatalf("prefix of %d bytes decoded", cut)
			}
		}
	}
}

func FuzzDecodeSegment(f *testing.F) {
	m := sampleMeta()
	f.Add(m.Base, encodeSegment(&m))
	f.Add(m.Base, encodeSegmentV1(&m))
	m.ColdBytes, m.Tombstoned = 99, time.Unix(1e9, 5)
	f.Add(m.Base, encodeSegment(&m))
	f.Add(uint64(0), []byte{1})
	f.Add(uint64(0), []byte{2})
	f.Add(uint64(5), []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, base uint64, b []byte) {
		got, err := decodeSegment("s", base, b)
		if err != nil {
			return
		}
		if err := checkSegment(&got); err != nil {
			t.Fatalf("decoded a segment that breaks an invariant: %v", err)
		}
		again, err := decodeSegment("s", base, encodeSegment(&got))
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !again.SealedAt.Equal(got.SealedAt) || !again.Tombstoned.Equal(got.Tombstoned) || again.Tombstoned.IsZero() != got.Tombstoned.IsZero() {
			t.Fatalf("times %v, %v became %v, %v", got.SealedAt, got.Tombstoned, again.SealedAt, again.Tombstoned)
		}
		again.SealedAt, again.Tombstoned = got.SealedAt, got.Tombstoned
		if again != got {
			t.Fatalf("round trip changed %+v to %+v", got, again)
		}
	})
}

func FuzzDecodeStream(f *testing.F) {
	s := streamValue{CreatedAt: time.Unix(1, 2), Segments: 1, Records: 2, Bytes: 3, NextOffset: 4}
	f.Add(encodeStream(&s))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeStream(b)
		if err != nil {
			return
		}
		enc := encodeStream(&got)
		again, err := decodeStream(enc)
		if err != nil || !bytes.Equal(encodeStream(&again), enc) {
			t.Fatalf("round trip of %+v failed: %v", got, err)
		}
	})
}

func TestIntentEncodingRoundTrip(t *testing.T) {
	for name, in := range map[string]Intent{
		"minimal": {Stream: "s", Base: 0, Kind: IntentUpload},
		"full": {Stream: "s", Base: math.MaxUint64, Kind: IntentDeleteCold, Key: "p/stream=s/date=2025-01-01/x.parquet",
			Started: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Attempts: math.MaxInt32, LastError: "é timeout"},
	} {
		t.Run(name, func(t *testing.T) {
			enc := encodeIntent(&in)
			got, err := decodeIntent(in.Stream, in.Base, enc)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !got.Started.Equal(in.Started) || got.Started.IsZero() != in.Started.IsZero() {
				t.Fatalf("Started %v, want %v", got.Started, in.Started)
			}
			got.Started = in.Started
			if got != in {
				t.Fatalf("got %+v\nwant %+v", got, in)
			}
			for cut := range enc {
				if _, err := decodeIntent(in.Stream, in.Base, enc[:cut]); err == nil {
					t.Fatalf("prefix of %d bytes decoded", cut)
				}
			}
		})
	}
	bad := map[string][]byte{
		"version 2":  {2, 1, 'k', 0, 0, 0, 0, 0},
		"empty kind": encodeIntent(&Intent{Kind: ""}),
		"long kind":  encodeIntent(&Intent{Kind: string(make([]byte, maxKindBytes+1))}),
	}
	for name, b := range bad {
		if _, err := decodeIntent("s", 0, b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestFailureEncodingRoundTrip(t *testing.T) {
	f := Failure{Stream: "s", Base: 7, Kind: IntentUpload, Err: "boom", At: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Attempts: 3}
	enc := encodeFailure(&f)
	got, err := decodeFailure(f.Stream, f.Base, enc)
	if err != nil {
		t.Fatal(err)
	}
	if !got.At.Equal(f.At) {
		t.Fatalf("At %v, want %v", got.At, f.At)
	}
	got.At = f.At
	if got != f {
		t.Fatalf("got %+v want %+v", got, f)
	}
	for cut := range enc {
		if _, err := decodeFailure(f.Stream, f.Base, enc[:cut]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", cut)
		}
	}
	f.Attempts = 0
	if _, err := decodeFailure(f.Stream, f.Base, encodeFailure(&f)); err == nil {
		t.Fatal("zero attempts decoded")
	}
}

func FuzzDecodeIntent(f *testing.F) {
	in := Intent{Kind: IntentUpload, Key: "k", Started: time.Unix(5, 6), Attempts: 2, LastError: "e"}
	f.Add(encodeIntent(&in))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeIntent("s", 1, b)
		if err != nil {
			return
		}
		if err := checkIntent(&got); err != nil {
			t.Fatalf("decoded an invalid intent: %v", err)
		}
		enc := encodeIntent(&got)
		again, err := decodeIntent("s", 1, enc)
		if err != nil || !bytes.Equal(encodeIntent(&again), enc) {
			t.Fatalf("round trip of %+v failed: %v", got, err)
		}
	})
}

func FuzzDecodeFailure(f *testing.F) {
	fl := Failure{Kind: IntentUpload, Err: "boom", At: time.Unix(5, 6), Attempts: 1}
	f.Add(encodeFailure(&fl))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeFailure("s", 1, b)
		if err != nil {
			return
		}
		enc := encodeFailure(&got)
		again, err := decodeFailure("s", 1, enc)
		if err != nil || !bytes.Equal(encodeFailure(&again), enc) {
			t.Fatalf("round trip of %+v failed: %v", got, err)
		}
	})
}
