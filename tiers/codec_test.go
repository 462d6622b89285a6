package tiers

import (
	"errors"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	cases := []Record{
		{},
		{Offset: 1 << 40, TS: -5, Key: "k", Tags: []string{"a", "", "ccc"}, Value: []byte("hello")},
		{Offset: 7, TS: 1_700_000_000_123_456_789, Value: make([]byte, 70000)},
	}
	for _, r := range cases {
		enc := AppendRecord([]byte("prefix"), &r)[6:]
		if len(enc) != EncodedLen(&r) {
			t.Fatalf("EncodedLen = %d, encoded %d", EncodedLen(&r), len(enc))
		}
		got, n, err := DecodeRecord(enc)
		if err != nil || n != len(enc) {
			t.Fatalf("decode: n=%d err=%v", n, err)
		}
		if !got.Equal(&r) {
			t.Fatalf("got %+v want %+v", got, r)
		}
		for cut := 0; cut < len(enc); cut++ {
			if _, _, err := DecodeRecord(enc[:cut]); err == nil {
				t.Fatalf("truncated at %d decoded without error", cut)
			}
		}
	}
}

func TestValidateStreamName(t *testing.T) {
	long := make([]byte, 201)
	for i := range long {
		long[i] = 'a'
	}
	for name, ok := range map[string]bool{
		"IF2406": true, "a.b_c-d": true, "0": true, string(long[:200]): true,
		"": false, ".hidden": false, "-x": false, "a/b": false, "a b": false, "..": false, string(long): false, "é": false,
	} {
		err := ValidateStreamName(name)
		if (err == nil) != ok {
			t.Errorf("%q: err=%v want ok=%v", name, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidStreamName) {
			t.Errorf("%q: error %v is not ErrInvalidStreamName", name, err)
		}
	}
}

func TestDigestDependsOnEveryField(t *testing.T) {
	base := Record{Offset: 1, TS: 2, Key: "k", Tags: []string{"t"}, Value: []byte("v")}
	variants := []Record{
		{Offset: 2, TS: 2, Key: "k", Tags: []string{"t"}, Value: []byte("v")},
		{Offset: 1, TS: 3, Key: "k", Tags: []string{"t"}, Value: []byte("v")},
		{Offset: 1, TS: 2, Key: "K", Tags: []string{"t"}, Value: []byte("v")},
		{Offset: 1, TS: 2, Key: "k", Tags: []string{"u"}, Value: []byte("v")},
		{Offset: 1, TS: 2, Key: "k", Tags: []string{"t"}, Value: []byte("w")},
	}
	d := NewDigester()
	d.Add(&base)
	want := d.Sum()
	for i, v := range variants {
		d := NewDigester()
		d.Add(&v)
		if d.Sum() == want {
			t.Errorf("variant %d has the same digest", i)
		}
	}
	s := want.String()
	back, err := ParseDigest(s)
	if err != nil || back != want {
		t.Fatalf("ParseDigest(%q) = %v, %v", s, back, err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(AppendRecord(nil, &Record{Offset: 3, TS: 9, Key: "k", Tags: []string{"x"}, Value: []byte("v")}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		again := AppendRecord(nil, &r)
		r2, _, err := DecodeRecord(again)
		if err != nil || !r2.Equal(&r) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}
