// Package colproj projects typed columns out of JSON record values: a
// policy declares columns (`{name: px, path: $.px, type: double}`), and the
// cold tier writes each as a real Parquet column beside the raw value, so
// engines filter on them without parsing JSON.
//
// A Projector reads each value once for all of its columns (a hand-written
// scanner that also validates the whole value, exactly as utf8.Valid and
// json.Valid together would), and does bounded work on any input: time
// linear in the value's length, nesting at most encoding/json's 10000
// levels, no allocation besides string results. A value that is not JSON,
// lacks the field, holds another type or a number the column cannot hold
// exactly projects to NULL (Value.Valid false) and counts as a miss; the
// raw value is always kept in the file, so nothing is lost.
//
// Semantics per type (and why):
//
//   - string: a JSON string, unescaped as encoding/json does (a lone UTF-16
//     surrogate escape becomes U+FFFD, so the column is always valid UTF-8).
//   - int64: a JSON number written as an integer (no fraction, no exponent)
//     within int64's range. 1.0 and 1e3 are misses: the column promises
//     integers, and a producer writing 1.0 is writing a double.
//   - double: any JSON number, rounded to the nearest float64 as every JSON
//     parser does (so it is inexact for long decimals: use decimal for
//     money). A number beyond float64's range (1e400) is a miss, not ±Inf.
//   - bool: true or false.
//   - timestamp: an RFC 3339 string, "2026-12-02T08:15:00.123456789+01:00"
//     (T, t or a space between date and time; Z, z or ±hh:mm; 0 to 9
//     fraction digits), stored as microseconds since the Unix epoch in UTC
//     (Parquet TIMESTAMP(MICROS, isAdjustedToUTC=false) holding the UTC wall
//     clock, like the base ts column). Sub-microsecond digits are truncated
//     toward the past (floor, as ts = floor(ts_ns/1000)). A leap second
//     (:60), an impossible date (02-30) or an offset beyond ±23:59 is a
//     miss. Numbers are misses: an epoch number's unit (s, ms, µs, ns)
//     cannot be known; declare it int64 and convert in SQL.
//   - decimal(p, s): a JSON number, or a string holding a JSON number
//     ("12.50", as money is often sent to dodge float rounding), stored as
//     the unscaled int64 (12.50 with scale 4 is 125000). It must fit
//     exactly: more significant fraction digits than s (1.23456 with scale
//     4) or more than p digits in all is a miss, never silently rounded or
//     clipped. Trailing zeros and exponents are fine (1.2300, 1.5e2).
//
// JSON null projects to NULL without counting as a miss: the field is
// present and says "no value", which NULL states exactly. A duplicate key on
// a column's path ({"px":1,"px":2}) makes the column NULL and a miss:
// parsers disagree on which one counts (encoding/json and JavaScript take
// the last, others the first), so no answer would be safe.
package colproj

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Type is a column's type: how a JSON value is read and which Parquet type
// holds it.
type Type string

// The column types.
const (
	String    Type = "string"    // BYTE_ARRAY (STRING)
	Int64     Type = "int64"     // INT64
	Double    Type = "double"    // DOUBLE
	Bool      Type = "bool"      // BOOLEAN
	Timestamp Type = "timestamp" // INT64 TIMESTAMP(MICROS, isAdjustedToUTC=false)
	Decimal   Type = "decimal"   // INT64 DECIMAL(Precision, Scale)
)

// Types lists every Type, in the order messages name them.
func Types() []Type { return []Type{String, Int64, Double, Bool, Timestamp, Decimal} }

// Limits of a column list, so that a configuration cannot make each record's
// projection or each file's schema unboundedly large.
const (
	// MaxColumns is the most columns one policy may declare.
	MaxColumns = 256
	// MaxPathBytes is the longest path text.
	MaxPathBytes = 1024
	// MaxPathSteps is the most steps (keys and indexes) in one path.
	MaxPathSteps = 32
	// MaxIndex is the largest array index a path may name.
	MaxIndex = 1 << 20
	// MaxPrecision is decimal's largest precision: the unscaled value is
	// an int64 (Parquet DECIMAL over INT64 holds at most 18 digits).
	MaxPrecision = 18
	// MaxNameBytes is the longest column name.
	MaxNameBytes = 64
)

