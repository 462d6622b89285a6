package policy

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/tierd/tierd/tiers"
)

// Load reads and parses the configuration file at path; errors name path as
// given.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a configuration file's contents over Default and validates
// the result. file names the source in errors. Any problem — YAML syntax, an
// unknown field, a wrong type or unit, a broken rule — yields a
// *ValidationError listing every problem found, in file order, and a zero
// Config.
func Parse(file string, data []byte) (Config, error) {
	cfg, _, err := parse(file, data)
	return cfg, err
}

// parse is Parse, also returning the validator that knows where each field
// is, for warnings.
func parse(file string, data []byte) (Config, *validator, error) {
	cfg := Default()
	d := &decoder{file: file, pos: map[string]position{}, bad: map[string]bool{}, anchors: map[string][]anchorDef{}}
	body, ok := d.document(data)
	if ok && body != nil {
		d.mapping(body, "", configFields(&cfg))
	}
	v := &validator{file: file, pos: d.pos, bad: d.bad, errs: d.errs}
	if ok {
		v.check(&cfg)
	}
	if err := v.result(); err != nil {
		return Config{}, nil, err
	}
	v.errs = nil
	if !cfg.HasColdStore() {
		cfg.Tables.Enabled = false // nothing to publish (TablesConfig)
	}
	return cfg, v, nil
}

// Limits that keep hostile or broken files cheap: YAML aliases and merge
// keys can otherwise describe exponentially large or cyclic documents.
const (
	maxFileBytes   = 1 << 20 // far beyond any real configuration; bounds the parser's work
	maxAliasHops   = 64
	maxMergeDepth  = 16
	maxMergedPairs = 10000
	maxCollectNest = 10000
)

// field is one key of a mapping and how to decode its value into a Config.
// Sections nest by calling decoder.mapping with their own fields, so a new
// setting is one line in fields.go.
type field struct {
	name string
	set  func(d *decoder, n ast.Node, path string)
}

// decoder walks the YAML AST into a Config, collecting every problem instead
// of stopping at the first.
type decoder struct {
	file    string
	errs    []FieldError
	pos     map[string]position // field path → its key's position, for fields the file set
	bad     map[string]bool     // field paths whose value was rejected
	anchors map[string][]anchorDef
	merged  int // pairs produced by merge keys so far
}

// anchorDef is one &name in the file; YAML lets a name be redefined, and an
// alias refers to the latest definition before it.
type anchorDef struct {
	offset int
	value  ast.Node
}

// posOf returns the position of n's first token, or zero if it has none.
func posOf(n ast.Node) position {
	if n == nil {
		return position{}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return position{}
	}
	return position{line: tk.Position.Line, col: tk.Position.Column}
}

// fail records a problem with field at node n and marks the field rejected.
func (d *decoder) fail(n ast.Node, field, format string, args ...any) {
	p := posOf(n)
	d.errs = append(d.errs, FieldError{File: d.file, Line: p.line, Column: p.col, Field: field, Msg: fmt.Sprintf(format, args...)})
	if field != "" {
		d.bad[field] = true
	}
}

// document parses data and returns the body of its one document (nil for an
// empty file). ok is false if the file could not be parsed.
func (d *decoder) document(data []byte) (body ast.Node, ok bool) {
	if len(data) > maxFileBytes {
		d.errs = append(d.errs, FieldError{File: d.file, Msg: fmt.Sprintf("file is %d bytes; a configuration file is at most %s", len(data), FormatSize(maxFileBytes))})
		return nil, false
	}
	f, err := parseYAML(data)
	if err != nil {
		fe := FieldError{File: d.file, Msg: err.Error()}
		var ye yaml.Error
		if errors.As(err, &ye) {
			fe.Msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				fe.Line, fe.Column = tk.Position.Line, tk.Position.Column
			}
		}
		d.errs = append(d.errs, fe)
		return nil, false
	}
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		switch doc.Body.(type) {
		case *ast.DirectiveNode, *ast.CommentGroupNode, *ast.CommentNode:
			continue
		}
		if body != nil {
			d.fail(doc.Body, "", "a configuration file holds one YAML document, and this is a second")
			return nil, false
		}
		body = doc.Body
		d.collectAnchors(body, 0)
	}
	return body, true
}

