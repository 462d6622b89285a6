package pqfile

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"

	"github.com/tierd/tierd/tiers"
)

// Format 2 rows are built and read as parquet.Row (one parquet.Value per
// leaf value, in column order) rather than through a Go struct: the typed
// columns vary per file, and a struct cannot tell a NULL value from an
// empty one, which format 2 must (an empty value is "" in value_bin).

// Leaf column indexes of format 2; typed column i is colTyped+i.
const (
	colOffset2 = iota
	colTS2
	colTSNanos2
	colKey2
	colTags2
	colValue2
	colValueBin2
	colTyped
)

// splitTS splits Unix ns into Unix µs (rounded down, also for times before
// 1970) and the nanoseconds after it (0..999), so that ts*1000 + nanos is
// exactly ns.
func splitTS(ns int64) (micros int64, nanos int32) {
	micros = ns / 1000
	if ns%1000 < 0 {
		micros--
	}
	// micros*1000 may wrap below MinInt64 near it; the difference is
	// still exact in two's complement.
	return micros, int32(ns - micros*1000)
}

// joinTS is splitTS's inverse; ok is false when micros and nanos are not
// what splitTS returns for any int64 (nanos out of range, or the sum out
// of int64's range).
func joinTS(micros int64, nanos int32) (ns int64, ok bool) {
	if nanos < 0 || nanos > 999 {
		return 0, false
	}
	ns = micros*1000 + int64(nanos)
	m, n := splitTS(ns)
	return ns, m == micros && n == nanos
}

// rowV2 is a format 2 row without typed columns, for parquet-go's struct
// path. A nil Value or ValueBin is NULL; an empty non-nil one is an empty
// value (parquet-go tests an optional slice's pointer, not its length).
// Value is a json.RawMessage because parquet-go v0.32.0 wraps an optional
// JSON []byte or string field in definition levels twice and panics on
// flush; json.RawMessage is exempt from the second wrap.
type rowV2 struct {
	Offset   int64           `parquet:"offset,delta"`
	TS       int64           `parquet:"ts,timestamp(microsecond:local),delta"`
	TSNanos  int32           `parquet:"ts_nanos,delta"`
	Key      string          `parquet:"key,dict"`
	Tags     []string        `parquet:"tags,list" parquet-element:",dict"`
	Value    json.RawMessage `parquet:"value,optional,json,plain"`
	ValueBin []byte          `parquet:"value_bin,optional,plain"`
}

// schemaV2Base is format 2's schema without typed columns, as rowV2's.
var schemaV2Base = parquet.SchemaOf(rowV2{})

// emptyValue is a non-nil empty slice: an empty value in value_bin.
var emptyValue = []byte{}

// addRowV2 appends r to batchV2 (format 2 without typed columns).
func (s *writeState) addRowV2(r *tiers.Record) {
	micros, nanos := splitTS(r.TS)
	v := emptyValue
	if len(r.Value) > 0 {
		v = s.keep(r.Value)
	}
	var tags []string
	if len(r.Tags) > 0 {
		ts := len(s.tags)
		s.tags = append(s.tags, r.Tags...)
		tags = s.tags[ts:len(s.tags):len(s.tags)]
	}
	row := rowV2{Offset: int64(r.Offset), TS: micros, TSNanos: nanos, Key: r.Key, Tags: tags}
	// A record whose JSON hint is set was checked where it was ingested
	// (tiers.Record.JSON), so the check is not done twice.
	if r.JSON || IsJSON(r.Value) {
		row.Value = v
	} else {
		row.ValueBin = v
	}
	s.batchV2 = append(s.batchV2, row)
}

// keep copies b into the arena and returns the copy (the iterator may
// reuse b's memory once add returns; parquet-go copies it at WriteRows).
func (s *writeState) keep(b []byte) []byte {
	start := len(s.arena)
	s.arena = append(s.arena, b...)
	return s.arena[start:len(s.arena):len(s.arena)]
}

func (s *writeState) keepString(v string) []byte {
	start := len(s.arena)
	s.arena = append(s.arena, v...)
	return s.arena[start:len(s.arena):len(s.arena)]
}

// projectJSON reports whether value goes to the value column (IsJSON) and
// sets projOut to its typed columns (all NULL when it is not JSON). A
// ValidatingProjector answers both in one pass over the value; another
// Projector is asked only for JSON values, after IsJSON.
func (s *writeState) projectJSON(value []byte) bool {
	if len(s.opts.Columns) == 0 {
		return IsJSON(value)
	}
	clear(s.projOut)
	if vp, ok := s.proj.(ValidatingProjector); ok {
		if !vp.ProjectValid(value, s.projOut) {
			clear(s.projOut) // not JSON: every typed column is NULL
			return false
		}
		return true
	}
	if !IsJSON(value) {
		return false
	}
	s.proj.Project(value, s.projOut)
	return true
}

