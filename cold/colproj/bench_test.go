package colproj

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// benchValues are record values of the shapes tierd's benchmarks append: a
// small trade and a larger event with nested objects and an array.
func benchValues() map[string][]byte {
	var big strings.Builder
	big.WriteString(`{"id":"evt-000123","user":{"id":98765,"name":"Zoë Example","tags":["a","b","c"]},"items":[`)
	for i := range 20 {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"sku":"SKU-%05d","qty":%d,"price":"%d.%02d","note":"line \"%d\" \u00e9"}`, i, i+1, 10+i, i, i)
	}
	big.WriteString(`],"amount":"1234.5600","px":101.25,"at":"2026-12-02T08:15:00.123456Z","ok":true}`)
	return map[string][]byte{
		"trade": []byte(`{"sym":"IF2612","px":4012.6,"qty":3,"side":"buy","amount":"12037.80","at":"2026-12-02T08:15:00.123456Z","ok":true}`),
		"event": []byte(big.String()),
	}
}

var benchCols = []Column{
	{Name: "px", Path: "$.px", Type: Double},
	{Name: "amt", Path: "$.amount", Type: Decimal, Precision: 18, Scale: 4},
	{Name: "at", Path: "$.at", Type: Timestamp},
	{Name: "ok", Path: "$.ok", Type: Bool},
}

// BenchmarkProject compares one Project (validation and four columns) with
// what a writer does anyway to pick the value column: utf8.Valid and
// json.Valid over the same bytes.
func BenchmarkProject(b *testing.B) {
	for name, val := range benchValues() {
		b.Run(name+"/json.Valid", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(val)))
			for b.Loop() {
				if !json.Valid(val) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(name+"/utf8+json.Valid", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(val)))
			for b.Loop() {
				if !utf8.Valid(val) || !json.Valid(val) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(name+"/Valid", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(val)))
			for b.Loop() {
				if !Valid(val) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(name+"/Project4", func(b *testing.B) {
			p, err := New(benchCols)
			if err != nil {
				b.Fatal(err)
			}
			out := make([]Value, len(benchCols))
			b.ReportAllocs()
			b.SetBytes(int64(len(val)))
			for b.Loop() {
				if !p.ProjectValid(val, out) {
					b.Fatal("invalid")
				}
			}
			if !out[0].Valid || !out[1].Valid || !out[2].Valid || !out[3].Valid {
				b.Fatalf("projected %+v", out)
			}
		})
		b.Run(name+"/Unmarshal", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(val)))
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(val, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
