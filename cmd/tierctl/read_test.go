package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/client"
)

// appendN appends records 0..n-1 to stream: key k<i%5>, tag t<i%3>.
func appendN(t *testing.T, s *testServer, stream string, n int) {
	t.Helper()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, `{"key":"k%d","tags":["t%d"],"ts":%d,"value":%d}`+"\n", i%5, i%3, 1_700_000_000_000_000_000+int64(i), i)
	}
	mustRun(t, s.url, in.String(), "append", stream, "--batch", "10000")
}

// offsets decodes read's output into the offsets it holds, in order.
func offsets(t *testing.T, out string) []uint64 {
	t.Helper()
	var offs []uint64
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var r struct{ Offset uint64 }
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		offs = append(offs, r.Offset)
	}
	return offs
}

// want lists the offsets in [from, to] that keep selects.
func want(from, to uint64, keep func(uint64) bool) []uint64 {
	var out []uint64
	for o := from; o <= to; o++ {
		if keep == nil || keep(o) {
			out = append(out, o)
		}
	}
	return out
}

// TestReadHasNoSilentCap: a read of 2500 records prints the first 1000
// and says so on stderr, with how to go on; --to, --until, --limit and
// --all print every record they select.
func TestReadHasNoSilentCap(t *testing.T) {
	s := newServer(t)
	appendN(t, s, "r", 2500)
	r := tierctl(t, s.url, "", "read", "r")
	if got := offsets(t, r.stdout); r.code != 0 || fmt.Sprint(got) != fmt.Sprint(want(0, 999, nil)) {
		t.Fatalf("read without bounds: exit %d, %d records, want offsets 0–999; stderr %q", r.code, len(got), r.stderr)
	}
	if notice := "tierctl: printed the first 1000 records of r (offsets 0–999); there are more: go on with --from 1000, or use --limit N, --to OFFSET or --all\n"; r.stderr != notice {
		t.Fatalf("stderr %q, want the notice %q", r.stderr, notice)
	}
	for _, c := range []struct {
		args []string
		want []uint64
	}{
		{[]string{"--to", "2499"}, want(0, 2499, nil)},
		{[]string{"--from", "100", "--to", "1600"}, want(100, 1600, nil)},
		{[]string{"--until", fmt.Sprint(1_700_000_000_000_000_000 + 2000)}, want(0, 1999, nil)},
		{[]string{"--limit", "2200"}, want(0, 2199, nil)},
		{[]string{"--all"}, want(0, 2499, nil)},
		{[]string{"--all", "--from", "2400"}, want(2400, 2499, nil)},
		{[]string{"--all", "--to", "10"}, want(0, 10, nil)},
		{[]string{"--all", "--key", "k3"}, want(0, 2499, func(o uint64) bool { return o%5 == 3 })},
		{[]string{"--from", "1501"}, want(1501, 2499, nil)}, // under the default cap: no notice
		{[]string{"--key", "k1", "--from", "2000"}, want(2000, 2499, func(o uint64) bool { return o%5 == 1 })},
	} {
		r := tierctl(t, s.url, "", append([]string{"read", "r"}, c.args...)...)
		if got := offsets(t, r.stdout); r.code != 0 || r.stderr != "" || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("read %v: exit %d, stderr %q, %d records, want %d", c.args, r.code, r.stderr, len(got), len(c.want))
		}
	}
}

// TestReadPages: with a page of a few records, every selection comes out
// whole, once, in order, across page ends; the default cap still cuts at
// 1000 and tells; an explicit --limit that ends on a page end stops there.
func TestReadPages(t *testing.T) {
	s := newServer(t)
	appendN(t, s, "p", 1203)
	tag1 := func(o uint64) bool { return o%3 == 1 }
	k2 := func(o uint64) bool { return o%5 == 2 }
	to := func(n uint64) *uint64 { return &n }
	key := func(k string) *string { return &k }
	for _, c := range []struct {
		name   string
		plan   readPlan
		want   []uint64
		notice bool
	}{
		{"all", readPlan{all: true}, want(0, 1202, nil), false},
		{"all from", readPlan{all: true, q: qFromTo(1000, nil)}, want(1000, 1202, nil), false},
		{"to", readPlan{q: qFromTo(5, to(1000))}, want(5, 1000, nil), false},
		{"to on a page end", readPlan{q: qFromTo(0, to(13))}, want(0, 13, nil), false},
		{"limit", readPlan{limit: 21}, want(0, 20, nil), false},
		{"limit on a page end", readPlan{limit: 14}, want(0, 13, nil), false},
		{"limit past the end", readPlan{limit: 5000}, want(0, 1202, nil), false},
		{"tag", readPlan{all: true, q: qTag("t1")}, want(0, 1202, tag1), false},
		{"key with to", readPlan{q: qKeyTo(key("k2"), to(600))}, want(0, 600, k2), false},
		{"default cap", readPlan{limit: defaultReadCap, defaultCap: true}, want(0, 999, nil), true},
		{"default cap, fewer", readPlan{limit: defaultReadCap, defaultCap: true, q: qFromTo(203, nil)}, want(203, 1202, nil), false},
		{"default cap, exactly", readPlan{limit: defaultReadCap, defaultCap: true, q: qFromTo(202, nil)}, want(202, 1201, nil), true},
		{"past the end", readPlan{all: true, q: qFromTo(5000, nil)}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, page := range []int{7, 1000, pageLimit} {
				c.plan.page = page
				var out, errb bytes.Buffer
				a := &app{stdout: &out, stderr: &errb, addr: s.url, progress: "never"}
				if err := a.read(context.Background(), "p", c.plan); err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
				if got := offsets(t, out.String()); fmt.Sprint(got) != fmt.Sprint(c.want) {
					t.Fatalf("page %d: %d records %v…, want %d", page, len(got), got[:min(len(got), 5)], len(c.want))
				}
				if gotNotice := strings.Contains(errb.String(), "there are more"); gotNotice != c.notice {
					t.Fatalf("page %d: stderr %q, want a notice: %v", page, errb.String(), c.notice)
				}
			}
		})
	}
}

