// Package docs holds tierd's documentation; its test checks that every
// relative link in README.md and docs/ resolves inside the repository, so
// a moved or renamed file, or a retitled section, breaks `make test`
// rather than a reader's click.
package docs

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// root is the repository root, relative to this package's directory.
const root = ".."

// link is one link target found in a markdown file.
type link struct {
	line   int
	target string
}

var (
	fence      = regexp.MustCompile("^ {0,3}(```+|~~~+)")
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	inlineLink = regexp.MustCompile(`\[([^\]]*)\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)`)
	refLink    = regexp.MustCompile(`\[([^\]]+)\]\[([^\]]*)\]`)
	refDef     = regexp.MustCompile(`(?m)^ {0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)`)
	heading    = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s[^>]*(?:name|id)="([^"]+)"`)
	scheme     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// prose returns the file's text with fenced code blocks and inline code
// spans blanked out (newlines kept, so offsets give line numbers): a link
// inside code is an example, not a link.
func prose(text string) string {
	return codeSpan.ReplaceAllStringFunc(noFences(text), func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '\n' {
				return r
			}
			return ' '
		}, s)
	})
}

// noFences returns text with the lines of fenced code blocks emptied.
func noFences(text string) string {
	lines := strings.Split(text, "\n")
	var open string // the fence that opened the current block
	for i, l := range lines {
		m := fence.FindStringSubmatch(l)
		switch {
		case open == "" && m != nil:
			open = m[1]
			lines[i] = ""
		case open != "":
			if m != nil && m[1][0] == open[0] && len(m[1]) >= len(open) {
				open = ""
			}
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

// links returns every link target of a markdown text: inline links and
// images, and reference definitions. A reference used ([text][label])
// without a definition is returned as an error.
func links(text string) ([]link, []string) {
	p := prose(text)
	lineAt := func(off int) int { return strings.Count(p[:off], "\n") + 1 }
	var out []link
	for _, m := range inlineLink.FindAllStringSubmatchIndex(p, -1) {
		t := strings.Trim(p[m[4]:m[5]], "<>")
		out = append(out, link{lineAt(m[0]), t})
	}
	defs := map[string]bool{}
	for _, m := range refDef.FindAllStringSubmatchIndex(p, -1) {
		defs[strings.ToLower(p[m[2]:m[3]])] = true
		out = append(out, link{lineAt(m[0]), strings.Trim(p[m[4]:m[5]], "<>")})
	}
	var errs []string
	for _, m := range refLink.FindAllStringSubmatchIndex(p, -1) {
		label := p[m[4]:m[5]]
		if label == "" {
			label = p[m[2]:m[3]] // collapsed: [label][]
		}
		if !defs[strings.ToLower(label)] {
			errs = append(errs, fmt.Sprintf("line %d: reference [%s] has no definition", lineAt(m[0]), label))
		}
	}
	return out, errs
}

// slug is the anchor GitHub gives a heading: lower case, markup and
// punctuation dropped, spaces as hyphens.
func slug(h string) string {
	h = inlineLink.ReplaceAllString(h, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the anchors a markdown text defines: its headings' slugs
// (a repeated one numbered -1, -2, … as GitHub does) and HTML name/id
// anchors.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range strings.Split(noFences(text), "\n") {
		if m := heading.FindStringSubmatch(l); m != nil {
			s := slug(m[1])
			if n := seen[s]; n > 0 {
				out[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				out[s] = true
			}
			seen[s]++
		}
	}
	for _, m := range htmlAnchor.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

// checkLink returns why target, linked from the repository file from
// (slash-separated, relative to the root), does not resolve, or "".
func checkLink(from, target string) string {
	if target == "" {
		return "empty link"
	}
	if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return "" // a URL: not this test's business
	}
	file, anchor, _ := strings.Cut(target, "#")
	if i := strings.IndexByte(file, '?'); i >= 0 {
		file = file[:i]
	}
	if strings.HasPrefix(file, "/") {
		return "absolute path: link relative to the file instead"
	}
	rel := from // a bare #anchor is in the same file
	if file != "" {
		rel = path.Join(path.Dir(from), file)
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return "leaves the repository"
		}
	}
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		fi, serr := os.Stat(filepath.Join(root, filepath.FromSlash(rel)))
		switch {
		case serr != nil:
			return fmt.Sprintf("%s does not exist", rel)
		case fi.IsDir() && anchor != "":
			return fmt.Sprintf("anchor #%s on a directory", anchor)
		case fi.IsDir():
			return ""
		}
		return err.Error()
	}
	if anchor != "" && strings.HasSuffix(rel, ".md") && !anchors(string(data))[anchor] {
		return fmt.Sprintf("%s has no heading for #%s", rel, anchor)
	}
	return ""
}

// docFiles lists README.md and every markdown file under docs/,
// slash-separated and relative to the root.
func docFiles(t *testing.T) []string {
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Every relative link in README.md and docs/ names a file or directory
// inside the repository, and an anchor into a markdown file names one of
// its headings.
func TestRelativeLinksResolve(t *testing.T) {
	files := docFiles(t)
	if len(files) < 2 {
		t.Fatalf("found only %v: is the test run from docs/?", files)
	}
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		ls, errs := links(string(data))
		for _, e := range errs {
			t.Errorf("%s: %s", f, e)
		}
		for _, l := range ls {
			if why := checkLink(f, l.target); why != "" {
				t.Errorf("%s:%d: link %q: %s", f, l.line, l.target, why)
			}
			checked++
		}
	}
	t.Logf("%d links in %d files", checked, len(files))
}

// The checker itself finds what it must: a test that cannot fail is a
// defect.
func TestLinkCheckerFindsBrokenLinks(t *testing.T) {
	text := "# Top\n\n## A `code` heading, with punctuation!\n\n## Top\n\n" +
		"[ok](README.md) [wrapped\ntext](docs/api.md) ![img](<docs/format/>)\n" +
		"[self](#top) [dup](#top-1) [code](#a-code-heading-with-punctuation)\n" +
		"[missing](docs/nope.md) [escape](../outside.md) [abs](/etc/passwd)\n" +
		"[bad anchor](#nowhere) [ref][def] [undefined][nodef] [url](https://x.test/y)\n" +
		"`[in code](nope.md)`\n```\n[in a block](nope.md)\n```\n" +
		"[def]: docs/missing-too.md\n"
	ls, errs := links(text)
	if len(errs) != 1 || !strings.Contains(errs[0], "[nodef]") {
		t.Errorf("undefined references: %q, want one for [nodef]", errs)
	}
	var got []string
	for _, l := range ls {
		why := checkLinkIn(text, "README.md", l.target)
		got = append(got, fmt.Sprintf("%d %s: %s", l.line, l.target, why))
	}
	want := []string{
		"7 README.md: ",
		"7 docs/api.md: ",
		"8 docs/format/: ",
		"9 #top: ",
		"9 #top-1: ",
		"9 #a-code-heading-with-punctuation: ",
		"10 docs/nope.md: docs/nope.md does not exist",
		"10 ../outside.md: leaves the repository",
		"10 /etc/passwd: absolute path: link relative to the file instead",
		"11 #nowhere: README.md has no heading for #nowhere",
		"11 https://x.test/y: ",
		"16 docs/missing-too.md: docs/missing-too.md does not exist",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("checked:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// checkLinkIn is checkLink with from's own anchors taken from text, for
// links within a test text standing in for the file from.
func checkLinkIn(text, from, target string) string {
	if a, ok := strings.CutPrefix(target, "#"); ok {
		if anchors(text)[a] {
			return ""
		}
		return fmt.Sprintf("%s has no heading for #%s", from, a)
	}
	return checkLink(from, target)
}
