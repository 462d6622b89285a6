package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Helpers of the tierctl end-to-end tests (tierctl_e2e_test.go,
// tierctl_access_test.go).

// ctlResult is one finished tierctl run.
type ctlResult struct {
	code           int
	stdout, stderr string
	args           []string
}

func (r ctlResult) String() string {
	return fmt.Sprintf("tierctl %s: exit %d\n--- stdout:\n%s--- stderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// ctlEnv is the environment every tierctl run starts from: the test
// process's, without whatever TIERD_ADDR or TIERD_TOKEN the developer's
// shell has (exec keeps the last of duplicate keys), plus extra.
func ctlEnv(extra ...string) []string {
	return append(append(os.Environ(), "TIERD_ADDR=", "TIERD_TOKEN="), extra...)
}

// runCtl runs tierctl with args, stdin and env (see ctlEnv) and returns
// its exit code and its stdout and stderr apart.
func runCtl(t *testing.T, env []string, stdin string, args ...string) ctlResult {
	t.Helper()
	bin, err := buildTierctl()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("tierctl %v still running after 30 s; stdout:\n%s\nstderr:\n%s", args, out.String(), errOut.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("tierctl %v: %v", args, err)
	}
	return ctlResult{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String(), args: args}
}

// bgCtl is a tierctl running in the background (tail -f).
type bgCtl struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	exited         chan struct{}
}

func startCtl(t *testing.T, env []string, args ...string) *bgCtl {
	t.Helper()
	bin, err := buildTierctl()
	if err != nil {
		t.Fatal(err)
	}
	b := &bgCtl{cmd: exec.Command(bin, args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	b.cmd.Env = env
	b.cmd.Stdout, b.cmd.Stderr = b.stdout, b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.exited) }()
	t.Cleanup(func() { b.cmd.Process.Kill(); <-b.exited })
	return b
}

// interrupt sends SIGINT (Ctrl-C) and returns the exit code.
func (b *bgCtl) interrupt(t *testing.T) int {
	t.Helper()
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("SIGINT to tierctl: %v (stderr: %s)", err, b.stderr)
	}
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("tierctl %v still running 10 s after SIGINT; stderr:\n%s", b.cmd.Args[1:], b.stderr)
	}
	return b.cmd.ProcessState.ExitCode()
}

// e2eRecord is the i-th record of a test workload, in append form.
func e2eRecord(prefix string, i int) string {
	return fmt.Sprintf(`{"key":"%s%03d","ts":%d,"tags":["e2e","i%d"],"value":{"i":%d,"pad":"%s"}}`,
		prefix, i, e2eTS(i), i, i, strings.Repeat("p", 60+i%7))
}

func e2eTS(i int) int64 { return 1_700_000_000_000_000_000 + int64(i)*1_000_000 }

// e2eRecords is records [from, to) of the workload as NDJSON.
func e2eRecords(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(e2eRecord(prefix, i) + "\n")
	}
	return b.String()
}

// parseRecords decodes read/tail output, one record per line.
func parseRecords(t *testing.T, out string) []wireRecord {
	t.Helper()
	var recs []wireRecord
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var r wireRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("output line %q is not a record: %v\nwhole output:\n%s", line, err, out)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkRecords asserts that recs are exactly workload records
// [from, from+len) at offsets base+0, base+1, …, and that there are want.
func checkRecords(t *testing.T, what, prefix string, recs []wireRecord, base uint64, from, want int) {
	t.Helper()
	if len(recs) != want {
		t.Fatalf("%s: %d records, want %d: %+v", what, len(recs), want, recs)
	}
	for j, r := range recs {
		i := from + j
		wantKey := fmt.Sprintf("%s%03d", prefix, i)
		wantValue := fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("p", 60+i%7))
		wantTS := time.Unix(0, e2eTS(i)).UTC().Format(time.RFC3339Nano)
		var compact bytes.Buffer
		json.Compact(&compact, r.Value)
		if r.Offset != base+uint64(j) || r.Key != wantKey || compact.String() != wantValue || r.TS != wantTS ||
			!slices.Equal(r.Tags, []string{"e2e", fmt.Sprintf("i%d", i)}) {
			t.Fatalf("%s: record %d is offset %d key %q ts %s tags %v value %s; want offset %d key %q ts %s value %s",
				what, j, r.Offset, r.Key, r.TS, r.Tags, r.Value, base+uint64(j), wantKey, wantTS, wantValue)
		}
	}
}

