package pqfile

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	"github.com/parquet-go/parquet-go"

	"github.com/tierd/tierd/cold/colproj"
)

// Typed columns (format 2). A policy may declare columns projected from
// JSON values (package cold/colproj parses the paths and projects); the
// writer stores each as an optional Parquet column after the base columns,
// in the order given, and records their definitions in tierd.columns so a
// reader knows the schema to expect. tierd serves the record, never the
// typed values: they are there for other engines' filters.
//
// Column, Value and the column types are cold/colproj's (a package with no
// dependencies), so the definitions a policy validated are the ones the
// file records and a reader checks, with one set of rules.

// ColumnType is the type of a typed column.
type ColumnType = colproj.Type

// Column types and their Parquet columns.
const (
	TypeString    = colproj.String    // BYTE_ARRAY STRING
	TypeInt64     = colproj.Int64     // INT64
	TypeDouble    = colproj.Double    // DOUBLE
	TypeBool      = colproj.Bool      // BOOLEAN
	TypeTimestamp = colproj.Timestamp // INT64 TIMESTAMP(MICROS, isAdjustedToUTC=false): Unix µs, UTC
	TypeDecimal   = colproj.Decimal   // INT64 DECIMAL(precision, scale), 1 ≤ precision ≤ 18
)

// Column is one typed column: its name in the file, the JSON path it is
// projected from, its type and, for decimals, precision and scale
// (tierd.columns stores them, see columnJSON).
type Column = colproj.Column

// Value is one projected value: Valid false means NULL (the field is
// missing, has another type, or the value is not JSON).
type Value = colproj.Value

// Projector projects a JSON value onto the typed columns: out has one
// element per column, in Options.Columns' order. It must not keep value
// or panic, whatever the bytes. *colproj.Projector is one.
type Projector interface {
	Project(value []byte, out []Value)
}

// ValidatingProjector is a Projector that also reports whether value is
// JSON, exactly as IsJSON does, from the same pass (*colproj.Projector's
// ProjectValid): the writer then reads each value once, not twice. It is
// given every value, JSON or not, and must set out to NULLs for the rest.
type ValidatingProjector interface {
	Projector
	ProjectValid(value []byte, out []Value) bool
}

// validateColumns checks column definitions with colproj's rules (names,
// paths, types, decimal precision and scale, at most colproj.MaxColumns),
// so a damaged or hostile tierd.columns cannot make a reader build a huge
// or odd schema.
func validateColumns(cols []Column) error { return colproj.Validate(cols) }

// columnJSON is one element of tierd.columns: its own type, so that the
// stored form stays what docs/format/parquet.md says whatever JSON tags
// Column carries.
type columnJSON struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	Type      string `json:"type"`
	Precision int    `json:"precision,omitempty"`
	Scale     int    `json:"scale,omitempty"`
}

// encodeColumns renders tierd.columns: the JSON array of cols ("[]" for
// none), precision and scale only when not zero.
func encodeColumns(cols []Column) string {
	js := make([]columnJSON, len(cols))
	for i, c := range cols {
		js[i] = columnJSON{Name: c.Name, Path: c.Path, Type: string(c.Type), Precision: c.Precision, Scale: c.Scale}
	}
	b, err := json.Marshal(js)
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
	var js []columnJSON
	if err := json.Unmarshal([]byte(s), &js); err != nil {
		return nil, fmt.Errorf("%s: %v", MetaColumns, err)
	}
	cols := make([]Column, len(js))
	for i, c := range js {
		cols[i] = Column{Name: c.Name, Path: c.Path, Type: ColumnType(c.Type), Precision: c.Precision, Scale: c.Scale}
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
	if len(cols) == 0 {
		return schemaV2Base // built once
	}
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
