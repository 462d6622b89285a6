package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTierctlTokens: against a tierd with auth.tokens, tierctl sends
// $TIERD_TOKEN; without one, or with a wrong one, it exits 1 with the
// server's 401 code; a read token may list but not migrate (403); an admin
// token may do everything; and no secret ever appears in its output.
func TestTierctlTokens(t *testing.T) {
	dir := t.TempDir()
	config := writeConfig(t, dir, `
wal: {sync: always}
auth:
  tokens:
    - {name: viewer, role: read, token_env: TIERD_TEST_READ_TOKEN}
    - {name: ops, role: admin, token_env: TIERD_TEST_ADMIN_TOKEN}
`)
	const readTok, adminTok = "read-secret-3f9a1c", "admin-secret-77b0e2"
	d := startDaemonEnv(t, config, filepath.Join(dir, "data"), "TIERD_TEST_READ_TOKEN="+readTok, "TIERD_TEST_ADMIN_TOKEN="+adminTok)
	addr := "TIERD_ADDR=http://" + d.addr
	none, reader, admin, wrong := ctlEnv(addr), ctlEnv(addr, "TIERD_TOKEN="+readTok), ctlEnv(addr, "TIERD_TOKEN="+adminTok+"\n"), ctlEnv(addr, "TIERD_TOKEN=not-"+adminTok)
	var runs []ctlResult
	run := func(env []string, stdin string, args ...string) ctlResult {
		t.Helper()
		r := runCtl(t, env, stdin, args...)
		runs = append(runs, r)
		return r
	}
	for _, c := range []struct {
		name string
		env  []string
		args []string
		code int
		want string // on stderr for a failure, on stdout for success
	}{
		{"no token streams", none, []string{"streams"}, 1, "error: unauthorized: "},
		{"no token status -o json", none, []string{"status", "-o", "json"}, 1, "error: unauthorized: "},
		{"wrong token", wrong, []string{"streams"}, 1, "error: unauthorized: "},
		{"admin append", admin, []string{"append", "s", "-o", "json"}, 0, `"last_offset": 2,`},
		{"read streams", reader, []string{"streams", "-o", "json"}, 0, `"next_offset": 3,`},
		{"read read", reader, []string{"read", "s", "--from", "2"}, 0, `"offset":2`},
		{"read tail", reader, []string{"tail", "s", "-n", "1"}, 0, `"offset":2`},
		{"read status", reader, []string{"status"}, 0, "migrator:"},
		{"read append", reader, []string{"append", "s"}, 1, "error: forbidden: token viewer may not do this: it needs the write role"},
		{"read migrate", reader, []string{"migrate"}, 1, "error: forbidden: "},
		{"read migrate --progress always", reader, []string{"migrate", "--progress", "always"}, 1, "error: forbidden: "},
		{"read verify", reader, []string{"verify"}, 1, "error: forbidden: "},
		{"read explain", reader, []string{"explain", "s"}, 1, "error: forbidden: "},
		{"no token tail -f", none, []string{"tail", "s", "-f"}, 1, "error: unauthorized: "},
		{"admin migrate", admin, []string{"migrate"}, 0, "0 actions, 0 failed"},
		{"admin verify --progress always", admin, []string{"verify", "--progress", "always"}, 0, "OK: "},
		{"admin explain", admin, []string{"explain", "s"}, 0, "stream s: policy default"},
	} {
		r := run(c.env, e2eRecords("t", 0, 3), c.args...)
		out := r.stdout
		if c.code != 0 {
			out = r.stderr
		}
		if r.code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: want exit %d and %q: %v", c.name, c.code, c.want, r)
		}
	}
	// tail -f with a token follows as well.
	tail := startCtl(t, reader, "tail", "s", "-n", "1", "-f", "--wait", "1s")
	waitFor(t, 10*time.Second, "tail -f with a read token prints the last record", func() (bool, string) {
		return strings.Contains(tail.stdout.String(), `"offset":2`), tail.stderr.String()
	})
	run(admin, e2eRecords("t", 3, 4), "append", "s")
	waitFor(t, 10*time.Second, "tail -f with a read token prints a new record", func() (bool, string) {
		return strings.Contains(tail.stdout.String(), `"offset":3`), tail.stdout.String() + tail.stderr.String()
	})
	if code := tail.interrupt(t); code != 0 || tail.stderr.String() != "" {
		t.Errorf("tail -f with a token: exit %d, stderr %q", code, tail.stderr)
	}
	runs = append(runs, ctlResult{stdout: tail.stdout.String(), stderr: tail.stderr.String(), args: []string{"tail -f"}})
	for _, r := range runs {
		for _, secret := range []string{readTok, adminTok} {
			if strings.Contains(r.stdout, secret) || strings.Contains(r.stderr, secret) {
				t.Fatalf("a token appears in tierctl's output: %v", r)
			}
		}
	}
}

