package catalog

import (
	"bytes"
	"encoding/binary"
	"errors"
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
		ColdBytes:  2222,
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

// encodeSegmentV2 writes a version-2 segment value as schema 2 builds did.
func encodeSegmentV2(m *tiers.SegmentMeta) []byte {
	b := encodeSegmentV1(m)
	b[0] = 2
	b = binary.AppendVarint(b, m.ColdBytes)
	b = binary.AppendVarint(b, m.Tombstoned.Unix())
	return binary.AppendUvarint(b, uint64(m.Tombstoned.Nanosecond()))
}

// encodeStreamV1 writes a version-1 stream value as schema 1 and 2 builds did.
func encodeStreamV1(s *streamValue) []byte {
	b := []byte{1}
	b = binary.AppendVarint(b, s.CreatedAt.Unix())
	b = binary.AppendUvarint(b, uint64(s.CreatedAt.Nanosecond()))
	b = binary.AppendUvarint(b, s.Segments)
	b = binary.AppendUvarint(b, s.Records)
	b = binary.AppendUvarint(b, s.Bytes)
	return binary.AppendUvarint(b, s.NextOffset)
}

// recrc replaces the checksum of a current value after a test changed its
// fields, so that the plausibility checks behind the checksum are reached.
func recrc(b []byte, kind byte, stream string, base uint64) []byte {
	body := b[:len(b)-crcLen]
	return appendCRC(bytes.Clone(body), kind, stream, base)
}

func TestDecodeLegacySegments(t *testing.T) {
	m := sampleMeta()
	m.ColdBytes = 0
	for name, v := range map[string][]byte{"v1": encodeSegmentV1(&m), "v2": encodeSegmentV2(&m)} {
		t.Run(name, func(t *testing.T) {
			got, err := decodeSegment(m.Stream, m.Base, v, true)
			if err != nil {
				t.Fatalf("decode %s while upgrading: %v", name, err)
			}
			got.SealedAt = m.SealedAt
			if got != m {
				t.Fatalf("got %+v\nwant %+v", got, m)
			}
			if _, err := decodeSegment(m.Stream, m.Base, v, false); !errors.Is(err, errVersion) {
				t.Fatalf("a schema-3 catalog accepted a %s value (no checksum): %v", name, err)
			}
			for cut := range v {
				if _, err := decodeSegment(m.Stream, m.Base, v[:cut], true); err == nil {
					t.Fatalf("prefix of %d bytes decoded", cut)
				}
			}
			if _, err := decodeSegment(m.Stream, m.Base, append(bytes.Clone(v), 0), true); err == nil {
				t.Fatal("trailing byte accepted")
			}
		})
	}
	// The first catalog damage issue 10 reports: a zero tombstone flipped
	// to year 0000, before the seal. Without a checksum, plausibility
	// catches it.
	bad := m
	bad.Tombstoned = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := decodeSegment(m.Stream, m.Base, encodeSegmentV2(&bad), true); !errors.Is(err, errImplausible) {
		t.Fatalf("a v2 tombstone before the seal decoded: %v", err)
	}
}

func TestSegmentEncodingRoundTrip(t *testing.T) {
	full := sampleMeta()
	warmOnly := sampleMeta()
	warmOnly.Placements, warmOnly.ColdBytes = tiers.Of(tiers.Warm), 0
	cold := sampleMeta()
	cold.Placements = tiers.Of(tiers.Cold)
	cold.Tombstoned = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	unknownSize := sampleMeta()
	unknownSize.ColdBytes = 0 // catalogued before sizes were recorded
	extreme := tiers.SegmentMeta{Stream: "x", Base: 0, Last: math.MaxUint64 - 1, Count: math.MaxUint64,
		Bytes: math.MaxInt64, MinTS: math.MinInt64, MaxTS: math.MaxInt64,
		SealedAt: time.Unix(0, 0).UTC(), Placements: tiers.Of(tiers.Cold),
		ColdBytes: math.MaxInt64, Tombstoned: time.Unix(0, math.MaxInt64).UTC()}
	for name, m := range map[string]tiers.SegmentMeta{"full": full, "warm": warmOnly, "cold tombstoned": cold, "cold size unknown": unknownSize, "extreme": extreme} {
		t.Run(name, func(t *testing.T) {
			if err := checkSegment(&m); err != nil {
				t.Fatalf("checkSegment: %v", err)
			}
			enc := encodeSegment(&m)
			if len(enc) > maxSegmentValueBytes {
				t.Fatalf("encoding is %d bytes, max %d", len(enc), maxSegmentValueBytes)
			}
			got, err := decodeSegment(m.Stream, m.Base, enc, false)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !got.SealedAt.Equal(m.SealedAt) {
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
				if _, err := decodeSegment(m.Stream, m.Base, enc[:cut], false); err == nil {
					t.Fatalf("prefix of %d bytes decoded", cut)
				}
			}
			if _, err := decodeSegment(m.Stream, m.Base, append(bytes.Clone(enc), 0), false); err == nil {
				t.Fatal("trailing byte accepted")
			}
		})
	}
}

// TestEveryBitFlipIsDetected flips each bit of each current value and puts
// each value under other keys: every one must fail to decode.
func TestEveryBitFlipIsDetected(t *testing.T) {
	m := sampleMeta()
	m.Tombstoned = m.SealedAt.Add(time.Hour)
	values := []struct {
		name   string
		enc    []byte
		decode func(stream string, base uint64, b []byte) error
	}{
		{"segment", encodeSegment(&m), func(s string, base uint64, b []byte) error {
			_, err := decodeSegment(s, base, b, false)
			return err
		}},
		{"stream", encodeStream(m.Stream, &streamValue{CreatedAt: m.SealedAt, Segments: 1, Records: 100, Bytes: 12345, NextOffset: 200, RetainedFrom: 100}),
			func(s string, base uint64, b []byte) error {
				if base != m.Base {
					return errors.New("streams have no base")
				}
				_, err := decodeStream(s, b, false)
				return err
			}},
		{"intent", encodeIntent(&Intent{Stream: m.Stream, Base: m.Base, Kind: IntentUpload, Key: "k", Started: m.SealedAt, Attempts: 2, LastError: "x"}),
			func(s string, base uint64, b []byte) error { _, err := decodeIntent(s, base, b, false); return err }},
		{"failure", encodeFailure(&Failure{Stream: m.Stream, Base: m.Base, Kind: IntentUpload, Err: "x", At: m.SealedAt, Attempts: 1, Refused: true}),
			func(s string, base uint64, b []byte) error { _, err := decodeFailure(s, base, b, false); return err }},
	}
	for _, v := range values {
		if err := v.decode(m.Stream, m.Base, v.enc); err != nil {
			t.Fatalf("%s: the intact value does not decode: %v", v.name, err)
		}
		for bit := 0; bit < 8*len(v.enc); bit++ {
			b := bytes.Clone(v.enc)
			b[bit/8] ^= 1 << (bit % 8)
			if err := v.decode(m.Stream, m.Base, b); err == nil {
				t.Fatalf("%s: bit %d flipped decoded", v.name, bit)
			}
		}
		for _, key := range []struct {
			stream string
			base   uint64
		}{{"IF2407", m.Base}, {"IF240", m.Base}, {m.Stream, m.Base + 1}, {m.Stream, m.Base ^ 1<<40}} {
			if err := v.decode(key.stream, key.base, v.enc); err == nil {
				t.Fatalf("%s: decoded under another key %s/%d", v.name, key.stream, key.base)
			}
		}
	}
	// A value of one kind never passes for another, even under its key.
	if _, err := decodeFailure(m.Stream, m.Base, values[2].enc, false); err == nil {
		t.Fatal("an intent value decoded as a failure")
	}
}

func TestDecodeSegmentRejects(t *testing.T) {
	good := sampleMeta()
	good.Placements, good.ColdBytes = tiers.Of(tiers.Warm), 0
	placementAt := len(encodeSegmentV1(&good)) - 1
	// Each mutation keeps the checksum right, so the check behind it must
	// catch the value.
	cases := map[string]func(b []byte) []byte{
		"version 0":     func(b []byte) []byte { b[0] = 0; return b },
		"version 4":     func(b []byte) []byte { b[0] = 4; return b },
		"hot placement": func(b []byte) []byte { b[placementAt] |= 1 << tiers.Hot; return b },
		"no placement":  func(b []byte) []byte { b[placementAt] = 0; return b },
		"unknown bit":   func(b []byte) []byte { b[placementAt] |= 0x80; return b },
		"cold with cold_bytes 0": func(b []byte) []byte {
			b[placementAt] |= 1 << tiers.Cold
			return b
		},
		"cold_bytes without cold": func(b []byte) []byte {
			return appendTime(binary.AppendVarint(b[:placementAt+1], 7), time.Time{})
		},
		"negative cold bytes": func(b []byte) []byte {
			return appendTime(binary.AppendVarint(b[:placementAt+1], -2), time.Time{})
		},
		"tombstone nanoseconds": func(b []byte) []byte {
			return binary.AppendUvarint(binary.AppendVarint(binary.AppendVarint(b[:placementAt+1], 0), 1), 1e9)
		},
		"tombstone before the seal": func(b []byte) []byte {
			return appendTime(binary.AppendVarint(b[:placementAt+1], 0), good.SealedAt.Add(-time.Second))
		},
		"tombstone in year 0": func(b []byte) []byte {
			return appendTime(binary.AppendVarint(b[:placementAt+1], 0), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			enc := encodeSegment(&good)
			b := mutate(bytes.Clone(enc[:len(enc)-crcLen]))
			b = appendCRC(b, kindSegment, good.Stream, good.Base)
			if _, err := decodeSegment(good.Stream, good.Base, b, false); err == nil {
				t.Fatal("decoded")
			}
		})
	}
	noSeal := good
	noSeal.SealedAt = time.Time{}
	if err := checkSegment(&noSeal); err == nil {
		t.Fatal("a segment without sealed_at passed checkSegment")
	}
	if _, err := decodeSegment(good.Stream, good.Base, recrc(encodeSegment(&noSeal), kindSegment, good.Stream, good.Base), false); err == nil {
		t.Fatal("a value without sealed_at decoded")
	}
}

func TestStreamEncodingRoundTrip(t *testing.T) {
	for _, s := range []streamValue{
		{CreatedAt: time.Unix(0, 1).UTC()},
		{CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Segments: 3, Records: 1 << 40, Bytes: math.MaxInt64, NextOffset: math.MaxUint64, RetainedFrom: math.MaxUint64},
	} {
		enc := encodeStream("s", &s)
		got, err := decodeStream("s", enc, false)
		if err != nil {
			t.Fatalf("decode %+v: %v", s, err)
		}
		if !got.CreatedAt.Equal(s.CreatedAt) {
			t.Fatalf("CreatedAt %v, want %v", got.CreatedAt, s.CreatedAt)
		}
		got.CreatedAt = s.CreatedAt
		if got != s {
			t.Fatalf("got %+v want %+v", got, s)
		}
		for cut := range enc {
			if _, err := decodeStream("s", enc[:cut], false); err == nil {
				t.Fatalf("prefix of %d bytes decoded", cut)
			}
		}
	}
	legacy := streamValue{CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Segments: 1, Records: 5, Bytes: 9, NextOffset: 7}
	got, err := decodeStream("s", encodeStreamV1(&legacy), true)
	if err != nil || got.NextOffset != 7 || got.RetainedFrom != 0 {
		t.Fatalf("v1 stream value while upgrading: %+v, %v", got, err)
	}
	if _, err := decodeStream("s", encodeStreamV1(&legacy), false); !errors.Is(err, errVersion) {
		t.Fatalf("a schema-3 catalog accepted a v1 stream value: %v", err)
	}
	for name, s := range map[string]streamValue{
		"retained past next":         {CreatedAt: legacy.CreatedAt, NextOffset: 5, RetainedFrom: 6},
		"no created_at":              {NextOffset: 5},
		"more segments than records": {CreatedAt: legacy.CreatedAt, Segments: 2, Records: 1, NextOffset: 5},
	} {
		if _, err := decodeStream("s", encodeStream("s", &s), false); !errors.Is(err, errImplausible) {
			t.Errorf("%s: %v, want implausible", name, err)
		}
	}
}

func TestIntentEncodingRoundTrip(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	for name, in := range map[string]Intent{
		"minimal": {Stream: "s", Base: 0, Kind: IntentUpload, Started: at},
		"full": {Stream: "s", Base: math.MaxUint64, Kind: IntentDeleteCold, Key: "p/stream=s/date=2025-01-01/x.parquet",
			Started: at, Attempts: math.MaxInt32, LastError: "é timeout"},
	} {
		t.Run(name, func(t *testing.T) {
			enc := encodeIntent(&in)
			got, err := decodeIntent(in.Stream, in.Base, enc, false)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !got.Started.Equal(in.Started) {
				t.Fatalf("Started %v, want %v", got.Started, in.Started)
			}
			got.Started = in.Started
			if got != in {
				t.Fatalf("got %+v\nwant %+v", got, in)
			}
			for cut := range enc {
				if _, err := decodeIntent(in.Stream, in.Base, enc[:cut], false); err == nil {
					t.Fatalf("prefix of %d bytes decoded", cut)
				}
			}
		})
	}
	v1 := []byte{1, 6, 'u', 'p', 'l', 'o', 'a', 'd', 0, 0, 0, 0, 0}
	if in, err := decodeIntent("s", 0, v1, true); err != nil || in.Kind != IntentUpload {
		t.Fatalf("v1 intent while upgrading: %+v, %v", in, err)
	}
	bad := map[string][]byte{
		"v1 in schema 3": v1,
		"empty kind":     encodeIntent(&Intent{Kind: "", Started: at}),
		"long kind":      encodeIntent(&Intent{Kind: string(make([]byte, maxKindBytes+1)), Started: at}),
		"no start":       encodeIntent(&Intent{Kind: IntentUpload}),
	}
	for name, b := range bad {
		if _, err := decodeIntent("", 0, b, false); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestFailureEncodingRoundTrip(t *testing.T) {
	for _, refused := range []bool{false, true} {
		f := Failure{Stream: "s", Base: 7, Kind: IntentUpload, Err: "boom", At: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Attempts: 3, Refused: refused}
		enc := encodeFailure(&f)
		got, err := decodeFailure(f.Stream, f.Base, enc, false)
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
			if _, err := decodeFailure(f.Stream, f.Base, enc[:cut], false); err == nil {
				t.Fatalf("prefix of %d bytes decoded", cut)
			}
		}
		f.Attempts = 0
		if _, err := decodeFailure(f.Stream, f.Base, encodeFailure(&f), false); err == nil {
			t.Fatal("zero attempts decoded")
		}
	}
	unknownFlag := encodeFailure(&Failure{Stream: "s", Kind: "k", Err: "e", At: time.Unix(9, 0), Attempts: 1})
	unknownFlag[len(unknownFlag)-crcLen-1] = 0x80
	if _, err := decodeFailure("s", 0, recrc(unknownFlag, kindFailure, "s", 0), false); !errors.Is(err, errImplausible) {
		t.Fatalf("unknown failure flag: %v", err)
	}
}

func FuzzDecodeSegment(f *testing.F) {
	m := sampleMeta()
	f.Add(m.Base, false, encodeSegment(&m))
	f.Add(m.Base, true, encodeSegmentV1(&m))
	f.Add(m.Base, true, encodeSegmentV2(&m))
	m.Tombstoned = m.SealedAt.Add(time.Hour)
	f.Add(m.Base, false, encodeSegment(&m))
	f.Add(uint64(0), true, []byte{1})
	f.Add(uint64(0), false, []byte{3})
	f.Add(uint64(5), true, []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, base uint64, legacy bool, b []byte) {
		got, err := decodeSegment("IF2406", base, b, legacy)
		if err != nil {
			return
		}
		if got.SealedAt.IsZero() && legacy {
			got.SealedAt = time.Unix(1, 0) // the upgrade stamps it
		}
		if err := checkSegment(&got); err != nil {
			t.Fatalf("decoded a segment that breaks an invariant: %v", err)
		}
		again, err := decodeSegment("IF2406", base, encodeSegment(&got), false)
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
	s := streamValue{CreatedAt: time.Unix(1, 2), Segments: 1, Records: 2, Bytes: 3, NextOffset: 4, RetainedFrom: 2}
	f.Add(false, encodeStream("s", &s))
	f.Add(true, encodeStreamV1(&s))
	f.Add(true, []byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, legacy bool, b []byte) {
		got, err := decodeStream("s", b, legacy)
		if err != nil {
			return
		}
		if got.CreatedAt.IsZero() || !plausibleTime(got.CreatedAt) {
			got.CreatedAt = time.Unix(1, 0) // the upgrade stamps it
		}
		enc := encodeStream("s", &got)
		again, err := decodeStream("s", enc, false)
		if err != nil || !bytes.Equal(encodeStream("s", &again), enc) {
			t.Fatalf("round trip of %+v failed: %v", got, err)
		}
	})
}

func FuzzDecodeIntent(f *testing.F) {
	in := Intent{Stream: "s", Base: 1, Kind: IntentUpload, Key: "k", Started: time.Unix(5, 6), Attempts: 2, LastError: "e"}
	f.Add(false, encodeIntent(&in))
	f.Add(true, []byte{1, 1, 'k', 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, legacy bool, b []byte) {
		got, err := decodeIntent("s", 1, b, legacy)
		if err != nil {
			return
		}
		if err := checkIntent(&got); err != nil {
			t.Fatalf("decoded an invalid intent: %v", err)
		}
		if got.Started.IsZero() || !plausibleTime(got.Started) {
			got.Started = time.Unix(1, 0) // the upgrade stamps it
		}
		enc := encodeIntent(&got)
		again, err := decodeIntent("s", 1, enc, false)
		if err != nil || !bytes.Equal(encodeIntent(&again), enc) {
			t.Fatalf("round trip of %+v failed: %v", got, err)
		}
	})
}

func FuzzDecodeFailure(f *testing.F) {
	fl := Failure{Stream: "s", Base: 1, Kind: IntentUpload, Err: "boom", At: time.Unix(5, 6), Attempts: 1, Refused: true}
	f.Add(false, encodeFailure(&fl))
	f.Add(true, []byte{1, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, legacy bool, b []byte) {
		got, err := decodeFailure("s", 1, b, legacy)
		if err != nil {
			return
		}
		if got.At.IsZero() || !plausibleTime(got.At) {
			got.At = time.Unix(1, 0) // the upgrade stamps it
		}
		enc := encodeFailure(&got)
		again, err := decodeFailure("s", 1, enc, false)
		if err != nil || !bytes.Equal(encodeFailure(&again), enc) {
			t.Fatalf("round trip of %+v failed: %v", got, err)
		}
	})
}
