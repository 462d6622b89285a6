package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/cold/colproj"
)

func TestParseColumns(t *testing.T) {
	in := `
policies:
  - name: trading
    streams: ["IF*"]
    columns:
      - {name: px, path: $.px, type: double}
      - name: amt
        path: "$['amount']"
        type: decimal
        precision: 18
        scale: 4
      - {name: at, path: $.meta.at, type: timestamp}
  - name: none
    streams: ["*"]
`
	c, err := Parse("tierd.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []colproj.Column{
		{Name: "px", Path: "$.px", Type: colproj.Double},
		{Name: "amt", Path: "$['amount']", Type: colproj.Decimal, Precision: 18, Scale: 4},
		{Name: "at", Path: "$.meta.at", Type: colproj.Timestamp},
	}
	if got := c.ColumnsFor("IF2612"); !reflect.DeepEqual(got, want) {
		t.Fatalf("ColumnsFor(IF2612) = %+v, want %+v", got, want)
	}
	if got := c.ColumnsFor("other"); got != nil {
		t.Errorf("ColumnsFor(other) = %+v, want none (policy without columns)", got)
	}
	if got := Default().ColumnsFor("IF2612"); got != nil {
		t.Errorf("default policy's columns = %+v", got)
	}
	// The returned list is the caller's: changing it changes no policy.
	c.ColumnsFor("IF2612")[0].Name = "changed"
	if c.ColumnsFor("IF2612")[0].Name != "px" {
		t.Error("ColumnsFor returned the policy's own slice")
	}
	// Every column a file accepts, New accepts.
	if _, err := colproj.New(c.ColumnsFor("IF2612")); err != nil {
		t.Fatal(err)
	}
	// A method value, as boot passes it to the cold tier.
	var f func(string) []colproj.Column = c.ColumnsFor
	if len(f("IF1")) != 3 {
		t.Error("method value")
	}
}

func TestParseColumnErrors(t *testing.T) {
	pol := "policies:\n  - name: a\n    streams: [x]\n    columns:\n"
	cases := []struct {
		name string
		in   string
		want []loc
	}{
		{"bad name", pol + "      - {name: Px, path: $.px, type: double}\n", []loc{{5, "policies[0].columns[0].name", `"Px" is not a column name`}}},
		{"base column name", pol + "      - {name: ts, path: $.ts, type: timestamp}\n", []loc{{5, "policies[0].columns[0].name", `"ts" is a base column`}}},
		{"no name", pol + "      - {path: $.px, type: double}\n", []loc{{5, "policies[0].columns[0].name", "needs a name"}}},
		{"duplicate name", pol + "      - {name: px, path: $.px, type: double}\n      - name: px\n        path: $.p2\n        type: int64\n",
			[]loc{{6, "policies[0].columns[1].name", `"px" is already the name of columns[0]`}}},
		{"bad path", pol + "      - name: px\n        path: px\n        type: double\n", []loc{{6, "policies[0].columns[0].path", "does not start with $"}}},
		{"wildcard path", pol + "      - {name: px, path: '$.a[*]', type: double}\n", []loc{{5, "policies[0].columns[0].path", "wildcards"}}},
		{"bad type", pol + "      - name: px\n        path: $.px\n        type: float\n", []loc{{7, "policies[0].columns[0].type", `"float" is not one of string, int64, double, bool, timestamp, decimal`}}},
		{"no type", pol + "      - {name: px, path: $.px}\n", []loc{{5, "policies[0].columns[0].type", "needs a type"}}},
		{"type not a string", pol + "      - {name: px, path: $.px, type: 5}\n", []loc{{5, "policies[0].columns[0].type", "must be a string, not an integer"}}},
		{"decimal without precision", pol + "      - name: amt\n        path: $.amt\n        type: decimal\n", []loc{{5, "policies[0].columns[0].precision", "needs a precision, 1 to 18"}}},
		{"decimal precision too large", pol + "      - name: amt\n        path: $.amt\n        type: decimal\n        precision: 38\n", []loc{{8, "policies[0].columns[0].precision", "38 is not from 1 to 18"}}},
		{"decimal scale above precision", pol + "      - name: amt\n        path: $.amt\n        type: decimal\n        precision: 4\n        scale: 6\n", []loc{{9, "policies[0].columns[0].scale", "6 is not from 0 to the precision, 4"}}},
		{"scale on a double", pol + "      - {name: px, path: $.px, type: double, scale: 2}\n", []loc{{5, "policies[0].columns[0].scale", "only a decimal column has a scale"}}},
		{"precision not an integer", pol + "      - {name: amt, path: $.amt, type: decimal, precision: high}\n", []loc{{5, "policies[0].columns[0].precision", "must be an integer"}}},
		{"unknown column field", pol + "      - {name: px, path: $.px, type: double, nullable: true}\n", []loc{{5, "policies[0].columns[0].nullable", "unknown field (want one of name, path, type, precision, scale)"}}},
		{"column not a mapping", pol + "      - px\n", []loc{{5, "policies[0].columns[0]", "must be a mapping, not a string"}}},
		{"columns not a list", pol + "      name: px\n", []loc{{5, "policies[0].columns", "must be a list, not a mapping"}}},
		{"errors in two columns", pol + "      - {name: a, path: $.a, type: text}\n      - {name: b, path: .b, type: bool}\n", []loc{
			{5, "policies[0].columns[0].type", `"text"`}, {6, "policies[0].columns[1].path", "does not start with $"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("tierd.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", got.Policies)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is %T, want *ValidationError: %v", err, err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ve.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				fe := ve.Errors[i]
				if fe.File != "tierd.yaml" || fe.Line != w.line || fe.Field != w.field || !strings.Contains(fe.Msg, w.msg) {
					t.Errorf("error %d = %+v\nwant line %d, field %q, message containing %q", i, fe, w.line, w.field, w.msg)
				}
			}
		})
	}
}

