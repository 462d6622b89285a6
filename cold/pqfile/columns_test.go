package pqfile

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go/format"

	"github.com/tierd/tierd/tiers"
)

// testColumns are typed columns of every type, over the fields jsonRecords
// writes.
var testColumns = []Column{
	{Name: "px", Path: "$.px", Type: TypeDouble},
	{Name: "qty", Path: "$.qty", Type: TypeInt64},
	{Name: "side", Path: "$.side", Type: TypeString},
	{Name: "ok", Path: "$.ok", Type: TypeBool},
	{Name: "filled_at", Path: "$.at", Type: TypeTimestamp},
	{Name: "amt", Path: "$.amount", Type: TypeDecimal, Precision: 18, Scale: 4},
}

// columnOptions are Options writing testColumns with testProjector.
func columnOptions(o Options) Options {
	o.Columns = testColumns
	o.Projector = testProjector{cols: testColumns}
	return o
}

// jsonRecords is n records from base whose values are mostly JSON objects
// with the fields testColumns project, each field now and then missing or
// of another type, and between them the values that are not JSON objects:
// binary, empty, JSON scalars, JSON with surrounding whitespace, JSON text
// that is not UTF-8.
func jsonRecords(n int, base uint64) []tiers.Record {
	recs := make([]tiers.Record, n)
	t0 := time.Date(2026, 11, 21, 23, 59, 59, 0, time.UTC)
	for i := range recs {
		r := &recs[i]
		r.Offset = base + uint64(i)
		r.TS = t0.UnixNano() + int64(i)*1_000_003 // crosses midnight, nanosecond digits
		r.Key = []string{"IF2406", "IC2406", ""}[i%3]
		if i%4 == 0 {
			r.Tags = []string{"fill", "buy"}
		}
		px := strconv.FormatFloat(3500+float64(i%50)*0.25, 'f', -1, 64)
		fields := []string{
			`"px":` + px,
			`"qty":` + strconv.Itoa(i%9-4),
			`"side":"` + []string{"buy", "sell", "ß-ünïcode"}[i%3] + `"`,
			`"ok":` + strconv.FormatBool(i%2 == 0),
			`"at":"` + t0.Add(time.Duration(i)*time.Millisecond+7*time.Microsecond).Format(time.RFC3339Nano) + `"`,
			`"amount":` + fmt.Sprintf("%d.%04d", i%1000, i%10000),
		}
		switch i % 11 {
		case 1:
			fields[0] = `"px":"not a number"` // wrong type
		case 2:
			fields[1] = `"qty":1.5` // not an integer
		case 3:
			fields = fields[2:] // px and qty missing
		case 4:
			fields[5] = `"amount":0.00001` // does not fit scale 4
		case 5:
			fields[3] = `"ok":"true"`
		}
		r.Value = []byte("{" + strings.Join(fields, ",") + "}")
		switch i % 13 {
		case 1:
			r.Value = []byte{0xff, 0x00, 0x7b} // binary
		case 2:
			r.Value = nil
		case 3:
			r.Value = []byte(" \t{\"px\": 1e3}\n") // whitespace kept byte for byte
		case 4:
			r.Value = []byte(`42`)
		case 5:
			r.Value = []byte("{\"side\":\"\xff\"}") // valid JSON syntax, not UTF-8
		case 6:
			r.Value = []byte(`null`)
		case 7:
			r.Value = []byte(`{"px":`) // truncated JSON
		}
	}
	return recs
}