func qFromTo(from uint64, to *uint64) client.Query { return client.Query{From: from, To: to} }
func qTag(tag string) client.Query                 { return client.Query{Tag: tag} }
func qKeyTo(key *string, to *uint64) client.Query  { return client.Query{Key: key, To: to} }

// TestReadAllEndsAtTheStartsNextOffset: records appended while --all
// runs are not part of it, so an export has a definite end.
func TestReadAllEndsAtTheStartsNextOffset(t *testing.T) {
	s := newServer(t)
	appendN(t, s, "grow", 50)
	var out, errb bytes.Buffer
	a := &app{stdout: &appendingWriter{w: &out, s: s, t: t}, stderr: &errb, addr: s.url, progress: "never"}
	if err := a.read(context.Background(), "grow", readPlan{all: true, page: 10}); err != nil {
		t.Fatal(err)
	}
	if got := offsets(t, out.String()); fmt.Sprint(got) != fmt.Sprint(want(0, 49, nil)) {
		t.Fatalf("read --all of a stream growing under it: %d records, want the 50 there at the start", len(got))
	}
}

// appendingWriter appends a record to stream grow on every write.
type appendingWriter struct {
	w *bytes.Buffer
	s *testServer
	t *testing.T
}

func (a *appendingWriter) Write(b []byte) (int, error) {
	mustRun(a.t, a.s.url, `{"value":"late"}`, "append", "grow")
	return a.w.Write(b)
}

func TestLineOffset(t *testing.T) {
	for line, want := range map[string]uint64{
		`{"offset":0,"ts":"x"}`:            0,
		`{"offset":18446744073709551615}`:  18446744073709551615,
		`{ "offset" : 42 , "ts":"x"}`:      42, // not the server's form: decoded
		`{"ts":"x","offset":7,"tier":"h"}`: 7,
	} {
		if got, err := lineOffset([]byte(line)); err != nil || got != want {
			t.Errorf("lineOffset(%s) = %d, %v; want %d", line, got, err, want)
		}
	}
	for _, bad := range []string{`{"ts":"x"}`, `{"offset":-1}`, `not json`, `{"offset":"7"}`} {
		if _, err := lineOffset([]byte(bad)); err == nil {
			t.Errorf("lineOffset(%s): no error", bad)
		}
	}
}

// TestInterrupted: Ctrl-C ends tail -f quietly with exit 0; it ends a read
// with exit 130 and, when records were printed, where to resume.
func TestInterrupted(t *testing.T) {
	s := newServer(t)
	appendN(t, s, "t", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == "TIERD_ADDR" {
			return s.url
		}
		return ""
	}
	code := run(ctx, []string{"tail", "t", "-f", "-n", "2"}, strings.NewReader(""), &out, &errb, getenv)
	if code != 0 || errb.Len() != 0 || fmt.Sprint(offsets(t, out.String())) != "[1 2]" {
		t.Fatalf("tail -f interrupted: exit %d, stderr %q, stdout %q; want 0, nothing, offsets 1 and 2", code, errb.String(), out.String())
	}

	// A server that sends three records and then nothing.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		for i := range 3 {
			fmt.Fprintf(w, `{"offset":%d,"ts":"2026-11-22T10:00:00Z","value":%d,"tier":"hot"}`+"\n", i, i)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer slow.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out.Reset()
	errb.Reset()
	code = run(ctx, []string{"read", "t", "--to", "10", "--addr", slow.URL}, strings.NewReader(""), &out, &errb, getenv)
	if code != 130 || errb.String() != "tierctl: stopped after offset 2 of t (3 records printed); resume with --from 3\n" || strings.Count(out.String(), "\n") != 3 {
		t.Fatalf("read interrupted after 3 records: exit %d, stderr %q, stdout %q", code, errb.String(), out.String())
	}
}