// parseYAML runs the YAML parser, turning a panic inside it into an error: a
// broken configuration file must be reported, not crash the daemon.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

// collectAnchors records every anchor under n.
func (d *decoder) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > maxCollectNest {
		return
	}
	switch n := n.(type) {
	case *ast.AnchorNode:
		if n.Name != nil && n.Name.GetToken() != nil && n.Start != nil && n.Start.Position != nil {
			name := n.Name.GetToken().Value
			d.anchors[name] = append(d.anchors[name], anchorDef{offset: n.Start.Position.Offset, value: n.Value})
		}
		d.collectAnchors(n.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range n.Values {
			d.collectAnchors(mv, depth+1)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(n.Key, depth+1)
		d.collectAnchors(n.Value, depth+1)
	case *ast.MappingKeyNode:
		d.collectAnchors(n.Value, depth+1)
	case *ast.SequenceNode:
		for _, v := range n.Values {
			d.collectAnchors(v, depth+1)
		}
	case *ast.TagNode:
		d.collectAnchors(n.Value, depth+1)
	}
}

// resolve follows anchors, aliases and tags to the node holding a value, and
// returns the last explicit tag seen ("!!str") with it.
func (d *decoder) resolve(n ast.Node) (ast.Node, string, error) {
	tag := ""
	for range maxAliasHops {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			if v.Start != nil {
				tag = v.Start.Value
			}
			n = v.Value
		case *ast.AliasNode:
			target, err := d.alias(v)
			if err != nil {
				return nil, "", err
			}
			n = target
		default:
			return n, tag, nil
		}
	}
	return nil, "", errors.New("aliases nest too deeply")
}

// alias returns the value of the latest anchor defined before a.
func (d *decoder) alias(a *ast.AliasNode) (ast.Node, error) {
	if a.Value == nil || a.Value.GetToken() == nil || a.Start == nil || a.Start.Position == nil {
		return nil, errors.New("malformed alias")
	}
	name := a.Value.GetToken().Value
	var found ast.Node
	for _, def := range d.anchors[name] {
		if def.offset < a.Start.Position.Offset {
			found = def.value
		}
	}
	if found == nil {
		return nil, fmt.Errorf("alias *%s refers to no anchor &%s before it", name, name)
	}
	return found, nil
}

// kind names a node's type for messages.
func kind(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	return "a " + strings.ToLower(n.Type().String())
}

// joinPath appends key to a dotted field path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// pair is one key and value of a mapping, merge keys already applied.
type pair struct {
	key     string
	keyNode ast.Node
	value   ast.Node
}

// mapping decodes n, a mapping (or null, which sets nothing), with fields,
// reporting unknown keys.
func (d *decoder) mapping(n ast.Node, path string, fields []field) {
	for _, p := range d.pairs(n, path, 0) {
		fp := joinPath(path, p.key)
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == p.key })
		if i < 0 {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.name
			}
			d.fail(p.keyNode, fp, "unknown field (want one of %s)", strings.Join(names, ", "))
			continue
		}
		d.pos[fp] = posOf(p.keyNode)
		fields[i].set(d, p.value, fp)
	}
}

