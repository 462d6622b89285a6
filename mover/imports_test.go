package mover

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportsNoHotTier: the mover, and everything it imports, imports no
// hot package: what it needs of the hot tier is the Hot interface.
func TestImportsNoHotTier(t *testing.T) {
	const module = "github.com/tierd/tierd/"
	seen := map[string]bool{}
	var walk func(path, dir string, from []string)
	walk = func(path, dir string, from []string) {
		if seen[path] {
			return
		}
		seen[path] = true
		if rest := strings.TrimPrefix(path, module); rest == "hot" || strings.HasPrefix(rest, "hot/") {
			t.Errorf("mover imports %s (through %s)", path, strings.Join(from, " → "))
			return
		}
		pkg, err := build.Import(path, dir, 0)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module) {
				walk(imp, pkg.Dir, append(from, path))
			}
		}
	}
	walk(module+"mover", ".", nil)
	if len(seen) < 5 {
		t.Fatalf("walked only %v: the walk is broken", seen)
	}
}
