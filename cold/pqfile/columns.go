package pqfile

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	"github.com/parquet-go/parquet-go"
)

// Typed columns (format 2). A policy may declare columns projected from
// JSON values (package cold/colproj parses the paths and projects); the
// writer stores each as an optional Parquet column after the base columns,
// in the order given, and records their definitions in tierd.columns so a
// reader knows the schema to expect. tierd serves the record, never the
// typed values: they are there for other engines' filters.
//
// Column, Value and Projector mirror cold/colproj's Column, Value and
// (*Projector).Project field for field, so that once that package is in
// the tree these become aliases (type Column = colproj.Column, …) without
// changing a caller.

// ColumnType is the type of a typed column.
type ColumnType string

// Column types and their Parquet columns.
const (
	TypeString    ColumnType = "string"    // BYTE_ARRAY STRING
	TypeInt64     ColumnType = "int64"     // INT64
	TypeDouble    ColumnType = "double"    // DOUBLE
	TypeBool      ColumnType = "bool"      // BOOLEAN
	TypeTimestamp ColumnType = "timestamp" // INT64 TIMESTAMP(MICROS, isAdjustedToUTC=false): Unix µs, UTC
	TypeDecimal   ColumnType = "decimal"   // INT64 DECIMAL(precision, scale), 1 ≤ precision ≤ 18
)

// Column is one typed column: its name in the file, the JSON path it is
// projected from, its type and, for decimals, precision and scale. The
// JSON form is what tierd.columns stores.
type Column struct {
	Name      string     `json:"name"`
	Path      string     `json:"path"`
	Type      ColumnType `json:"type"`
	Precision int        `json:"precision,omitempty"`
	Scale     int        `json:"scale,omitempty"`
}

// Value is one projected value: Valid false means NULL (the field is
// missing, has another type, or the value is not JSON). I holds int64,
// timestamp (Unix µs, UTC) and decimal (the unscaled value) columns; F
// double; S string; B bool.
type Value struct {
	Valid bool
	I     int64
	F     float64
	S     string
	B     bool
}

// Projector projects a JSON value onto the typed columns: out has one
// element per column, in Options.Columns' order. It must not keep value
// or panic, whatever the bytes. (*colproj.Projector).Project is one.
type Projector interface {
	Project(value []byte, out []Value)
}

// NewProjector makes the Projector Write uses when Options.Columns is set
// and Options.Projector is nil; until cold/colproj is wired in here it is
// nil, and such a Write fails.
var NewProjector func(cols []Column) (Projector, error)

// maxColumns bounds the typed columns of a file, so a damaged or hostile
// tierd.columns cannot make a reader build a huge schema.
const maxColumns = 256

// baseColumns are the names of format 2's base columns and the hive
// partition columns engines add, which a typed column may not take.
var baseColumns = map[string]bool{
	ColOffset: true, ColTS: true, ColTSNanos: true, ColKey: true, ColTags: true,
	ColValue: true, ColValueBin: true, "date": true, "stream": true,
}

// validateColumns checks what the schema depends on: names unique, of the
// form [a-z_][a-z0-9_]{0,63} and not a base column; a known type; a
// decimal's precision in 1..18 and scale in 0..precision. (colproj checks
// the paths; pqfile only records them.)
func validateColumns(cols []Column) error {
	if len(cols) > maxColumns {
		return fmt.Errorf("%d typed columns, at most %d", len(cols), maxColumns)
	}
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		if !validColumnName(c.Name) {
			return fmt.Errorf("column %d: name %q is not [a-z_][a-z0-9_]{0,63}", i, c.Name)
		}
		if baseColumns[c.Name] {
			return fmt.Errorf("column %d: name %q is taken by a base column", i, c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("column %d: name %q appears twice", i, c.Name)
		}
		seen[c.Name] = true
		switch c.Type {
		case TypeString, TypeInt64, TypeDouble, TypeBool, TypeTimestamp:
			if c.Precision != 0 || c.Scale != 0 {
				return fmt.Errorf("column %q: precision and scale are for decimals", c.Name)
			}
		case TypeDecimal:
			if c.Precision < 1 || c.Precision > 18 || c.Scale < 0 || c.Scale > c.Precision {
				return fmt.Errorf("column %q: decimal(%d, %d): want 1 ≤ precision ≤ 18, 0 ≤ scale ≤ precision", c.Name, c.Precision, c.Scale)
			}
		default:
			return fmt.Errorf("column %q: unknown type %q", c.Name, c.Type)
		}
	}
	return nil
}