// addRow appends r to the batch as a format 2 row.
func (s *writeState) addRow(r *tiers.Record) {
	var row parquet.Row
	if n := len(s.rows); n < cap(s.rows) {
		row = s.rows[:n+1][n][:0]
	}
	micros, nanos := splitTS(r.TS)
	row = append(row,
		parquet.Int64Value(int64(r.Offset)).Level(0, 0, colOffset2),
		parquet.Int64Value(micros).Level(0, 0, colTS2),
		parquet.Int32Value(nanos).Level(0, 0, colTSNanos2),
		parquet.ByteArrayValue(s.keepString(r.Key)).Level(0, 0, colKey2),
	)
	if len(r.Tags) == 0 {
		row = append(row, parquet.NullValue().Level(0, 0, colTags2))
	}
	for i, t := range r.Tags {
		rep := 1
		if i == 0 {
			rep = 0
		}
		row = append(row, parquet.ByteArrayValue(s.keepString(t)).Level(rep, 1, colTags2))
	}
	v := s.keep(r.Value)
	js := s.projectJSON(r.Value)
	if js {
		row = append(row,
			parquet.ByteArrayValue(v).Level(0, 1, colValue2),
			parquet.NullValue().Level(0, 0, colValueBin2))
	} else {
		row = append(row,
			parquet.NullValue().Level(0, 0, colValue2),
			parquet.ByteArrayValue(v).Level(0, 1, colValueBin2))
	}
	if len(s.opts.Columns) > 0 {
		for i := range s.opts.Columns {
			row = append(row, s.typedValue(i))
		}
	}
	s.rows = append(s.rows, row)
}

// typedValue is typed column i's Parquet value for the projection in
// s.projOut[i], counting a NULL as a miss.
func (s *writeState) typedValue(i int) parquet.Value {
	col := colTyped + i
	pv := &s.projOut[i]
	if !pv.Valid {
		s.misses[i]++
		return parquet.NullValue().Level(0, 0, col)
	}
	var v parquet.Value
	switch s.opts.Columns[i].Type {
	case TypeString:
		if !utf8.ValidString(pv.S) { // Parquet STRING is UTF-8
			s.misses[i]++
			return parquet.NullValue().Level(0, 0, col)
		}
		v = parquet.ByteArrayValue(s.keepString(pv.S))
	case TypeInt64, TypeTimestamp, TypeDecimal:
		v = parquet.Int64Value(pv.I)
	case TypeDouble:
		v = parquet.DoubleValue(pv.F)
	case TypeBool:
		v = parquet.BooleanValue(pv.B)
	default:
		panic(fmt.Sprintf("pqfile: column type %q", s.opts.Columns[i].Type)) // validated
	}
	return v.Level(0, 1, col)
}

// decodeRow2 turns one format 2 row into out, copying every byte (records
// own their bytes). It checks the row's shape: one value in each base
// column but tags, a list of strings in tags, ts_nanos in 0..999 and
// exactly one of value and value_bin set. Typed columns are skipped: tierd
// serves the record, not its projections.
func decodeRow2(pr parquet.Row, out *row) error {
	*out = row{}
	var seen [colTyped]int
	valueSet := 0
	var micros int64
	var nanos int32
	for _, v := range pr {
		c := v.Column()
		if c < 0 {
			return fmt.Errorf("value in column %d", c)
		}
		if c >= colTyped {
			continue
		}
		seen[c]++
		if c != colTags2 && seen[c] > 1 {
			return fmt.Errorf("column %d holds %d values in one row", c, seen[c])
		}
		switch c {
		case colOffset2, colTS2:
			if v.Kind() != parquet.Int64 {
				return fmt.Errorf("column %d holds a %s", c, v.Kind())
			}
			if c == colOffset2 {
				out.Offset = v.Int64()
			} else {
				micros = v.Int64()
			}
		case colTSNanos2:
			if v.Kind() != parquet.Int32 {
				return fmt.Errorf("ts_nanos holds a %s", v.Kind())
			}
			nanos = v.Int32()
		case colKey2:
			if v.Kind() != parquet.ByteArray {
				return fmt.Errorf("key holds a %s", v.Kind())
			}
			out.Key = string(v.ByteArray())
		case colTags2:
			if v.IsNull() {
				if seen[c] > 1 || v.RepetitionLevel() != 0 {
					return fmt.Errorf("a NULL in the tags list")
				}
				continue
			}
			if v.Kind() != parquet.ByteArray || (seen[c] == 1) != (v.RepetitionLevel() == 0) {
				return fmt.Errorf("tag %d: %s at repetition level %d", seen[c]-1, v.Kind(), v.RepetitionLevel())
			}
			out.Tags = append(out.Tags, string(v.ByteArray()))
		case colValue2, colValueBin2:
			if v.IsNull() {
				continue
			}
			if v.Kind() != parquet.ByteArray {
				return fmt.Errorf("column %d holds a %s", c, v.Kind())
			}
			valueSet++
			out.Value = append([]byte(nil), v.ByteArray()...)
		}
	}
	for c, n := range seen {
		if n == 0 {
			return fmt.Errorf("no value in column %d", c)
		}
	}
	if seen[colTags2] > 1 && len(out.Tags) != seen[colTags2] {
		return fmt.Errorf("a NULL in the tags list")
	}
	if valueSet != 1 {
		return fmt.Errorf("%d of value and value_bin are set, want exactly one", valueSet)
	}
	ts, ok := joinTS(micros, nanos)
	if !ok {
		return fmt.Errorf("ts %d µs + ts_nanos %d is not a time", micros, nanos)
	}
	out.TS = ts
	return nil
}