func TestColumnErrorText(t *testing.T) {
	in := "policies:\n  - name: trading\n    streams: [IF*]\n    columns:\n      - {name: px, path: $.px, type: float}\n"
	_, err := Parse("tierd.yaml", []byte(in))
	want := `tierd.yaml:5: policies[0].columns[0].type: "float" is not one of string, int64, double, bool, timestamp, decimal`
	if err == nil || err.Error() != want {
		t.Fatalf("error text:\n%v\nwant:\n%s", err, want)
	}
}

func TestColumnsInCode(t *testing.T) {
	c := Default()
	c.Policies = []Policy{{Name: "a", Streams: []string{"*"}, Columns: []colproj.Column{
		{Name: "px", Path: "$.px", Type: colproj.Double}, {Name: "px", Path: "px", Type: "real"},
	}}}
	var ve *ValidationError
	if err := c.Validate(); !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	var fields []string
	for _, fe := range ve.Errors {
		fields = append(fields, fe.Field)
	}
	want := []string{"policies[0].columns[1].path", "policies[0].columns[1].type", "policies[0].columns[1].name"}
	if !reflect.DeepEqual(fields, want) {
		t.Fatalf("errors on %v, want %v (%v)", fields, want, ve)
	}
}

func TestColumnsWithoutColdStore(t *testing.T) {
	in := "cold: {store: none}\npolicies:\n  - name: a\n    streams: [x]\n    columns: [{name: px, path: $.px, type: double}]\n"
	_, warns, err := Check("tierd.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range warns {
		if w.Field == "policies[0].columns" && w.Line == 5 && strings.Contains(w.Msg, "never written") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no warning for columns without a cold store: %v", warns)
	}
}

func TestParseTables(t *testing.T) {
	c, err := Parse("tierd.yaml", []byte("tables:\n  enabled: false\n  namespace: lake_1\n  commit_interval: 2m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (TablesConfig{Namespace: "lake_1", CommitInterval: 2 * time.Minute}); c.Tables != want || c.TablesEnabled() {
		t.Fatalf("tables = %+v, want %+v", c.Tables, want)
	}
	if d := Default(); !d.Tables.Enabled || !d.TablesEnabled() {
		t.Fatalf("tables are not on by default: %+v", d.Tables)
	}
	// No cold tier, no tables, and nothing said about it.
	c, warns, err := Check("tierd.yaml", []byte("cold: {store: none}\ntables: {enabled: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tables.Enabled || c.TablesEnabled() {
		t.Errorf("tables enabled without a cold store: %+v", c.Tables)
	}
	for _, w := range warns {
		if strings.HasPrefix(w.Field, "tables") {
			t.Errorf("warning about tables: %v", w)
		}
	}
	inCode := Default()
	inCode.Cold.Store = StoreNone
	if inCode.TablesEnabled() {
		t.Error("TablesEnabled with cold.store none")
	}
}

func TestParseTablesErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []loc
	}{
		{"enabled not a bool", "tables:\n  enabled: yes\n", []loc{{2, "tables.enabled", "must be true or false, not a string"}}},
		{"enabled empty", "tables:\n  enabled:\n", []loc{{2, "tables.enabled", "has no value"}}},
		{"empty namespace", "tables: {namespace: ''}\n", []loc{{1, "tables.namespace", "must not be empty"}}},
		{"namespace with a dot", "tables: {namespace: a.b}\n", []loc{{1, "tables.namespace", `"a.b" is not a namespace`}}},
		{"upper-case namespace", "tables: {namespace: Tierd}\n", []loc{{1, "tables.namespace", "lower-case"}}},
		{"commit interval too short", "tables:\n  commit_interval: 100ms\n", []loc{{2, "tables.commit_interval", "100ms must be at least 1s"}}},
		{"commit interval without unit", "tables: {commit_interval: 10}\n", []loc{{1, "tables.commit_interval", "lacks a unit"}}},
		{"unknown field", "tables: {catalog: pg}\n", []loc{{1, "tables.catalog", "unknown field (want one of enabled, namespace, commit_interval)"}}},
		{"checked when disabled", "tables: {enabled: false, commit_interval: 0s}\n", []loc{{1, "tables.commit_interval", "must be at least 1s"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("tierd.yaml", []byte(tc.in))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse = %v, want a *ValidationError", err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ve.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				fe := ve.Errors[i]
				if fe.Line != w.line || fe.Field != w.field || !strings.Contains(fe.Msg, w.msg) {
					t.Errorf("error %d = %+v\nwant line %d, field %q, message containing %q", i, fe, w.line, w.field, w.msg)
				}
			}
		})
	}
}