// TestTypedColumnsRoundTrip: a file with typed columns reads back the same
// records, Verify passes, tierd.columns names the columns, and the misses
// reported are the rows the projection left NULL.
func TestTypedColumnsRoundTrip(t *testing.T) {
	recs := jsonRecords(5000, 77)
	reported := map[string]int64{}
	opts := columnOptions(Options{RowGroupRows: 1500})
	opts.OnProjection = func(c string, n int64) { reported[c] += n }
	b, info := writeBytes(t, "s", recs, opts)
	r := openBytes(t, b)
	sameRecords(t, collect(t, r.Scan(context.Background(), tiers.AllRecords())), recs)
	if err := r.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Columns()) != fmt.Sprint(testColumns) {
		t.Fatalf("Reader.Columns = %v", r.Columns())
	}
	if v, _ := r.file.Lookup(MetaColumns); v != encodeColumns(testColumns) {
		t.Fatalf("%s = %s", MetaColumns, v)
	}
	want := make([]int64, len(testColumns))
	out := make([]Value, len(testColumns))
	for _, rec := range recs {
		clear(out)
		if IsJSON(rec.Value) {
			testProjector{cols: testColumns}.Project(rec.Value, out)
		}
		for i := range out {
			if !out[i].Valid {
				want[i]++
			}
		}
	}
	for i, c := range testColumns {
		if info.ColumnMisses[i] != want[i] || reported[c.Name] != want[i] {
			t.Errorf("column %s: Info says %d misses, OnProjection %d, want %d", c.Name, info.ColumnMisses[i], reported[c.Name], want[i])
		}
		if want[i] == 0 || want[i] == int64(len(recs)) {
			t.Errorf("column %s: %d misses of %d: the test values do not exercise it", c.Name, want[i], len(recs))
		}
	}
	// A query from the middle seeks through the typed columns too.
	q := tiers.AllRecords()
	q.From = 77 + 3210
	sameRecords(t, collect(t, r.Scan(context.Background(), q)), recs[3210:])
}

// TestWriteRejectsColumns: typed columns are format 2 only, need a
// projector, and must be valid; nothing is written for a bad set.
func TestWriteRejectsColumns(t *testing.T) {
	recs := jsonRecords(3, 0)
	p := testProjector{cols: testColumns}
	tests := map[string]Options{
		"format 1":            {Version: 1, Columns: testColumns, Projector: p},
		"format 3":            {Version: 3},
		"no projector":        {Columns: testColumns},
		"base column name":    {Columns: []Column{{Name: "ts", Path: "$.ts", Type: TypeTimestamp}}, Projector: p},
		"hive column name":    {Columns: []Column{{Name: "date", Path: "$.d", Type: TypeString}}, Projector: p},
		"upper case":          {Columns: []Column{{Name: "Px", Path: "$.px", Type: TypeDouble}}, Projector: p},
		"twice":               {Columns: []Column{testColumns[0], testColumns[0]}, Projector: p},
		"unknown type":        {Columns: []Column{{Name: "x", Path: "$.x", Type: "float"}}, Projector: p},
		"decimal precision":   {Columns: []Column{{Name: "x", Path: "$.x", Type: TypeDecimal, Precision: 19}}, Projector: p},
		"scale past precison": {Columns: []Column{{Name: "x", Path: "$.x", Type: TypeDecimal, Precision: 4, Scale: 5}}, Projector: p},
	}
	for name, o := range tests {
		if _, err := Write(context.Background(), io.Discard, "s", seqOf(recs), o); err == nil {
			t.Errorf("%s: Write succeeded", name)
		}
	}
}

// TestColumnsMetadataDamage: the reader expects exactly the schema
// tierd.columns describes; a tierd.columns that disagrees with the file's
// columns (even with a recomputed metadata checksum) or is not canonical
// is not a segment, and a changed one without a new checksum fails the
// checksum.
func TestColumnsMetadataDamage(t *testing.T) {
	good, _ := writeBytes(t, "s", jsonRecords(300, 0), columnOptions(Options{RowGroupRows: 100}))
	setCols := func(v string, resum bool) func(*format.FileMetaData) {
		return func(md *format.FileMetaData) {
			kv := md.KeyValueMetadata
			for i := range kv {
				if kv[i].Key == MetaColumns {
					if v == "" {
						kv = append(kv[:i], kv[i+1:]...)
					} else {
						kv[i].Value = v
					}
					break
				}
			}
			if resum {
				sum, err := metaChecksum(kv)
				if err != nil {
					t.Fatal(err)
				}
				for i := range kv {
					if kv[i].Key == MetaChecksum {
						kv[i].Value = sum
					}
				}
			}
			md.KeyValueMetadata = kv
		}
	}
	changedType := append([]Column(nil), testColumns...)
	changedType[0].Type = TypeInt64
	tests := []struct {
		name string
		edit func(*format.FileMetaData)
		want error
	}{
		{"a column dropped, checksum redone", setCols(encodeColumns(testColumns[1:]), true), ErrNotSegment},
		{"a type changed, checksum redone", setCols(encodeColumns(changedType), true), ErrNotSegment},
		{"no typed columns, checksum redone", setCols("[]", true), ErrNotSegment},
		{"removed, checksum redone", setCols("", true), ErrNotSegment},
		{"not canonical, checksum redone", setCols(" "+encodeColumns(testColumns), true), ErrNotSegment},
		{"not JSON, checksum redone", setCols("{", true), ErrNotSegment},
		{"a column dropped", setCols(encodeColumns(testColumns[1:]), false), ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCorrupt(t, openErr(rewriteFooter(t, good, tt.edit)), tt.want)
		})
	}
}

