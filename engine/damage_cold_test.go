package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tierd/tierd/cold"
	"github.com/tierd/tierd/tiers"
)

// fixtureRecords is n records of stream data: rising ts with a few out of
// order, keys k0..k4, tags, and values of valueBytes (compressible, so a
// row group byteRanges several checksum blocks and value pages while the file
// stays small).
func fixtureRecords(n, valueBytes int) []tiers.Record {
	recs := make([]tiers.Record, n)
	for i := range recs {
		v := []byte(strings.Repeat(fmt.Sprintf(`{"n":%d,"px":%d.%02d}`, i, 3500+i%40, i%100), valueBytes/16+1))[:valueBytes]
		ts := int64(1_795_341_600_000_000_000) + int64(i)*1_000_003
		if i%11 == 5 {
			ts -= 7_000_000_000
		}
		recs[i] = tiers.Record{TS: ts, Key: fmt.Sprintf("k%d", i%5), Tags: []string{fmt.Sprintf("t%d", i%3)}, Value: v}
	}
	return recs
}

// appendAll appends recs to stream in batches of 10 and returns them with
// their offsets.
func appendAll(t *testing.T, e *Engine, stream string, recs []tiers.Record) []tiers.Record {
	t.Helper()
	for i := 0; i < len(recs); i += 10 {
		b := recs[i:min(i+10, len(recs))]
		res, err := e.Append(context.Background(), stream, b)
		if err != nil {
			t.Fatal(err)
		}
		for j := range b {
			b[j].Offset = res.First + uint64(j)
		}
	}
	return recs
}

// parquetRegions finds the parts of a Parquet file by walking it
// independently of the reader: magic and trailer, the Thrift footer, every
// page header, page data, bloom filters and the page index.
func parquetRegions(t *testing.T, b []byte) map[string]byteRanges {
	t.Helper()
	size := int64(len(b))
	footerLen := int64(binary.LittleEndian.Uint32(b[size-8:]))
	footerStart := size - 8 - footerLen
	r := map[string]byteRanges{
		"magic+trailer": {{0, 4}, {size - 8, size}},
		"footer":        {{footerStart, size - 8}},
	}
	f, err := parquet.OpenFile(bytes.NewReader(b), size)
	if err != nil {
		t.Fatal(err)
	}
	for _, rg := range f.Metadata().RowGroups {
		for _, c := range rg.Columns {
			md := c.MetaData
			pos := md.DataPageOffset
			if md.DictionaryPageOffset > 0 {
				pos = md.DictionaryPageOffset
			}
			end := pos + md.TotalCompressedSize
			for pos < end {
				var h format.PageHeader
				pr := new(thrift.CompactProtocol).NewReaderFromBytes(b[pos:end])
				if err := thrift.NewDecoder(pr).Decode(&h); err != nil {
					t.Fatal(err)
				}
				hl := int64(pr.BytesRead())
				r["page header"] = append(r["page header"], [2]int64{pos, pos + hl})
				r["page data"] = append(r["page data"], [2]int64{pos + hl, pos + hl + int64(h.CompressedPageSize)})
				pos += hl + int64(h.CompressedPageSize)
			}
			if md.BloomFilterOffset > 0 {
				r["bloom filter"] = append(r["bloom filter"], [2]int64{md.BloomFilterOffset, md.BloomFilterOffset + int64(md.BloomFilterLength)})
			}
			r["page index"] = append(r["page index"],
				[2]int64{c.ColumnIndexOffset, c.ColumnIndexOffset + int64(c.ColumnIndexLength)},
				[2]int64{c.OffsetIndexOffset, c.OffsetIndexOffset + int64(c.OffsetIndexLength)})
		}
	}
	return r
}

// TestColdObjectDamage damages a cold-only segment's Parquet object one bit
// at a time, densely in its footer, page headers, bloom filters and page
// index and sparsely in page data, and reads it through the engine: every
// read answers exactly or with a corruption error, never a wrong or
// silently missing record, and verify reports every damage that changed an
// answer (runDamage).
func TestColdObjectDamage(t *testing.T) {
	t.Parallel() // mostly waiting on fsync: the three damage tests overlap well
	f := newDamageFixture(t, "s")
	f.rowGroupRows = 100 // two row groups; the first byteRanges two checksum blocks
	f.build(t, func(e *Engine) []tiers.Record {
		recs := appendAll(t, e, "s", fixtureRecords(150, 3000))
		if err := e.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Offload(context.Background(), "s", 0, false); err != nil {
			t.Fatal(err)
		}
		return recs
	})
	e, err := f.open(f.root)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := e.catalog.Segment(context.Background(), "s", 0)
	e.Close(context.Background())
	if err != nil || seg.Placements != tiers.Of(tiers.Cold) || seg.Count != 150 {
		t.Fatalf("fixture: segment %+v, %v; want 150 records in cold only", seg, err)
	}
	f.seg = &seg
	f.queries = standardQueries(f.want, seg)
	file := filepath.Join("cold", filepath.FromSlash(cold.ObjectKey(seg)))
	b, err := os.ReadFile(filepath.Join(f.root, file))
	if err != nil {
		t.Fatal(err)
	}
	regions := parquetRegions(t, b)
	rng := rand.New(rand.NewPCG(10, 1))
	var flips []bitFlip
	for _, rn := range []struct {
		region string
		n      int
	}{{"magic+trailer", 96}, {"footer", 700}, {"page header", 500}, {"bloom filter", 350}, {"page index", 250}, {"page data", 200}} {
		flips = append(flips, regions[rn.region].sample(rng, rn.region, rn.n)...)
	}
	if testing.Short() {
		flips = flips[:min(300, len(flips))]
	}
	st := runDamage(t, f, damageTarget{name: "cold object", file: file, flips: flips, keepOpen: true,
		// Reads never trust a bloom filter whose checksum fails, so its
		// damage changes no answer of tierd's; but other engines use the
		// filter: verify must report every flip in it.
		mustReport: func(fl bitFlip) bool { return fl.Region == "bloom filter" }})
	if (!testing.Short() && st.flips < 2000) || st.changed == 0 || st.reported < st.changed {
		t.Fatalf("%d flips, %d changed an answer: the sample is too thin to mean anything", st.flips, st.changed)
	}
}
