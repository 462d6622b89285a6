package policy

import (
	"fmt"
	"slices"

	"github.com/goccy/go-yaml/ast"
	"github.com/tierd/tierd/cold/colproj"
)

// ColumnsFor returns the typed columns of stream's cold files: those of the
// first policy that matches it (as PolicyFor), none for the default
// policy. The cold tier calls it for each upload.
func (c Config) ColumnsFor(stream string) []colproj.Column {
	for _, p := range c.Policies {
		if p.Matches(stream) {
			return slices.Clone(p.Columns)
		}
	}
	return nil
}

// columnsField decodes a policy's columns: a list of {name, path, type,
// precision, scale}.
func columnsField(dst *[]colproj.Column) func(d *decoder, n ast.Node, p string) {
	return func(d *decoder, n ast.Node, p string) {
		out := []colproj.Column{}
		d.sequence(n, p, func(d *decoder, n ast.Node, p string) {
			var col colproj.Column
			d.mapping(n, p, []field{
				{"name", func(d *decoder, n ast.Node, p string) { d.str(n, p, &col.Name) }},
				{"path", func(d *decoder, n ast.Node, p string) { d.str(n, p, &col.Path) }},
				{"type", func(d *decoder, n ast.Node, p string) {
					var s string
					d.str(n, p, &s)
					col.Type = colproj.Type(s)
				}},
				{"precision", func(d *decoder, n ast.Node, p string) { d.integer(n, p, &col.Precision) }},
				{"scale", func(d *decoder, n ast.Node, p string) { d.integer(n, p, &col.Scale) }},
			})
			out = append(out, col)
		})
		*dst = out
	}
}

// checkColumns applies colproj's rules to policy i's columns, locating
// each problem at its field (or, for a field the file left out, at the
// column).
func (v *validator) checkColumns(i int, p Policy) {
	base := policyPath(i, "columns")
	if !v.ok(base) {
		return
	}
	for _, pr := range colproj.Problems(p.Columns) {
		if pr.Index < 0 {
			v.errorf(base, "%s", pr.Msg)
			continue
		}
		colField := fmt.Sprintf("%s[%d]", base, pr.Index)
		field := colField + "." + pr.Field
		if !v.ok(colField, field) {
			continue // not a mapping, or a value that did not decode: reported
		}
		if pr.Field == "precision" && v.pos != nil && !v.set(field) {
			// Left out, so zero: say which field to add.
			v.errorf(field, "a decimal column needs a precision, 1 to %d", colproj.MaxPrecision)
			continue
		}
		v.errorf(field, "%s", pr.Msg)
	}
}