// TestValueShapeChecked: a row with both or neither of value and value_bin
// set, or ts_nanos out of 0..999, is corruption, not a record (decodeRow2).
func TestValueShapeChecked(t *testing.T) {
	for _, tc := range []struct {
		name     string
		micros   int64
		nanos    int32
		ok       bool
		tsWanted int64
	}{
		{"epoch", 0, 0, true, 0},
		{"before 1970", -1, 999, true, -1},
		{"nanos 1000", 5, 1000, false, 0},
		{"nanos negative", 5, -1, false, 0},
		{"past int64", 9_223_372_036_854_775, 808, false, 0},
		{"min int64", -9_223_372_036_854_776, 192, true, -9_223_372_036_854_775_808},
	} {
		ns, ok := joinTS(tc.micros, tc.nanos)
		if ok != tc.ok || (ok && ns != tc.tsWanted) {
			t.Errorf("%s: joinTS(%d, %d) = %d, %t", tc.name, tc.micros, tc.nanos, ns, ok)
		}
		if ok {
			if m, n := splitTS(ns); m != tc.micros || n != tc.nanos {
				t.Errorf("%s: splitTS(%d) = %d, %d", tc.name, ns, m, n)
			}
		}
	}
	// A row built by the writer decodes; the same row with value and
	// value_bin both set or both NULL does not.
	var s writeState
	s.opts = Options{}
	s.addRow(&tiers.Record{Offset: 3, TS: 1_700_000_000_123_456_789, Key: "k", Tags: []string{"a", ""}, Value: []byte(`{"a":1}`)})
	pr := s.rows[0]
	var got row
	if err := decodeRow2(pr, &got); err != nil || got.TS != 1_700_000_000_123_456_789 || string(got.Value) != `{"a":1}` || len(got.Tags) != 2 {
		t.Fatalf("decodeRow2 = %+v, %v", got, err)
	}
	both := pr.Clone()
	both[colValueBin2+1] = both[colValue2+1].Level(0, 1, colValueBin2) // tags take two values
	if err := decodeRow2(both, &got); err == nil {
		t.Fatal("a row with value and value_bin set decoded")
	}
	neither := pr.Clone()
	neither[colValue2+1] = neither[colValueBin2+1]
	neither[colValue2+1] = neither[colValue2+1].Level(0, 0, colValue2)
	if err := decodeRow2(neither, &got); err == nil {
		t.Fatal("a row with neither value nor value_bin decoded")
	}
}

