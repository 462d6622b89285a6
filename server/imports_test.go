package server

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoTierInternals: the server speaks the tiers' shared vocabulary
// (tiers, api) and the engine, never a tier's internals: no file of the
// package imports the hot tier or its WAL (the producer headers parse into
// tiers.Producer). The engine itself imports hot, so this is about the
// server's own imports, not the whole import graph.
func TestNoTierInternals(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "github.com/tierd/tierd/hot" || strings.HasPrefix(path, "github.com/tierd/tierd/hot/") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d files of package server", checked)
	}
}