// pairs returns the entries of mapping n: its own keys, then keys merged in
// with "<<" that it does not set itself (earlier merge sources win, as YAML
// specifies).
func (d *decoder) pairs(n ast.Node, path string, depth int) []pair {
	orig := n
	n, _, err := d.resolve(n)
	if err != nil {
		d.fail(orig, path, "%v", err)
		return nil
	}
	var values []*ast.MappingValueNode
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return nil
	case *ast.MappingNode:
		values = v.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{v}
	default:
		if path == "" {
			d.fail(orig, path, "the configuration must be a mapping of fields, not %s", kind(n))
		} else {
			d.fail(orig, path, "must be a mapping, not %s", kind(n))
		}
		return nil
	}
	var own, merged []pair
	for _, mv := range values {
		if mv == nil || mv.Key == nil {
			continue
		}
		if mv.Key.IsMergeKey() {
			merged = append(merged, d.mergeSources(mv.Value, path, depth)...)
			continue
		}
		k, _, err := d.resolve(mv.Key)
		if mk, ok := k.(*ast.MappingKeyNode); ok && err == nil {
			k, _, err = d.resolve(mk.Value)
		}
		s, ok := k.(*ast.StringNode)
		if err != nil || !ok {
			d.fail(mv.Key, path, "field names must be plain strings, not %s", kind(k))
			continue
		}
		own = append(own, pair{key: s.Value, keyNode: mv.Key, value: mv.Value})
	}
	out := own
	for _, p := range merged {
		if !slices.ContainsFunc(out, func(q pair) bool { return q.key == p.key }) {
			out = append(out, p)
		}
	}
	return out
}

// mergeSources returns the pairs a "<<" value brings: one mapping or a list
// of mappings.
func (d *decoder) mergeSources(n ast.Node, path string, depth int) []pair {
	if depth >= maxMergeDepth {
		d.fail(n, path, "merge keys (<<) nest more than %d deep", maxMergeDepth)
		return nil
	}
	orig := n
	n, _, err := d.resolve(n)
	if err != nil {
		d.fail(orig, path, "%v", err)
		return nil
	}
	sources := []ast.Node{n}
	if seq, ok := n.(*ast.SequenceNode); ok {
		sources = seq.Values
	}
	var out []pair
	for _, src := range sources {
		if r, _, err := d.resolve(src); err == nil {
			switch r.(type) {
			case *ast.MappingNode, *ast.MappingValueNode:
			default:
				d.fail(src, path, "<< must merge a mapping or a list of mappings, not %s", kind(r))
				continue
			}
		}
		ps := d.pairs(src, path, depth+1)
		if d.merged += len(ps); d.merged > maxMergedPairs {
			d.fail(orig, path, "merge keys (<<) expand to more than %d fields", maxMergedPairs)
			return nil
		}
		out = append(out, ps...)
	}
	return out
}

// sequence decodes n, a list (or null, which sets nothing), calling item
// for each element with its path ("policies[2]").
func (d *decoder) sequence(n ast.Node, path string, item func(d *decoder, n ast.Node, path string)) {
	v, _, err := d.resolve(n)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	switch v := v.(type) {
	case nil, *ast.NullNode:
	case *ast.SequenceNode:
		for i, el := range v.Values {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.pos[p] = posOf(el)
			item(d, el, p)
		}
	default:
		d.fail(v, path, "must be a list, not %s", kind(v))
	}
}

// stringList decodes a list of strings.
func (d *decoder) stringList(n ast.Node, path string, dst *[]string) {
	out := []string{}
	d.sequence(n, path, func(d *decoder, n ast.Node, p string) {
		var s string
		d.str(n, p, &s)
		out = append(out, s)
	})
	*dst = out
}

// str decodes a string value.
func (d *decoder) str(n ast.Node, path string, dst *string) {
	v, tag, err := d.resolve(n)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	switch v := v.(type) {
	case *ast.StringNode:
		*dst = v.Value
	case *ast.LiteralNode:
		if v.Value != nil {
			*dst = strings.TrimSuffix(v.Value.Value, "\n")
		}
	case nil, *ast.NullNode:
		d.fail(n, path, "has no value")
	default:
		if tk := v.GetToken(); tag == "!!str" && tk != nil {
			*dst = tk.Value
			return
		}
		d.fail(v, path, "must be a string, not %s (quote it)", kind(v))
	}
}