// TestDuckDBTypedColumns: in DuckDB, value->>'…' extracts the fields of
// JSON values, every typed column equals the JSON field it was projected
// from where that field has the column's type and is NULL elsewhere, the
// columns have their SQL types, and binary values come back from value_bin
// byte for byte.
func TestDuckDBTypedColumns(t *testing.T) {
	recs := jsonRecords(3000, 1000)
	path := filepath.Join(t.TempDir(), "seg.parquet")
	writeFile(t, path, "IF2406", recs, columnOptions(Options{RowGroupRows: 1000}))
	src := sqlString(path)
	types := duckdb(t, "--sql", fmt.Sprintf(`SELECT typeof(px) AS px, typeof(qty) AS qty, typeof(side) AS side, typeof(ok) AS ok,
		typeof(filled_at) AS at, typeof(amt) AS amt, typeof(value) AS value, typeof(value_bin) AS value_bin FROM read_parquet(%s) LIMIT 1`, src))
	wantTypes := map[string]string{"px": "DOUBLE", "qty": "BIGINT", "side": "VARCHAR", "ok": "BOOLEAN", "at": "TIMESTAMP", "amt": "DECIMAL(18,4)", "value": "JSON", "value_bin": "BLOB"}
	for k, v := range wantTypes {
		if types[0][k] != v {
			t.Errorf("DuckDB types %s as %v, want %s", k, types[0][k], v)
		}
	}
	// Every row: the typed column is NULL exactly when the JSON field is
	// missing or of another type, and equal to it otherwise.
	rows := duckdb(t, "--sql", fmt.Sprintf(`
		SELECT count(*)::VARCHAR AS n,
		  count(*) FILTER (WHERE px IS DISTINCT FROM
		    CASE WHEN json_type(value, '$.px') IN ('DOUBLE', 'BIGINT', 'UBIGINT') THEN (value->>'px')::DOUBLE END)::VARCHAR AS px_bad,
		  count(*) FILTER (WHERE qty IS DISTINCT FROM
		    CASE WHEN json_type(value, '$.qty') IN ('BIGINT', 'UBIGINT') THEN (value->>'qty')::BIGINT END)::VARCHAR AS qty_bad,
		  count(*) FILTER (WHERE side IS DISTINCT FROM
		    CASE WHEN json_type(value, '$.side') = 'VARCHAR' THEN value->>'side' END)::VARCHAR AS side_bad,
		  count(*) FILTER (WHERE ok IS DISTINCT FROM
		    CASE WHEN json_type(value, '$.ok') = 'BOOLEAN' THEN (value->>'ok')::BOOLEAN END)::VARCHAR AS ok_bad,
		  count(*) FILTER (WHERE amt IS DISTINCT FROM
		    CASE WHEN json_type(value, '$.amount') IN ('DOUBLE', 'BIGINT', 'UBIGINT')
		          AND (value->>'amount')::DECIMAL(38,10) = (value->>'amount')::DECIMAL(18,4)
		         THEN (value->>'amount')::DECIMAL(18,4) END)::VARCHAR AS amt_bad,
		  count(px)::VARCHAR AS px_n, count(qty)::VARCHAR AS qty_n, count(side)::VARCHAR AS side_n,
		  count(ok)::VARCHAR AS ok_n, count(filled_at)::VARCHAR AS at_n, count(amt)::VARCHAR AS amt_n,
		  count(*) FILTER (WHERE value->>'px' IS NOT NULL)::VARCHAR AS px_json_n
		FROM read_parquet(%s)`, src))
	got := rows[0]
	for _, c := range []string{"px", "qty", "side", "ok", "amt"} {
		if got[c+"_bad"] != "0" {
			t.Errorf("column %s differs from its JSON field in %v of %v rows", c, got[c+"_bad"], got["n"])
		}
	}
	for _, c := range []string{"px", "qty", "side", "ok", "at", "amt", "px_json"} {
		if n, _ := strconv.Atoi(got[c+"_n"].(string)); n < len(recs)/3 {
			t.Errorf("only %d of %d rows have %s", n, len(recs), c)
		}
	}
	// at: the instant of the RFC 3339 field, to the microsecond; and each
	// value byte for byte, from value (JSON) or value_bin.
	per := duckdb(t, "--sql", fmt.Sprintf(`SELECT "offset"::VARCHAR AS o, epoch_us(filled_at)::VARCHAR AS at_us,
		coalesce(hex(encode(value::VARCHAR)), hex(value_bin)) AS value_hex FROM read_parquet(%s) ORDER BY "offset"`, src))
	for i, r := range recs {
		got := per[i]
		if got["value_hex"] != fmt.Sprintf("%X", r.Value) {
			t.Fatalf("offset %d: DuckDB value %v, want %X", r.Offset, got["value_hex"], r.Value)
		}
		out := make([]Value, len(testColumns))
		if IsJSON(r.Value) {
			testProjector{cols: testColumns}.Project(r.Value, out)
		}
		want := any(nil)
		if out[4].Valid {
			want = strconv.FormatInt(out[4].I, 10)
		}
		if got["at_us"] != want {
			t.Fatalf("offset %d: DuckDB at = %v µs, want %v (value %s)", r.Offset, got["at_us"], want, r.Value)
		}
	}
}

// FuzzDecodeColumns: tierd.columns accepts only a canonical, valid column
// list, and the schema of one never panics.
func FuzzDecodeColumns(f *testing.F) {
	f.Add(encodeColumns(testColumns))
	f.Add("[]")
	f.Add(`[{"name":"x","path":"$.x","type":"decimal","precision":18,"scale":18}]`)
	f.Fuzz(func(t *testing.T, s string) {
		cols, err := decodeColumns(s)
		if err != nil {
			return
		}
		if encodeColumns(cols) != s || validateColumns(cols) != nil {
			t.Fatalf("accepted %q", s)
		}
		if got := len(schemaV2(cols).Columns()); got != colTyped+len(cols) {
			t.Fatalf("%q: schema of %d leaves", s, got)
		}
	})
}