// cellSep splits tabwriter columns: they are padded with two spaces or
// more, and no cell holds two spaces in a row.
var cellSep = regexp.MustCompile(`\s{2,}`)

// parseTable reads the aligned table that starts at out's first line and
// ends at a blank line or the end: its header and its rows.
func parseTable(out string) (header []string, rows [][]string) {
	for i, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			break
		}
		cells := cellSep.Split(strings.TrimSpace(line), -1)
		if i == 0 {
			header = cells
		} else {
			rows = append(rows, cells)
		}
	}
	return header, rows
}

// withoutLastLine drops out's last line: the summary migrate prints right
// under its table.
func withoutLastLine(out string) string {
	out = strings.TrimRight(out, "\n")
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		return out[:i]
	}
	return ""
}

// e2eConfig: tiny segments sealed at 200 ms, hot residency 300 ms,
// arch* uploaded to the file:// cold store at warm age 1 s, every other
// stream warm forever; the migrator's schedule is hourly so that only
// tierctl migrate moves anything during the test.
func e2eConfig(coldDir string) string {
	return fmt.Sprintf(`
max_record_bytes: 1KiB
wal: {sync: always}
segment: {max_bytes: 2KiB, max_age: 200ms}
hot: {max_age: 300ms}
cold: {store: "file://%s"}
migrator: {schedule: "@every 1h"}
policies:
  - name: archive
    streams: ["arch*"]
    warm: {max_age: 1s}
`, coldDir)
}

// planned is tierctl migrate -o json's answer.
type planned struct {
	DryRun  bool `json:"dry_run"`
	Actions []struct {
		Action string `json:"action"`
		Stream string `json:"stream"`
		Base   uint64 `json:"base"`
		Reason string `json:"reason"`
		Error  string `json:"error"`
	} `json:"actions"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

func (p planned) bases(action, stream string) []uint64 {
	var out []uint64
	for _, a := range p.Actions {
		if a.Action == action && a.Stream == stream {
			out = append(out, a.Base)
		}
	}
	slices.Sort(out)
	return out
}

func segBases(segs []segInfo) []uint64 {
	out := make([]uint64, len(segs))
	for i, s := range segs {
		out[i] = s.Base
	}
	return out
}

// ctlSegments runs tierctl segments STREAM -o json.
func ctlSegments(t *testing.T, env []string, stream string) []segInfo {
	t.Helper()
	r := runCtl(t, env, "", "segments", stream, "-o", "json")
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	var segs []segInfo
	if err := json.Unmarshal([]byte(r.stdout), &segs); err != nil {
		t.Fatalf("segments -o json is not a JSON list of segments: %v\n%v", err, r)
	}
	return segs
}

// ctlStreams runs tierctl streams -o json: name → next_offset, records.
func ctlStreams(t *testing.T, env []string) map[string][2]uint64 {
	t.Helper()
	r := runCtl(t, env, "", "streams", "-o", "json")
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	var out struct {
		Streams []struct {
			Name       string `json:"name"`
			NextOffset uint64 `json:"next_offset"`
			Records    uint64 `json:"records"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("streams -o json: %v\n%v", err, r)
	}
	m := map[string][2]uint64{}
	for _, s := range out.Streams {
		m[s.Name] = [2]uint64{s.NextOffset, s.Records}
	}
	return m
}

// tierCounts counts the segments that have a copy in each tier.
func tierCounts(lists ...[]segInfo) map[string]int {
	n := map[string]int{"hot": 0, "warm": 0, "cold": 0}
	for _, segs := range lists {
		for _, s := range segs {
			for _, tier := range s.Tiers {
				n[tier]++
			}
		}
	}
	return n
}

// streamsRequests is how many GET /v1/streams tierd has answered with 200:
// tail -f asks it once for the stream's next offset before following, so
// a rise means a tail started just now is following from there.
func streamsRequests(t *testing.T, addr string) float64 {
	t.Helper()
	return scrapeMetrics(t, addr)[series("tierd_http_requests_total", "route", "GET /v1/streams", "code", "200")]
}

// nouns renders "1 warm file", "2 warm files".
func nouns(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