// BaseColumns are the names of the columns every cold file has (and the
// hive partition columns engines add, date and stream): a typed column may
// not take one.
var BaseColumns = []string{"offset", "ts", "ts_nanos", "key", "tags", "value", "value_bin", "date", "stream"}

// Column is one typed column: Name in the Parquet file and the table,
// projected from the JSON value at Path as Type. Precision and Scale are
// decimal's and must be zero for the other types. Its JSON form is what
// the cold file's metadata (tierd.columns) records.
type Column struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	Type      Type   `json:"type"`
	Precision int    `json:"precision,omitempty"`
	Scale     int    `json:"scale,omitempty"`
}

// ErrInvalid is wrapped by every *FieldError.
var ErrInvalid = errors.New("colproj: invalid column")

// FieldError is one problem with a column definition, naming the field at
// fault so that a configuration error can point at its line.
type FieldError struct {
	// Index is the column's position in the list given to Validate or
	// Problems; -1 from Column.Validate.
	Index int
	// Field is "name", "path", "type", "precision" or "scale"; "" for the
	// list as a whole (too many columns).
	Field string
	Msg   string
}

// Error renders "columns[i].field: msg".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString("colproj: ")
	if e.Index >= 0 {
		fmt.Fprintf(&b, "columns[%d]", e.Index)
		if e.Field != "" {
			b.WriteByte('.')
		}
	}
	if e.Field != "" {
		b.WriteString(e.Field)
	}
	if e.Index >= 0 || e.Field != "" {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Validate checks one column on its own (name, path, type, precision,
// scale); the error joins a *FieldError per problem.
func (c Column) Validate() error {
	return join(c.problems(-1))
}

// Validate checks a list of columns: each one, names unique, at most
// MaxColumns. The error joins a *FieldError per problem.
func Validate(cols []Column) error {
	return join(Problems(cols))
}

// Problems returns every problem of cols, in list order, for callers that
// locate each one (policy's file, line and field).
func Problems(cols []Column) []*FieldError {
	var out []*FieldError
	if len(cols) > MaxColumns {
		out = append(out, &FieldError{Index: -1, Msg: fmt.Sprintf("%d columns; at most %d", len(cols), MaxColumns)})
	}
	seen := make(map[string]int, len(cols))
	for i, c := range cols {
		out = append(out, c.problems(i)...)
		if j, dup := seen[c.Name]; dup && c.Name != "" {
			out = append(out, &FieldError{Index: i, Field: "name", Msg: fmt.Sprintf("%q is already the name of columns[%d]", c.Name, j)})
		} else {
			seen[c.Name] = i
		}
	}
	return out
}

func join(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return errs[0]
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

func (c Column) problems(i int) []*FieldError {
	var out []*FieldError
	bad := func(field, format string, args ...any) {
		out = append(out, &FieldError{Index: i, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if err := checkName(c.Name); err != nil {
		bad("name", "%v", err)
	}
	if _, err := parsePath(c.Path); err != nil {
		bad("path", "%v", err)
	}
	switch c.Type {
	case Decimal:
		if c.Precision < 1 || c.Precision > MaxPrecision {
			bad("precision", "%d is not from 1 to %d (the unscaled value is an int64)", c.Precision, MaxPrecision)
		} else if c.Scale < 0 || c.Scale > c.Precision {
			bad("scale", "%d is not from 0 to the precision, %d", c.Scale, c.Precision)
		}
	case String, Int64, Double, Bool, Timestamp:
		if c.Precision != 0 {
			bad("precision", "only a decimal column has a precision, not %s", c.Type)
		}
		if c.Scale != 0 {
			bad("scale", "only a decimal column has a scale, not %s", c.Type)
		}
	case "":
		bad("type", "every column needs a type (one of %s)", typeList())
	default:
		bad("type", "%q is not one of %s", string(c.Type), typeList())
	}
	return out
}

func typeList() string {
	names := make([]string, 0, 6)
	for _, t := range Types() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// checkName accepts [a-z_][a-z0-9_]{0,63}, not a base column: a name every
// engine takes unquoted and folds to itself.
func checkName(name string) error {
	if name == "" {
		return errors.New("every column needs a name")
	}
	if len(name) > MaxNameBytes {
		return fmt.Errorf("%q is longer than %d bytes", name, MaxNameBytes)
	}
	for j := 0; j < len(name); j++ {
		c := name[j]
		if c == '_' || c >= 'a' && c <= 'z' || j > 0 && c >= '0' && c <= '9' {
			continue
		}
		return fmt.Errorf("%q is not a column name: lower-case letters, digits and _, not starting with a digit", name)
	}
	for _, b := range BaseColumns {
		if name == b {
			return fmt.Errorf("%q is a base column of every cold file (%s)", name, strings.Join(BaseColumns, ", "))
		}
	}
	return nil
}

// step is one step of a path: an object key, or an array index when index
// is not -1.
type step struct {
	key   string
	index int
}

// parsePath parses $, $.a.b, $.a[0].b, $['odd key'] and $["odd key"]: dot
// members are [A-Za-z_][A-Za-z0-9_]*; any other key is quoted in brackets,
// with \' \" and \\ as the only escapes.
func parsePath(p string) ([]step, error) {
	if p == "" {
		return nil, errors.New("every column needs a path ($.field)")
	}
	if len(p) > MaxPathBytes {
		return nil, fmt.Errorf("path is longer than %d bytes", MaxPathBytes)
	}
	if !utf8.ValidString(p) {
		return nil, fmt.Errorf("%q is not UTF-8", p)
	}
	if p[0] != '$' {
		return nil, fmt.Errorf("%q does not start with $ (write $.%s)", p, p)
	}
	var steps []step
	i := 1
	for i < len(p) {
		if len(steps) == MaxPathSteps {
			return nil, fmt.Errorf("%q has more than %d steps", p, MaxPathSteps)
		}
		switch p[i] {
		case '.':
			j := i + 1
			for j < len(p) && (p[j] == '_' || p[j] >= 'a' && p[j] <= 'z' || p[j] >= 'A' && p[j] <= 'Z' || j > i+1 && p[j] >= '0' && p[j] <= '9') {
				j++
			}
			if j == i+1 {
				return nil, fmt.Errorf("%q: after . at byte %d comes no name (letters, digits, _; quote others as ['key'])", p, i)
			}
			steps = append(steps, step{key: p[i+1 : j], index: -1})
			i = j
		case '[':
			if i+1 >= len(p) {
				return nil, fmt.Errorf("%q: [ at byte %d is not closed", p, i)
			}
			if q := p[i+1]; q == '\'' || q == '"' {
				var key strings.Builder
				j := i + 2
				for ; j < len(p) && p[j] != q; j++ {
					if p[j] == '\\' && j+1 < len(p) && (p[j+1] == '\\' || p[j+1] == '\'' || p[j+1] == '"') {
						j++
					}
					key.WriteByte(p[j])
				}
				if j+1 >= len(p) || p[j+1] != ']' {
					return nil, fmt.Errorf("%q: the quoted key at byte %d is not closed by %c]", p, i, q)
				}
				steps = append(steps, step{key: key.String(), index: -1})
				i = j + 2
				continue
			}
			j := i + 1
			n := 0
			for j < len(p) && p[j] >= '0' && p[j] <= '9' {
				if n = n*10 + int(p[j]-'0'); n > MaxIndex {
					return nil, fmt.Errorf("%q: index at byte %d is above %d", p, i, MaxIndex)
				}
				j++
			}
			if j == i+1 || j >= len(p) || p[j] != ']' || (p[i+1] == '0' && j > i+2) {
				return nil, fmt.Errorf("%q: [ at byte %d holds neither an index ([0]) nor a quoted key (['key']); wildcards, slices and filters are not supported", p, i)
			}
			steps = append(steps, step{index: n})
			i = j + 1
		default:
			return nil, fmt.Errorf("%q: unexpected %q at byte %d (want .name, [index] or ['key'])", p, p[i], i)
		}
	}
	return steps, nil
}