// TestTailFollowsAcrossRestart: tail -f keeps following while tierd is
// stopped gracefully and started again on the same data and address: it
// says on stderr that the server went away and that it reconnected, and
// prints every record appended before and after the restart exactly once,
// in order.
func TestTailFollowsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	config := writeConfig(t, dir, "wal: {sync: always}\n")
	d := startDaemonEnv(t, config, dataDir)
	env := ctlEnv("TIERD_ADDR=http://" + d.addr)
	const s = "follow.me"
	if r := runCtl(t, env, e2eRecords("f", 0, 3), "append", s); r.code != 0 {
		t.Fatalf("%v", r)
	}
	before := streamsRequests(t, d.addr)
	tail := startCtl(t, env, "tail", s, "-n", "0", "-f", "--wait", "1s")
	waitFor(t, 10*time.Second, "tail -f asked for the stream's next offset", func() (bool, string) {
		return streamsRequests(t, d.addr) > before, tail.stderr.String()
	})
	if r := runCtl(t, env, e2eRecords("f", 3, 5), "append", s); r.code != 0 {
		t.Fatalf("%v", r)
	}
	waitFor(t, 10*time.Second, "tail -f prints the 2 records appended before the restart", func() (bool, string) {
		return strings.Count(tail.stdout.String(), "\n") == 2, tail.stdout.String()
	})

	d.stop(t)
	waitFor(t, 10*time.Second, "tail -f reports the outage on stderr", func() (bool, string) {
		s := tail.stderr.String()
		return strings.Contains(s, "connection refused") && strings.Contains(s, "retrying every second"), s
	})
	select {
	case <-tail.exited:
		t.Fatalf("tail -f exited (code %d) when the server went away; stderr:\n%s", tail.cmd.ProcessState.ExitCode(), tail.stderr)
	default:
	}
	d.restart(t)
	// Appended at once, before tail's next retry: it must resume at the
	// first offset it has not printed.
	if r := runCtl(t, env, e2eRecords("f", 5, 7), "append", s); r.code != 0 {
		t.Fatalf("%v", r)
	}
	if r := runCtl(t, env, e2eRecords("f", 7, 8), "append", s); r.code != 0 {
		t.Fatalf("%v", r)
	}
	waitFor(t, 15*time.Second, "tail -f reconnects and prints the 3 records appended after the restart", func() (bool, string) {
		return strings.Count(tail.stdout.String(), "\n") >= 5 && strings.Contains(tail.stderr.String(), "tierctl: reconnected"),
			tail.stdout.String() + "\nstderr: " + tail.stderr.String()
	})
	time.Sleep(150 * time.Millisecond) // a record printed twice would show now
	if code := tail.interrupt(t); code != 0 {
		t.Fatalf("tail -f exited %d on SIGINT, want 0; stderr:\n%s", code, tail.stderr)
	}
	checkRecords(t, "tail -f across a restart", "f", parseRecords(t, tail.stdout.String()), 3, 3, 5)
	if n := strings.Count(tail.stderr.String(), "retrying every second"); n != 1 {
		t.Fatalf("tail -f reported the outage %d times, want once:\n%s", n, tail.stderr)
	}
}

// TestAppendRetriesAcrossACrash: tierd dies (the failpoint kills it) after
// the 20th batch of a tierctl append is durable and before its answer is
// sent. tierctl says so on stderr, retries until tierd is back, and the
// retried batch is answered as a duplicate instead of being stored again:
// the stream ends with every record of the file exactly once, in order.
func TestAppendRetriesAcrossACrash(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	config := writeConfig(t, dir, "wal: {sync: always}\n")
	d := startDaemonEnv(t, config, dataDir, "TIERD_FAILPOINTS=append/after-durable=crash@20")
	env := ctlEnv("TIERD_ADDR=http://" + d.addr)
	file := filepath.Join(dir, "records.ndjson")
	if err := os.WriteFile(file, []byte(e2eRecords("a", 0, 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	app := startCtl(t, env, "append", "crashy", "--file", file, "--batch", "10", "-o", "json")
	select {
	case <-d.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("the failpoint did not kill tierd; tierctl stderr:\n%s", app.stderr)
	}
	waitFor(t, 10*time.Second, "tierctl append reports the failed batch and retries", func() (bool, string) {
		return strings.Contains(app.stderr.String(), "tierctl: batch 20: ") && strings.Contains(app.stderr.String(), "; retry 1 of 30 in 100ms\n"), app.stderr.String()
	})
	d.restart(t)
	select {
	case <-app.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("tierctl append did not finish after tierd came back; stderr:\n%s", app.stderr)
	}
	if code := app.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("tierctl append exited %d; stderr:\n%s", code, app.stderr)
	}
	var sum struct {
		First   uint64 `json:"first_offset"`
		Last    uint64 `json:"last_offset"`
		Count   int    `json:"count"`
		Batches int    `json:"batches"`
	}
	if err := json.Unmarshal([]byte(app.stdout.String()), &sum); err != nil || sum.First != 0 || sum.Last != 299 || sum.Count != 300 || sum.Batches != 30 {
		t.Fatalf("append summary %s: %v", app.stdout, err)
	}
	r := runCtl(t, env, "", "read", "crashy", "--limit", "1000")
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	checkRecords(t, "the stream after the crash", "a", parseRecords(t, r.stdout), 0, 0, 300)
	if m := scrapeMetrics(t, d.addr)["tierd_ingest_duplicate_batches_total"]; m != 1 {
		t.Fatalf("tierd_ingest_duplicate_batches_total = %v after the restart, want 1 (the retried batch)", m)
	}
}
