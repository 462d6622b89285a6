package colproj

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	k := func(s string) step { return step{key: s, index: -1} }
	x := func(i int) step { return step{index: i} }
	cases := []struct {
		path string
		want []step
		err  string
	}{
		{"$", nil, ""},
		{"$.px", []step{k("px")}, ""},
		{"$.a.b_2.C", []step{k("a"), k("b_2"), k("C")}, ""},
		{"$.a[0].b", []step{k("a"), x(0), k("b")}, ""},
		{"$[12][3]", []step{x(12), x(3)}, ""},
		{"$['odd key']", []step{k("odd key")}, ""},
		{`$["it's"].x`, []step{k("it's"), k("x")}, ""},
		{`$['a\'b\\c']`, []step{k(`a'b\c`)}, ""},
		{`$['a.b[0]']`, []step{k("a.b[0]")}, ""},
		{"$['']", []step{k("")}, ""},
		{"$['prix €']", []step{k("prix €")}, ""},
		{"", nil, "needs a path"},
		{"px", nil, "does not start with $"},
		{"$.", nil, "no name"},
		{"$..a", nil, "no name"},
		{"$.1a", nil, "no name"},
		{"$.a-b", nil, "unexpected"},
		{"$a", nil, "unexpected"},
		{"$[", nil, "not closed"},
		{"$[01]", nil, "neither an index"},
		{"$[-1]", nil, "neither an index"},
		{"$[*]", nil, "wildcards"},
		{"$[0:2]", nil, "neither an index"},
		{"$[2000000]", nil, "above"},
		{"$['abc]", nil, "not closed"},
		{"$['abc'", nil, "not closed"},
		{"$." + strings.Repeat("a", MaxPathBytes), nil, "longer than"},
		{"$" + strings.Repeat(".a", MaxPathSteps+1), nil, "more than 32 steps"},
		{"$['\xff']", nil, "not UTF-8"},
	}
	for _, tc := range cases {
		got, err := parsePath(tc.path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parsePath(%q) = %v, %v; want an error containing %q", tc.path, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parsePath(%q) = %v, %v; want %v", tc.path, got, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	type fe struct {
		index int
		field string
		msg   string
	}
	cases := []struct {
		name string
		cols []Column
		want []fe
	}{
		{"every type", []Column{
			{Name: "s", Path: "$.s", Type: String},
			{Name: "i", Path: "$.i", Type: Int64},
			{Name: "d", Path: "$.d", Type: Double},
			{Name: "b", Path: "$.b", Type: Bool},
			{Name: "t", Path: "$.t", Type: Timestamp},
			{Name: "amt", Path: "$.amount", Type: Decimal, Precision: 18, Scale: 4},
			{Name: "whole", Path: "$", Type: Decimal, Precision: 1, Scale: 0},
			{Name: "_x9", Path: "$['a b'][0]", Type: String},
		}, nil},
		{"none", nil, nil},
		{"bad names", []Column{
			{Name: "", Path: "$.a", Type: String},
			{Name: "Px", Path: "$.a", Type: String},
			{Name: "9a", Path: "$.a", Type: String},
			{Name: "a-b", Path: "$.a", Type: String},
			{Name: "ts", Path: "$.a", Type: String},
			{Name: "value_bin", Path: "$.a", Type: String},
			{Name: "date", Path: "$.a", Type: String},
			{Name: strings.Repeat("a", 65), Path: "$.a", Type: String},
		}, []fe{
			{0, "name", "needs a name"}, {1, "name", "not a column name"}, {2, "name", "not a column name"},
			{3, "name", "not a column name"}, {4, "name", "base column"}, {5, "name", "base column"},
			{6, "name", "base column"}, {7, "name", "longer than 64"},
		}},
		{"duplicate names", []Column{
			{Name: "a", Path: "$.a", Type: String}, {Name: "b", Path: "$.b", Type: String}, {Name: "a", Path: "$.c", Type: Int64},
		}, []fe{{2, "name", `"a" is already the name of columns[0]`}}},
		{"types", []Column{
			{Name: "a", Path: "$.a"},
			{Name: "b", Path: "$.b", Type: "float"},
			{Name: "c", Path: "$.c", Type: "DOUBLE"},
		}, []fe{{0, "type", "needs a type (one of string, int64"}, {1, "type", `"float" is not one of`}, {2, "type", `"DOUBLE"`}}},
		{"decimal bounds", []Column{
			{Name: "a", Path: "$.a", Type: Decimal},
			{Name: "b", Path: "$.b", Type: Decimal, Precision: 19},
			{Name: "c", Path: "$.c", Type: Decimal, Precision: 4, Scale: 5},
			{Name: "d", Path: "$.d", Type: Decimal, Precision: 4, Scale: -1},
			{Name: "e", Path: "$.e", Type: Decimal, Precision: 4, Scale: 4},
		}, []fe{{0, "precision", "0 is not from 1 to 18"}, {1, "precision", "19"}, {2, "scale", "5 is not from 0 to the precision, 4"}, {3, "scale", "-1"}}},
		{"precision on a double", []Column{{Name: "a", Path: "$.a", Type: Double, Precision: 10, Scale: 2}},
			[]fe{{0, "precision", "only a decimal"}, {0, "scale", "only a decimal"}}},
		{"bad path", []Column{{Name: "a", Path: "px", Type: Double}}, []fe{{0, "path", "does not start with $"}}},
		{"too many", func() []Column {
			cols := make([]Column, MaxColumns+1)
			for i := range cols {
				cols[i] = Column{Name: "c" + strings.Repeat("x", i%60) + string(rune('a'+i/60)), Path: "$.a", Type: Bool}
			}
			return cols
		}(), []fe{{-1, "", "257 columns; at most 256"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			probs := Problems(tc.cols)
			var got []fe
			for _, p := range probs {
				got = append(got, fe{p.Index, p.Field, p.Msg})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems %+v, want %+v", got, tc.want)
			}
			for i, w := range tc.want {
				if got[i].index != w.index || got[i].field != w.field || !strings.Contains(got[i].msg, w.msg) {
					t.Errorf("problem %d = %+v, want %+v", i, got[i], w)
				}
			}
			err := Validate(tc.cols)
			if (err == nil) != (len(tc.want) == 0) {
				t.Fatalf("Validate = %v", err)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate's error %v is not ErrInvalid", err)
			}
			if _, err := New(tc.cols); (err == nil) != (len(tc.want) == 0) {
				t.Errorf("New = %v", err)
			}
		})
	}
}

func TestColumnValidateAndText(t *testing.T) {
	err := Column{Name: "px", Path: "$.px", Type: "float"}.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Index != -1 || fe.Field != "type" {
		t.Fatalf("Validate = %#v", err)
	}
	if got, want := err.Error(), `colproj: type: "float" is not one of string, int64, double, bool, timestamp, decimal`; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	err = Validate([]Column{{Name: "a", Path: "$.a", Type: Bool}, {Name: "B", Path: "$.b", Type: Bool}})
	if got, want := err.Error(), `colproj: columns[1].name: "B" is not a column name: lower-case letters, digits and _, not starting with a digit`; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
}

// The JSON form is what pqfile records in tierd.columns: it must round-trip
// and keep its field names.
func TestColumnJSON(t *testing.T) {
	cols := []Column{{Name: "px", Path: "$.px", Type: Double}, {Name: "amt", Path: "$['amount']", Type: Decimal, Precision: 18, Scale: 4}}
	b, err := json.Marshal(cols)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"px","path":"$.px","type":"double"},{"name":"amt","path":"$['amount']","type":"decimal","precision":18,"scale":4}]`
	if string(b) != want {
		t.Fatalf("JSON %s\nwant %s", b, want)
	}
	var back []Column
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, cols) {
		t.Fatalf("round trip %+v, %v", back, err)
	}
}