// integer decodes a plain integer.
func (d *decoder) integer(n ast.Node, path string, dst *int) {
	v, _, err := d.resolve(n)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	iv, ok := v.(*ast.IntegerNode)
	if !ok {
		if v == nil {
			d.fail(n, path, "has no value")
			return
		}
		d.fail(v, path, "must be an integer, not %s", kind(v))
		return
	}
	switch x := iv.Value.(type) {
	case int64:
		if x >= math.MinInt32 && x <= math.MaxInt32 {
			*dst = int(x)
			return
		}
	case uint64:
		if x <= math.MaxInt32 {
			*dst = int(x)
			return
		}
	}
	d.fail(v, path, "%s is out of range", iv.GetToken().Value)
}

// boolean decodes true or false.
func (d *decoder) boolean(n ast.Node, path string, dst *bool) {
	v, _, err := d.resolve(n)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	switch v := v.(type) {
	case *ast.BoolNode:
		*dst = v.Value
	case nil, *ast.NullNode:
		d.fail(n, path, "has no value")
	default:
		d.fail(v, path, "must be true or false, not %s", kind(v))
	}
}

// size decodes a byte count: an integer or a string with a unit.
func (d *decoder) size(n ast.Node, path string, dst *int64) {
	v, tag, err := d.resolve(n)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	switch v := v.(type) {
	case *ast.IntegerNode:
		if tag == "!!str" {
			d.sizeText(v, path, v.GetToken().Value, dst)
			return
		}
		switch x := v.Value.(type) {
		case int64:
			if x < 0 {
				d.fail(v, path, "%d is negative", x)
				return
			}
			*dst = x
		case uint64:
			if x > math.MaxInt64 {
				d.fail(v, path, "%d is too large", x)
				return
			}
			*dst = int64(x)
		default:
			d.fail(v, path, "%v is not a number of bytes", v.Value)
		}
	case *ast.StringNode:
		d.sizeText(v, path, v.Value, dst)
	case nil, *ast.NullNode:
		d.fail(n, path, "has no value")
	default:
		d.fail(v, path, "must be a size such as 64MiB or a number of bytes, not %s", kind(v))
	}
}

func (d *decoder) sizeText(n ast.Node, path, s string, dst *int64) {
	b, err := ParseSize(s)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	*dst = b
}

// duration decodes a duration string; a bare 0 is the only number accepted
// without a unit.
func (d *decoder) duration(n ast.Node, path string, dst *time.Duration) {
	v, _, err := d.resolve(n)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	switch v := v.(type) {
	case *ast.StringNode:
		t, err := ParseDuration(v.Value)
		if err != nil {
			d.fail(v, path, "%v", err)
			return
		}
		*dst = t
	case *ast.IntegerNode:
		if x, ok := v.Value.(int64); ok && x == 0 {
			*dst = 0
			return
		}
		if x, ok := v.Value.(uint64); ok && x == 0 {
			*dst = 0
			return
		}
		d.fail(v, path, "%s lacks a unit; write e.g. 10s, 5m, 1h or 7d", v.GetToken().Value)
	case nil, *ast.NullNode:
		d.fail(n, path, "has no value")
	default:
		d.fail(v, path, "must be a duration such as 10m or 1h30m, not %s", kind(v))
	}
}

// syncMode decodes wal.sync.
func (d *decoder) syncMode(n ast.Node, path string, dst *tiers.SyncMode) {
	var s string
	d.str(n, path, &s)
	if d.bad[path] {
		return
	}
	if !slices.Contains(tiers.SyncModes(), tiers.SyncMode(s)) {
		v, _, _ := d.resolve(n)
		d.fail(v, path, "%s", badSyncMode(s))
		return
	}
	*dst = tiers.SyncMode(s)
}
