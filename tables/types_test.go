package tables

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/tierd/tierd/cold/pqfile"
	"github.com/tierd/tierd/tiers"
)

// allTypes are typed columns of every type colproj writes.
var allTypes = []pqfile.Column{
	{Name: "s", Path: "$.s", Type: pqfile.TypeString},
	{Name: "i", Path: "$.i", Type: pqfile.TypeInt64},
	{Name: "d", Path: "$.d", Type: pqfile.TypeDouble},
	{Name: "b", Path: "$.b", Type: pqfile.TypeBool},
	{Name: "t", Path: "$.t", Type: pqfile.TypeTimestamp},
	{Name: "m", Path: "$.m", Type: pqfile.TypeDecimal, Precision: 18, Scale: 4},
}

// typesProjector projects allTypes' fields (the tests' stand-in for
// cold/colproj).
type typesProjector struct{}

func (typesProjector) Project(value []byte, out []pqfile.Value) {
	var m map[string]any
	err := json.Unmarshal(value, &m)
	for i := range out {
		out[i] = pqfile.Value{}
	}
	if err != nil {
		return
	}
	if v, ok := m["s"].(string); ok {
		out[0] = pqfile.Value{Valid: true, S: v}
	}
	if v, ok := m["i"].(float64); ok {
		out[1] = pqfile.Value{Valid: true, I: int64(v)}
	}
	if v, ok := m["d"].(float64); ok {
		out[2] = pqfile.Value{Valid: true, F: v}
	}
	if v, ok := m["b"].(bool); ok {
		out[3] = pqfile.Value{Valid: true, B: v}
	}
	if v, ok := m["t"].(string); ok {
		if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
			out[4] = pqfile.Value{Valid: true, I: ts.UnixMicro()}
		}
	}
	if v, ok := m["m"].(float64); ok {
		out[5] = pqfile.Value{Valid: true, I: int64(math.Round(v * 1e4))}
	}
}

// TestTypedColumnTypes: every typed column type maps to its Iceberg type,
// reads back through iceberg-go's scan, and has bounds that prune files.
func TestTypedColumnTypes(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	var recs []tiers.Record
	for o := range 20 {
		recs = append(recs, tiers.Record{Offset: uint64(o), TS: 20000*day + int64(o), Value: fmt.Appendf(nil,
			`{"s":"v%02d","i":%d,"d":%d.25,"b":%t,"t":"2026-01-%02dT10:00:00Z","m":%d.0125}`, o, o*1000, o, o%2 == 0, o+1, o)})
	}
	recs = append(recs, tiers.Record{Offset: 20, TS: 20000*day + 20, Value: []byte(`{"other":1}`)})
	src.add(putSegment(t, s, "types", recs, pqfile.Options{Columns: allTypes, Projector: typesProjector{}}))
	mustSync(t, p, "types")
	tbl := loadTable(t, p, "types")
	want := map[string]iceberg.Type{
		"s": iceberg.PrimitiveTypes.String, "i": iceberg.PrimitiveTypes.Int64, "d": iceberg.PrimitiveTypes.Float64,
		"b": iceberg.PrimitiveTypes.Bool, "t": iceberg.PrimitiveTypes.Timestamp, "m": iceberg.DecimalTypeOf(18, 4),
	}
	for name, typ := range want {
		f, ok := tbl.Schema().FindFieldByName(name)
		if !ok || !f.Type.Equals(typ) {
			t.Fatalf("column %s: %v %v, want %s", name, f.Type, ok, typ)
		}
	}
	at, err := tbl.Scan(table.WithSelectedFields("offset", "s", "i", "d", "b", "t", "m")).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	if at.NumRows() != 21 {
		t.Fatalf("scan: %d rows", at.NumRows())
	}
	got := map[string]string{}
	for c := range int(at.NumCols()) {
		name := at.Schema().Field(c).Name
		chunks := at.Column(c).Data().Chunks()
		var vals []string
		for _, ch := range chunks {
			for r := range ch.Len() {
				vals = append(vals, ch.ValueStr(r))
			}
		}
		got[name] = vals[3] + "|" + vals[20]
	}
	for name, w := range map[string]string{
		"s": "v03|(null)", "i": "3000|(null)", "d": "3.25|(null)", "b": "false|(null)",
		"t": "2026-01-04T10:00:00|(null)", "m": "3.0125|(null)",
	} {
		if !strings.HasPrefix(got[name], strings.SplitN(w, "|", 2)[0]) || !strings.HasSuffix(got[name], "|(null)") {
			t.Fatalf("column %s reads %q, want %q (all: %v)", name, got[name], w, got)
		}
	}
	// Bounds on a typed column prune: i above every value plans nothing.
	if n := len(plannedFiles(t, tbl, table.WithRowFilter(iceberg.GreaterThan(iceberg.Reference("i"), int64(1e6))))); n != 0 {
		t.Fatalf("filter on i above its upper bound planned %d files", n)
	}
	if n := len(plannedFiles(t, tbl, table.WithRowFilter(iceberg.EqualTo(iceberg.Reference("s"), "v07")))); n != 1 {
		t.Fatalf("filter on s planned %d files, want 1", n)
	}
}

// TestBinaryThenJSONValues: a binary value followed by JSON values reads
// back with exactly one of value and value_bin set per row. Offsets 5..9 of
// records: 6 binary (with tags), 7..9 JSON, no empty value; a writer that
// carried value_bin over to the following rows made the scan see both.
func TestBinaryThenJSONValues(t *testing.T) {
	s := fileStore(t)
	src := newSource()
	p := open(t, s, src)
	a, b := records(5, 5, 20000*day, 1000), records(215, 5, 20000*day+1e9, 1000)
	src.add(putSegment(t, s, "binjson", a, pqfile.Options{}), putSegment(t, s, "binjson", b, pqfile.Options{}))
	mustSync(t, p, "binjson")
	sameRecords(t, scanRecords(t, loadTable(t, p, "binjson")), append(a, b...))
}
