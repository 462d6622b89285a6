package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/tierd/tierd/engine"
	"github.com/tierd/tierd/server"
)

type testServer struct {
	url string
	eng *engine.Engine
}

func newServer(t *testing.T) *testServer {
	t.Helper()
	eng, err := engine.Open(context.Background(), engine.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	srv := httptest.NewServer(server.New(eng, server.Options{}))
	t.Cleanup(func() {
		srv.Close()
		eng.Close(context.Background())
	})
	return &testServer{url: srv.URL, eng: eng}
}

type result struct {
	code           int
	stdout, stderr string
}

// tierctl runs the CLI in-process with TIERD_ADDR pointing at addr.
func tierctl(t *testing.T, addr, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == "TIERD_ADDR" {
			return addr
		}
		return ""
	}
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb, getenv)
	return result{code, out.String(), errb.String()}
}

func mustRun(t *testing.T, addr, stdin string, args ...string) string {
	t.Helper()
	r := tierctl(t, addr, stdin, args...)
	if r.code != 0 {
		t.Fatalf("tierctl %v: exit %d\nstderr: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

func TestAppendThenReadRoundTrip(t *testing.T) {
	s := newServer(t)
	var in strings.Builder
	const n = 2500
	for i := range n {
		fmt.Fprintf(&in, `{"key":"k%d","ts":%d,"tags":["t"],"value":{"i":%d,"s":"<&>"}}`+"\n", i%7, 1_700_000_000_000_000_000+i, i)
		if i%500 == 0 {
			in.WriteString("\n") // blank lines are skipped, not counted
		}
	}
	file := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(file, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, s.url, "", "append", "rt", "--file", file, "--batch", "1000")
	fields := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])
	if strings.Join(fields, " ") != "rt 0 2499 2500 3" {
		t.Fatalf("append table:\n%s", out)
	}

	got := mustRun(t, s.url, "", "read", "rt", "--limit", "100000")
	resp, err := http.Get(s.url + "/v1/streams/rt/records?limit=100000")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got != string(want) {
		t.Fatalf("read output differs from the server's body (%d vs %d bytes)", len(got), len(want))
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("read %d lines, want %d", len(lines), n)
	}
	var rec struct {
		Offset uint64          `json:"offset"`
		Key    string          `json:"key"`
		Value  json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal([]byte(lines[1234]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Offset != 1234 || rec.Key != "k2" || string(rec.Value) != `{"i":1234,"s":"<&>"}` {
		t.Errorf("line 1234 = %s", lines[1234])
	}
}

func TestAppendStdinJSONAndFilters(t *testing.T) {
	s := newServer(t)
	in := `{"key":"a","value":1}` + "\n" + `{"key":"b","tags":["x"],"value":2}` + "\n" + `{"value":3}`
	out := mustRun(t, s.url, in, "append", "f", "-o", "json", "--batch", "2")
	var sum appendSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("append -o json %q: %v", out, err)
	}
	if sum != (appendSummary{Stream: "f", FirstOffset: 0, LastOffset: 2, Count: 3, Batches: 2}) {
		t.Errorf("summary %+v", sum)
	}
	cases := []struct {
		args []string
		want []string // values in order
	}{
		{[]string{"--key", "b"}, []string{"2"}},
		{[]string{"--key", ""}, []string{"3"}},
		{[]string{"--tag", "x"}, []string{"2"}},
		{[]string{"--from", "1"}, []string{"2", "3"}},
		{[]string{"--to", "0"}, []string{"1"}},
		{[]string{"--limit", "2"}, []string{"1", "2"}},
		{[]string{"--since", "2000-01-01T00:00:00Z"}, []string{"1", "2", "3"}},
		{[]string{"--until", "0"}, nil},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out := mustRun(t, s.url, "", append([]string{"read", "f"}, c.args...)...)
			var vals []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if l == "" {
					continue
				}
				var r struct{ Value json.RawMessage }
				if err := json.Unmarshal([]byte(l), &r); err != nil {
					t.Fatal(err)
				}
				vals = append(vals, string(r.Value))
			}
			if fmt.Sprint(vals) != fmt.Sprint(c.want) {
				t.Errorf("values %v, want %v", vals, c.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	s := newServer(t)
	cases := []struct {
		name     string
		stdin    string
		args     []string
		code     int
		inStderr []string
	}{
		{"unknown stream", "", []string{"read", "nope"}, 1, []string{`error: stream_not_found: no stream "nope" on http://`}},
		{"segments of unknown stream", "", []string{"segments", "nope"}, 1, []string{`error: stream_not_found: no stream "nope" on http://`}},
		{"tail of unknown stream", "", []string{"tail", "nope"}, 1, []string{`error: stream_not_found: no stream "nope" on http://`}},
		{"read --all of unknown stream", "", []string{"read", "nope", "--all"}, 1, []string{`error: stream_not_found: no stream "nope" on http://`}},
		{"bad stream name", "{}", []string{"append", ".x"}, 1, []string{"error: invalid_stream_name: ", ".x"}},
		{"limit over a page", "", []string{"read", "nope", "--limit", "100001"}, 1, []string{`no stream "nope"`}},
		{"limit zero", "", []string{"read", "nope", "--limit", "0"}, 2, []string{`--limit: "0" is not a number of records (a whole number ≥ 1)`, "Run 'tierctl read --help'"}},
		{"limit with all", "", []string{"read", "nope", "--limit", "5", "--all"}, 2, []string{"--all and --limit"}},
		{"bad line in the second batch", "{}\n{}\n{}\n\n{}\n{\"value\":}\n", []string{"append", "p", "--batch", "3"}, 1,
			[]string{"error: invalid_json: input line 6:", "lines 5–6 was not appended", "3 records in 1 earlier batches were (offsets 0–2)"}},
		{"empty input", "\n\n", []string{"append", "p"}, 1, []string{"error: the input holds no records"}},
		{"missing file", "", []string{"append", "p", "--file", "/nonexistent/x"}, 1, []string{"error: --file: ", "/nonexistent/x", "no such file"}},
		{"server down", "", []string{"--addr", "http://127.0.0.1:1", "streams"}, 1,
			[]string{"error: cannot reach tierd at http://127.0.0.1:1 (from --addr): connection refused; is tierd running there? Set the address with --addr URL or TIERD_ADDR.\n"}},
		{"bad address", "", []string{"--addr", "http://a b:1", "streams"}, 2, []string{`--addr: "http://a b:1" is not a server's URL`}},
		{"no stream argument", "", []string{"read"}, 2, []string{"read wants one argument, STREAM", "Run 'tierctl read --help'"}},
		{"extra argument", "", []string{"streams", "x"}, 2, []string{"takes no arguments", "Run 'tierctl streams --help'"}},
		{"bad output format", "", []string{"streams", "-o", "yaml"}, 2, []string{`-o/--output: "yaml" is not an output format (table or json)`}},
		{"bad progress", "", []string{"verify", "--progress", "sometimes"}, 2, []string{`--progress: "sometimes" is not auto, always or never`}},
		{"bad since", "", []string{"read", "s", "--since", "noon"}, 2, []string{`--since: "noon" is not a time`}},
		{"to below from", "", []string{"read", "s", "--from", "5", "--to", "3"}, 2, []string{"--to 3 is below --from 5"}},
		{"until before since", "", []string{"read", "s", "--since", "10", "--until", "5"}, 2, []string{"--until 5 is not after --since 10"}},
		{"negative offset", "", []string{"read", "s", "--from", "-1"}, 2, []string{`--from: "-1" is not an offset (a whole number ≥ 0)`}},
		{"word for an offset", "", []string{"read", "s", "--from", "abc"}, 2, []string{`--from: "abc" is not an offset (a whole number ≥ 0)`, "Run 'tierctl read --help' for usage."}},
		{"unknown flag", "", []string{"read", "s", "--bogus"}, 2, []string{"unknown flag: --bogus\nRun 'tierctl read --help' for usage."}},
		{"misspelled flag", "", []string{"read", "s", "--limt", "3"}, 2, []string{"unknown flag: --limt (did you mean --limit?)\nRun 'tierctl read --help' for usage."}},
		{"misspelled global flag", "", []string{"streams", "--adr", "x"}, 2, []string{"(did you mean --addr?)", "Run 'tierctl streams --help'"}},
		{"unknown verb", "", []string{"frobnicate"}, 2, []string{"unknown command", "Run 'tierctl --help'"}},
		{"misspelled sub-verb", "", []string{"policy", "chek", "x.yaml"}, 2, []string{`unknown command "chek" for "tierctl policy" (did you mean "check"?)`, "Run 'tierctl policy --help'"}},
		{"zero batch", "{}", []string{"append", "s", "--batch", "0"}, 2, []string{`--batch: "0" is not a number of records (a whole number ≥ 1)`}},
		{"bad batch size", "{}", []string{"append", "s", "--batch-bytes", "16XB"}, 2, []string{`--batch-bytes: "16XB" is not a size (a number with an optional unit: 16MiB, 512KiB, 1000000)`}},
		{"bad wait", "", []string{"tail", "s", "--wait", "5"}, 2, []string{`--wait: "5" is not a duration (a number with a unit: 500ms, 30s, 2m)`, "Run 'tierctl tail --help'"}},
		{"wait out of range", "", []string{"tail", "s", "--wait", "0s"}, 2, []string{`--wait: "0s" is out of range (1ms to 1m)`}},
		{"bad lines", "", []string{"tail", "s", "-n", "ten"}, 2, []string{`-n/--lines: "ten" is not a number of records (a whole number ≥ 0)`}},
		{"bad bool", "", []string{"tail", "s", "--follow=maybe"}, 2, []string{`-f/--follow: "maybe" is not true or false`}},
		{"bad retries", "{}", []string{"append", "s", "--retries", "-1"}, 2, []string{`--retries: "-1" is not a number of retries (a whole number ≥ 0)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tierctl(t, s.url, c.stdin, c.args...)
			if r.code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, c.code, r.stderr)
			}
			for _, want := range c.inStderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr %q lacks %q", r.stderr, want)
				}
			}
		})
	}
	// The rejected second batch left the first one appended, and only it.
	out := mustRun(t, s.url, "", "read", "p")
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("stream p holds %d records, want 3", n)
	}
}

func TestListings(t *testing.T) {
	s := newServer(t)
	mustRun(t, s.url, `{"value":1}`+"\n"+`{"value":2}`, "append", "b")
	if err := s.eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustRun(t, s.url, `{"value":3}`, "append", "b")
	mustRun(t, s.url, `{}`, "append", "a")

	out := mustRun(t, s.url, "", "streams")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME NEXT_OFFSET RECORDS HOT WARM COLD" {
		t.Fatalf("streams table:\n%s", out)
	}
	if f := strings.Fields(lines[2]); f[0] != "b" || f[1] != "3" || f[2] != "3" || !strings.Contains(lines[2], "1 seg / ") {
		t.Errorf("stream b row %q", lines[2])
	}
	// Columns line up: every row's second column starts where the header's does.
	col := strings.Index(lines[0], "NEXT_OFFSET")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row %q is not aligned with the header", l)
		}
	}

	var js struct {
		Streams []struct {
			Name string `json:"name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, s.url, "", "streams", "-o", "json")), &js); err != nil || len(js.Streams) != 2 {
		t.Fatalf("streams -o json: %+v %v", js, err)
	}

	out = mustRun(t, s.url, "", "segments", "b")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "BASE") {
		t.Fatalf("segments table:\n%s", out)
	}
	if !strings.Contains(lines[1], "sha256:") || !strings.Contains(lines[1], "warm") {
		t.Errorf("sealed row %q", lines[1])
	}
	if !strings.Contains(lines[2], "(active)") || !strings.Contains(lines[2], "hot") {
		t.Errorf("active row %q", lines[2])
	}
	var segs []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, s.url, "", "segments", "b", "-o", "json")), &segs); err != nil || len(segs) != 2 {
		t.Fatalf("segments -o json: %v %v", segs, err)
	}
	if d, _ := segs[0]["digest"].(string); len(d) != 71 {
		t.Errorf("json digest %q not whole", d)
	}

	out = mustRun(t, s.url, "", "status")
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	// TIER STREAMS SEGMENTS SIZE(2 cells) OLDEST NEWEST BUDGET: a, b and b's
	// active segment in memory; b's sealed segment warm.
	if h := rows["hot"]; len(h) < 3 || h[1] != "2" || h[2] != "3" || !strings.Contains(strings.Join(h, " "), "/ 1.0 GiB (") {
		t.Errorf("status hot row %q in\n%s", h, out)
	}
	if w := rows["warm"]; len(w) < 3 || w[1] != "1" || w[2] != "1" {
		t.Errorf("status warm row %q in\n%s", w, out)
	}
	if _, ok := rows["cold"]; ok {
		t.Errorf("a server without a cold tier shows a cold row:\n%s", out)
	}
	if !strings.Contains(out, "migrator: none") || !strings.Contains(out, "sync always") {
		t.Errorf("status table:\n%s", out)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, s.url, "", "status", "-o", "json")), &st); err != nil || st["streams"] != 2.0 {
		t.Fatalf("status -o json: %v %v", st, err)
	}
}

// TestHelpWritesSizesAsPeopleDo walks the command tree: every verb's
// --help shows an example of it, and no flag's default is shown as a raw
// number of bytes or a Go duration ("16777216", "1m0s") where people
// write 16MiB or 1m.
func TestHelpWritesSizesAsPeopleDo(t *testing.T) {
	root := newRoot(&app{stdout: io.Discard, stderr: io.Discard}, func(string) string { return "" })
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			walk(sub)
		}
		if c == root {
			return
		}
		n++
		path := strings.Fields(c.CommandPath())[1:]
		r := tierctl(t, "", "", append(path, "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "  tierctl "+strings.Join(path, " ")) {
			t.Errorf("tierctl %s --help: exit %d, want an example of the verb:\n%s", strings.Join(path, " "), r.code, r.stdout)
		}
		if m := rawDefault.FindString(r.stdout); m != "" {
			t.Errorf("tierctl %s --help shows a default as %q, not as people write it:\n%s", strings.Join(path, " "), m, r.stdout)
		}
	}
	walk(root)
	if r := tierctl(t, "", "", "append", "--help"); !strings.Contains(r.stdout, "(default 16MiB)") {
		t.Errorf("append --help does not show --batch-bytes's default as 16MiB:\n%s", r.stdout)
	}
	if n < 12 {
		t.Fatalf("walked %d verbs; the tree has more", n)
	}
}

// rawDefault matches a default shown as a bare byte count or with Go's
// "0s" tails.
var rawDefault = regexp.MustCompile(`\(default \d{5,}\)|\(default [^)]*\dm0s\)|\(default [^)]*h0m`)

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB",
		3 << 30: "3.0 GiB", 2 << 40: "2.0 TiB", 5000 << 40: "5000.0 TiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
