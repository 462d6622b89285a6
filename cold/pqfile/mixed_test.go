package pqfile

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/tierd/tierd/tiers"
)

// TestBinaryThenJSONValues: a binary value followed by JSON values (no
// typed columns, parquet-go's struct path) leaves exactly one of value and
// value_bin set in every row. parquet-go v0.32.0 carried value_bin's
// definition level of a binary row into the JSON rows after it.
func TestBinaryThenJSONValues(t *testing.T) {
	cases := [][][]byte{
		{[]byte(`{"n":0}`), {0xff, 0x00}, []byte(`{"n":2}`)},
		{{0xff}, []byte(`1`), []byte(`2`), {}, []byte(`"x"`), {0x01, 0x02}, []byte(`[]`)},
		{{}, []byte(`{}`), {}, {}, []byte(`true`)},
		{{0x01}, []byte(`1`), {0x02}},
	}
	// Every null/non-null pattern of 8 rows, each side, and random
	// patterns across batch boundaries.
	rng := rand.New(rand.NewPCG(1, 2))
	for p := range 1 << 8 {
		var vals [][]byte
		for i := range 8 {
			if p&(1<<i) != 0 {
				vals = append(vals, []byte(`{"i":1}`))
			} else {
				vals = append(vals, []byte{0xfe, byte(i)})
			}
		}
		cases = append(cases, vals)
	}
	for range 20 {
		var vals [][]byte
		for range 1000 + rng.IntN(1000) {
			if rng.IntN(3) == 0 {
				vals = append(vals, []byte{0xff, byte(rng.IntN(256))})
			} else {
				vals = append(vals, []byte(`[1]`))
			}
		}
		cases = append(cases, vals)
	}
	for _, vals := range cases {
		var recs []tiers.Record
		for i, v := range vals {
			recs = append(recs, tiers.Record{Offset: uint64(10 + i), TS: int64(i), Value: v})
		}
		var buf bytes.Buffer
		if _, err := Write(context.Background(), &buf, "s", seqOf(recs), Options{}); err != nil {
			t.Fatal(err)
		}
		rd, err := Open(context.Background(), bytes.NewReader(buf.Bytes()), int64(buf.Len()), "x")
		if err != nil {
			t.Fatal(err)
		}
		if err := rd.Verify(context.Background()); err != nil {
			t.Fatalf("values %q: %v", vals[:min(len(vals), 12)], err)
		}
	}
}
