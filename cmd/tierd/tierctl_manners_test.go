package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// How tierctl speaks to a newcomer (issue 11): every error names what it
// is about, reads never stop silently, an unreachable server is one line
// with the hint, and a wrong address fails fast. Each run is a real
// tierctl process against a real tierd.

// TestTierctlErrorsNameTheirSubject: each error's text names the stream,
// the flag or the address it is about, and usage errors point at the
// verb's own help.
func TestTierctlErrorsNameTheirSubject(t *testing.T) {
	dir := t.TempDir()
	config := writeConfig(t, dir, "wal: {sync: always}\n")
	d := startDaemonEnv(t, config, filepath.Join(dir, "data"))
	base := "http://" + d.addr
	env := ctlEnv("TIERD_ADDR=" + base)
	if r := runCtl(t, env, e2eRecords("k", 0, 3), "append", "there"); r.code != 0 {
		t.Fatalf("%v", r)
	}

	missing := fmt.Sprintf(`no stream "nope" on %s (tierctl streams lists them)`, base)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"read", "nope"}, "error: stream_not_found: " + missing},
		{[]string{"read", "nope", "--all"}, "error: stream_not_found: " + missing},
		{[]string{"tail", "nope"}, "error: stream_not_found: " + missing},
		{[]string{"tail", "nope", "-f"}, "error: stream_not_found: " + missing},
		{[]string{"segments", "nope"}, "error: stream_not_found: " + missing},
		{[]string{"explain", "nope"}, "error: stream_not_found: " + missing},
		{[]string{"migrate", "--stream", "nope"}, "error: stream_not_found: --stream: " + missing},
		{[]string{"migrate", "--dry-run", "--stream", "nope"}, "error: stream_not_found: --stream: " + missing},
		{[]string{"verify", "--stream", "nope"}, "error: stream_not_found: --stream: " + missing},
	} {
		r := runCtl(t, env, "", c.args...)
		if r.code != 1 || r.stderr != c.want+"\n" || r.stdout != "" {
			t.Errorf("a missing stream: want exit 1 and %q: %v", c.want, r)
		}
	}

	for _, c := range []struct {
		args       []string
		want, help string
	}{
		{[]string{"read", "there", "--from", "abc"}, `error: --from: "abc" is not an offset (a whole number ≥ 0)`, "tierctl read"},
		{[]string{"read", "there", "--limt", "5"}, "error: unknown flag: --limt (did you mean --limit?)", "tierctl read"},
		{[]string{"tail", "there", "--wait", "90s"}, `error: --wait: "90s" is out of range (1ms to 1m)`, "tierctl tail"},
		{[]string{"append", "there", "--batch-bytes", "lots"}, `error: --batch-bytes: "lots" is not a size (a number with an optional unit: 16MiB, 512KiB, 1000000)`, "tierctl append"},
		{[]string{"verify", "--strem", "there"}, "error: unknown flag: --strem (did you mean --stream?)", "tierctl verify"},
		{[]string{"segments"}, "error: segments wants one argument, STREAM (got 0)", "tierctl segments"},
		{[]string{"catalog", "rebuilt"}, `error: unknown command "rebuilt" for "tierctl catalog" (did you mean "rebuild"?)`, "tierctl catalog"},
		{[]string{"streams", "--addr", "http://a b"}, `error: --addr: "http://a b" is not a server's URL (want http://HOST:PORT)`, "tierctl streams"},
	} {
		r := runCtl(t, env, "", c.args...)
		if want := c.want + "\nRun '" + c.help + " --help' for usage.\n"; r.code != 2 || r.stderr != want || r.stdout != "" {
			t.Errorf("usage error: want exit 2 and\n%s%v", want, r)
		}
	}
	// Sizes and durations in help as in the configuration, and taken so.
	if r := runCtl(t, env, "", "append", "--help"); !strings.Contains(r.stdout, "(default 16MiB)") || strings.Contains(r.stdout, "16777216") {
		t.Errorf("append --help: --batch-bytes's default is not shown as 16MiB: %v", r)
	}
	if r := runCtl(t, env, "", "tail", "--help"); !strings.Contains(r.stdout, "(default 30s)") {
		t.Errorf("tail --help: --wait's default is not shown as 30s: %v", r)
	}
	if r := runCtl(t, env, e2eRecords("k", 3, 6), "append", "there", "--batch-bytes", "0.25KiB", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"batches": 3`) {
		t.Errorf("append --batch-bytes 0.25KiB of three records over 128 bytes: want a batch each: %v", r)
	}

	// A server that is down: one line, the address, where it came from
	// and the hint, from every verb.
	down := "http://" + freeAddr(t)
	hint := "; is tierd running there? Set the address with --addr URL or TIERD_ADDR.\n"
	for _, args := range [][]string{{"streams"}, {"status"}, {"read", "there"}, {"read", "there", "--all"}, {"segments", "there"},
		{"explain", "there"}, {"migrate"}, {"verify"}, {"tail", "there", "-f"}} {
		r := runCtl(t, ctlEnv("TIERD_ADDR="+down), "", args...)
		if want := "error: cannot reach tierd at " + down + " (from TIERD_ADDR): connection refused" + hint; r.code != 1 || r.stderr != want {
			t.Errorf("server down: want exit 1 and\n%s%v", want, r)
		}
	}
	r := runCtl(t, env, "", "streams", "--addr", down)
	if want := "error: cannot reach tierd at " + down + " (from --addr): connection refused" + hint; r.code != 1 || r.stderr != want {
		t.Errorf("server down, --addr: want exit 1 and\n%s%v", want, r)
	}
}

// TestTierctlAppendToAClosedPortFailsFast: append to an address nothing
// listens on gives up within a few seconds with the one-line hint (it
// used to retry for two minutes, a long line each time); told to wait,
// it waits that long and says so once.
func TestTierctlAppendToAClosedPortFailsFast(t *testing.T) {
	down := "http://" + freeAddr(t)
	file := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(file, []byte(e2eRecords("c", 0, 2000)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := runCtl(t, ctlEnv("TIERD_ADDR="+down), "", "append", "s", "--file", file)
	took := time.Since(start)
	want := "error: cannot reach tierd at " + down + " (from TIERD_ADDR): connection refused; is tierd running there? Set the address with --addr URL or TIERD_ADDR.\n"
	if r.code != 1 || r.stderr != want || r.stdout != "" {
		t.Fatalf("append to a closed port: want exit 1 and one line\n%s%v", want, r)
	}
	if took > 5*time.Second {
		t.Fatalf("append to a closed port took %s to give up, want a few seconds at most", took)
	}
	start = time.Now()
	r = runCtl(t, ctlEnv("TIERD_ADDR="+down), "", "append", "s", "--file", file, "--wait-for-server", "1500ms")
	took = time.Since(start)
	if r.code != 1 || strings.Count(r.stderr, "\n") != 2 || !strings.Contains(r.stderr, "waiting up to 1.5s for it (--wait-for-server)") || took < 1500*time.Millisecond {
		t.Fatalf("append --wait-for-server 1500ms to a closed port: gave up after %s: %v", took, r)
	}
}

// TestTierctlReadsWithoutASilentCap: a read of 5000 records returns 5000
// or says on stderr why not, and read --all of a stream longer than the
// server's 100000 records per request returns every record once, in
// order.
func TestTierctlReadsWithoutASilentCap(t *testing.T) {
	dir := t.TempDir()
	config := writeConfig(t, dir, "wal: {sync: interval}\n")
	d := startDaemonEnv(t, config, filepath.Join(dir, "data"))
	env := ctlEnv("TIERD_ADDR=http://" + d.addr)
	const n = 100_123 // more than one request's worth
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, `{"key":"k%d","value":%d}`+"\n", i%10, i)
	}
	file := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(file, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCtl(t, env, "", "append", "big", "--file", file, "--batch", "20000"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	checkOffsets := func(what, out string, from, count int) {
		t.Helper()
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != count {
			t.Fatalf("%s: %d records, want %d", what, len(lines), count)
		}
		for j, l := range lines {
			if want := fmt.Sprintf(`{"offset":%d,`, from+j); !strings.HasPrefix(l, want) || !strings.Contains(l, fmt.Sprintf(`"value":%d,`, from+j)) {
				t.Fatalf("%s: line %d is %.80s, want offset and value %d", what, j, l, from+j)
			}
		}
	}

	r := runCtl(t, env, "", "read", "big", "--from", "10000")
	checkOffsets("read --from 10000", r.stdout, 10000, 1000)
	if want := "tierctl: printed the first 1000 records of big (offsets 10000–10999); there are more: go on with --from 11000, or use --limit N, --to OFFSET or --all\n"; r.code != 0 || r.stderr != want {
		t.Fatalf("read cut by the default cap: want exit 0 and the notice\n%s%v", want, r)
	}
	for _, c := range []struct {
		args        []string
		from, count int
	}{
		{[]string{"--to", "4999"}, 0, 5000},
		{[]string{"--from", "95000", "--to", "99999"}, 95000, 5000},
		{[]string{"--limit", "5000"}, 0, 5000},
		{[]string{"--from", "99500"}, 99500, n - 99500}, // fewer than the cap left: nothing to say
		{[]string{"--limit", "100100"}, 0, 100100},
		{[]string{"--all"}, 0, n},
		{[]string{"--all", "--from", "99999"}, 99999, n - 99999},
	} {
		r := runCtl(t, env, "", append([]string{"read", "big"}, c.args...)...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("read %v: exit %d, stderr %q", c.args, r.code, r.stderr)
		}
		checkOffsets(fmt.Sprintf("read %v", c.args), r.stdout, c.from, c.count)
	}
	r = runCtl(t, env, "", "read", "big", "--all", "--key", "k7")
	if got := strings.Count(r.stdout, "\n"); r.code != 0 || got != n/10 {
		t.Fatalf("read --all --key k7: %d records, want %d: %.300s", got, n/10, r.stderr)
	}
	// Progress when asked: on stderr, ending at the last offset, and
	// stdout the export alone.
	r = runCtl(t, env, "", "read", "big", "--all", "--progress", "always")
	checkOffsets("read --all --progress always", r.stdout, 0, n)
	if !strings.Contains(r.stderr, fmt.Sprintf("%d/%d records", n, n)) {
		t.Fatalf("read --all --progress always: no progress ending at %d/%d records on stderr: %.300q", n, n, r.stderr)
	}
}
