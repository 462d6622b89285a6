package catalog

import (
	"bytes"
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

func TestSegmentEncodingRoundTrip(t *testing.T) {
	full := sampleMeta()
	zeroTime := sampleMeta()
	zeroTime.SealedAt = time.Time{}
	extreme := tiers.SegmentMeta{Stream: "x", Base: 0, Last: math.MaxUint64 - 1, Count: math.MaxUint64,
		Bytes: math.MaxInt64, MinTS: math.MinInt64, MaxTS: math.MaxInt64,
		SealedAt: time.Unix(1<<40, 999_999_999).UTC(), Placements: tiers.Of(tiers.Cold)}
	for name, m := range map[string]tiers.SegmentMeta{"full": full, "zero sealed_at": zeroTime, "extreme": extreme} {
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
			got.SealedAt = m.SealedAt
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
	cases := map[string]func(b []byte) []byte{
		"version 0":     func(b []byte) []byte { b[0] = 0; return b },
		"version 2":     func(b []byte) []byte { b[0] = 2; return b },
		"hot placement": func(b []byte) []byte { b[len(b)-1] |= 1 << tiers.Hot; return b },
		"no placement":  func(b []byte) []byte { b[len(b)-1] = 0; return b },
		"unknown bit":   func(b []byte) []byte { b[len(b)-1] |= 0x80; return b },
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
	f.Add(uint64(0), []byte{1})
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
		if !again.SealedAt.Equal(got.SealedAt) {
			t.Fatalf("SealedAt %v became %v", got.SealedAt, again.SealedAt)
		}
		again.SealedAt = got.SealedAt
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