func validColumnName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// encodeColumns renders tierd.columns: the JSON array of cols ("[]" for
// none).
func encodeColumns(cols []Column) string {
	if len(cols) == 0 {
		return "[]"
	}
	b, err := json.Marshal(cols)
	if err != nil {
		panic(err) // cannot happen: plain strings and ints
	}
	return string(b)
}

// decodeColumns parses tierd.columns and validates it. It accepts only the
// form encodeColumns writes (it re-encodes and compares), so one file's
// schema has one spelling.
func decodeColumns(s string) ([]Column, error) {
	if len(s) > 64<<10 {
		return nil, fmt.Errorf("%s of %d bytes", MetaColumns, len(s))
	}
	var cols []Column
	if err := json.Unmarshal([]byte(s), &cols); err != nil {
		return nil, fmt.Errorf("%s: %v", MetaColumns, err)
	}
	if err := validateColumns(cols); err != nil {
		return nil, fmt.Errorf("%s: %v", MetaColumns, err)
	}
	if encodeColumns(cols) != s {
		return nil, fmt.Errorf("%s is not in canonical form", MetaColumns)
	}
	return cols, nil
}

// schemaV2 returns the Parquet schema of format 2 with cols as its typed
// columns. The schema is built from a struct type made at run time so that
// parquet-go keeps the columns in the order given (parquet.Group sorts
// them by name) and applies the same tags as format 1's row type.
func schemaV2(cols []Column) *parquet.Schema {
	fields := []reflect.StructField{
		{Name: "Offset", Type: reflect.TypeFor[int64](), Tag: `parquet:"offset,delta"`},
		{Name: "TS", Type: reflect.TypeFor[int64](), Tag: `parquet:"ts,timestamp(microsecond:local),delta"`},
		{Name: "TSNanos", Type: reflect.TypeFor[int32](), Tag: `parquet:"ts_nanos,delta"`},
		{Name: "Key", Type: reflect.TypeFor[string](), Tag: `parquet:"key,dict"`},
		{Name: "Tags", Type: reflect.TypeFor[[]string](), Tag: `parquet:"tags,list" parquet-element:",dict"`},
		{Name: "Value", Type: reflect.TypeFor[[]byte](), Tag: `parquet:"value,optional,json,plain"`},
		{Name: "ValueBin", Type: reflect.TypeFor[[]byte](), Tag: `parquet:"value_bin,optional,plain"`},
	}
	for i, c := range cols {
		f := reflect.StructField{Name: "C" + strconv.Itoa(i)}
		tag := c.Name + ",optional"
		switch c.Type {
		case TypeString:
			f.Type, tag = reflect.TypeFor[string](), tag+",dict"
		case TypeInt64:
			f.Type = reflect.TypeFor[int64]()
		case TypeDouble:
			f.Type = reflect.TypeFor[float64]()
		case TypeBool:
			f.Type = reflect.TypeFor[bool]()
		case TypeTimestamp:
			f.Type, tag = reflect.TypeFor[int64](), tag+",timestamp(microsecond:local)"
		case TypeDecimal:
			f.Type, tag = reflect.TypeFor[int64](), tag+fmt.Sprintf(",decimal(%d:%d)", c.Scale, c.Precision)
		default:
			panic(fmt.Sprintf("pqfile: column type %q", c.Type)) // validateColumns ran first
		}
		f.Tag = reflect.StructTag(`parquet:"` + tag + `"`)
		fields = append(fields, f)
	}
	return parquet.SchemaOf(reflect.New(reflect.StructOf(fields)).Elem().Interface())
}
