package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tierctl end-to-end tests build both binaries and drive every tierctl
// verb as a subprocess against a real tierd process: no engine in the test
// process, no httptest server. Each assertion is what an operator would
// look at: exit codes, table rows, JSON fields, stderr messages.

// TestTierctlAgainstRealDaemon drives every verb of tierctl, as a
// subprocess, against one real tierd with a file:// cold store: records
// appended with tierctl are read and tailed back, the listings and status
// agree with each other, migrate moves what its dry run planned, verify
// finds a file deleted behind tierd's back, and errors exit as documented.
func TestTierctlAgainstRealDaemon(t *testing.T) {
	dir := t.TempDir()
	dataDir, coldDir := filepath.Join(dir, "data"), filepath.Join(dir, "cold")
	config := writeConfig(t, dir, e2eConfig(coldDir))
	d := startDaemonEnv(t, config, dataDir)
	base := "http://" + d.addr
	env := ctlEnv("TIERD_ADDR=" + base) // the address comes from the environment unless a test says otherwise
	const arch, scratch = "arch.trades", "scratch"
	total := 0 // records of arch appended so far
	// The steps build on each other: after one fails, the rest would only
	// repeat its failure.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("append", func(t *testing.T) {
		r := runCtl(t, env, e2eRecords("k", 0, 20), "append", arch)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("append from stdin: %v", r)
		}
		header, rows := parseTable(r.stdout)
		if !slices.Equal(header, []string{"STREAM", "FIRST_OFFSET", "LAST_OFFSET", "COUNT", "BATCHES"}) ||
			len(rows) != 1 || !slices.Equal(rows[0], []string{arch, "0", "19", "20", "1"}) {
			t.Fatalf("append summary table: header %q rows %q\n%v", header, rows, r)
		}
		file := filepath.Join(dir, "more.ndjson")
		if err := os.WriteFile(file, []byte(e2eRecords("k", 20, 30)), 0o644); err != nil {
			t.Fatal(err)
		}
		r = runCtl(t, env, "", "append", arch, "--file", file, "--batch", "3", "-o", "json")
		if r.code != 0 {
			t.Fatalf("append --file: %v", r)
		}
		var sum struct {
			Stream      string `json:"stream"`
			FirstOffset uint64 `json:"first_offset"`
			LastOffset  uint64 `json:"last_offset"`
			Count       int    `json:"count"`
			Batches     int    `json:"batches"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
			t.Fatalf("append -o json: %v\n%v", err, r)
		}
		if sum.Stream != arch || sum.FirstOffset != 20 || sum.LastOffset != 29 || sum.Count != 10 || sum.Batches != 4 {
			t.Fatalf("append --file --batch 3 of 10 records after 20: %+v, want offsets 20–29, 10 records in 4 batches", sum)
		}
		total = 30

		// A bad line in the first batch: nothing appended, the stream is
		// not even created, and the message names the input line.
		bad := e2eRecord("b", 0) + "\n" + `{"key":"b1","value":` + "\n"
		r = runCtl(t, env, bad, "append", "arch.bad")
		if r.code != 1 || !strings.Contains(r.stderr, "input line 2") || !strings.Contains(r.stderr, "invalid_json") ||
			!strings.Contains(r.stderr, "lines 1–2 was not appended") {
			t.Fatalf("append with a bad line 2: want exit 1 naming input line 2: %v", r)
		}
		if _, ok := ctlStreams(t, env)["arch.bad"]; ok {
			t.Fatalf("a refused first batch created stream arch.bad")
		}
		// A bad line in the third batch of two: the two batches before it
		// stay appended and are reported.
		lines := e2eRecords("s", 0, 4) + "this is not json\n" + e2eRecord("s", 5) + "\n"
		r = runCtl(t, env, lines, "append", scratch, "--batch", "2")
		if r.code != 1 || !strings.Contains(r.stderr, "input line 5") ||
			!strings.Contains(r.stderr, "4 records in 2 earlier batches were (offsets 0–3)") {
			t.Fatalf("append with a bad line 5, --batch 2: want exit 1 naming input line 5 and the 4 records appended: %v", r)
		}
		if got := ctlStreams(t, env)[scratch]; got != [2]uint64{4, 4} {
			t.Fatalf("%s after a partial append: next_offset, records = %v, want 4, 4", scratch, got)
		}
		r = runCtl(t, env, "\n\n", "append", scratch)
		if r.code != 1 || !strings.Contains(r.stderr, "no records") {
			t.Fatalf("append of blank input: %v", r)
		}
	})

	step("read", func(t *testing.T) {
		r := runCtl(t, env, "", "read", arch)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("%v", r)
		}
		checkRecords(t, "read", "k", parseRecords(t, r.stdout), 0, 0, 30)
		r = runCtl(t, env, "", "read", arch, "--from", "5", "--to", "9")
		checkRecords(t, "read --from 5 --to 9", "k", parseRecords(t, r.stdout), 5, 5, 5)
		r = runCtl(t, env, "", "read", arch, "--from", "10", "--limit", "4")
		checkRecords(t, "read --from 10 --limit 4", "k", parseRecords(t, r.stdout), 10, 10, 4)
		r = runCtl(t, env, "", "read", arch, "--from", "27", "--limit", "10")
		checkRecords(t, "read --from 27 --limit 10", "k", parseRecords(t, r.stdout), 27, 27, 3)
		r = runCtl(t, env, "", "read", arch, "--key", "k013")
		checkRecords(t, "read --key k013", "k", parseRecords(t, r.stdout), 13, 13, 1)
		r = runCtl(t, env, "", "read", arch, "--tag", "i7")
		checkRecords(t, "read --tag i7", "k", parseRecords(t, r.stdout), 7, 7, 1)
		r = runCtl(t, env, "", "read", arch, "--since", strconv.FormatInt(e2eTS(25), 10),
			"--until", time.Unix(0, e2eTS(28)).UTC().Format(time.RFC3339Nano))
		checkRecords(t, "read --since ts(25) --until ts(28)", "k", parseRecords(t, r.stdout), 25, 25, 3)
	})

	step("tail", func(t *testing.T) {
		r := runCtl(t, env, "", "tail", arch, "-n", "3")
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
		checkRecords(t, "tail -n 3", "k", parseRecords(t, r.stdout), 27, 27, 3)
		r = runCtl(t, env, "", "tail", scratch, "-n", "100")
		checkRecords(t, "tail -n 100 of a 4-record stream", "s", parseRecords(t, r.stdout), 0, 0, 4)
		if r = runCtl(t, env, "", "tail", arch, "-n", "0"); r.code != 0 || r.stdout != "" {
			t.Fatalf("tail -n 0 without -f prints nothing: %v", r)
		}

		// -f: records appended after tail started appear, in order, once.
		before := streamsRequests(t, d.addr)
		tail := startCtl(t, env, "tail", arch, "-n", "0", "-f", "--wait", "2s")
		waitFor(t, 10*time.Second, "tail -f asked for the stream's next offset", func() (bool, string) {
			return streamsRequests(t, d.addr) > before, "stderr: " + tail.stderr.String()
		})
		for _, span := range [][2]int{{30, 32}, {32, 33}, {33, 35}} {
			if r := runCtl(t, env, e2eRecords("k", span[0], span[1]), "append", arch); r.code != 0 {
				t.Fatalf("%v", r)
			}
		}
		total = 35
		waitFor(t, 10*time.Second, "tail -f prints the 5 records appended after it started", func() (bool, string) {
			out := tail.stdout.String()
			return strings.Count(out, "\n") >= 5, out
		})
		time.Sleep(150 * time.Millisecond) // anything printed twice would show now
		if code := tail.interrupt(t); code != 0 {
			t.Fatalf("tail -f exited %d on SIGINT, want 0; stderr:\n%s", code, tail.stderr)
		}
		checkRecords(t, "tail -n 0 -f", "k", parseRecords(t, tail.stdout.String()), 30, 30, 5)
		if s := tail.stderr.String(); s != "" {
			t.Fatalf("tail -f wrote to stderr while the server was up:\n%s", s)
		}
	})

	// Every segment sealed and out of memory: from here the listings hold
	// still until migrate moves something.
	var archSegs, scratchSegs []segInfo
	waitFor(t, 10*time.Second, "every segment sealed and warm only", func() (bool, string) {
		archSegs, scratchSegs = segments(t, d.addr, arch), segments(t, d.addr, scratch)
		for _, s := range append(slices.Clone(archSegs), scratchSegs...) {
			if s.Active || !slices.Equal(s.Tiers, []string{"warm"}) {
				return false, describe(map[string][]segInfo{arch: archSegs, scratch: scratchSegs})
			}
		}
		return true, ""
	})
	if len(archSegs) < 3 {
		t.Fatalf("%s has %d segments; the test wants several: %v", arch, len(archSegs), archSegs)
	}

	step("streams and segments", func(t *testing.T) {
		got := ctlStreams(t, env)
		want := map[string][2]uint64{arch: {35, 35}, scratch: {4, 4}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("streams -o json: name → [next_offset records] %v, want %v", got, want)
		}
		r := runCtl(t, env, "", "streams")
		header, rows := parseTable(r.stdout)
		if r.code != 0 || !slices.Equal(header, []string{"NAME", "NEXT_OFFSET", "RECORDS", "HOT", "WARM", "COLD"}) || len(rows) != 2 ||
			!slices.Equal(rows[0][:3], []string{arch, "35", "35"}) || !slices.Equal(rows[1][:3], []string{scratch, "4", "4"}) ||
			!strings.HasPrefix(rows[0][4], fmt.Sprintf("%d seg / ", len(archSegs))) || rows[0][3] != "-" || rows[0][5] != "-" {
			t.Fatalf("streams table: %q\n%v", rows, r)
		}
		for stream, segs := range map[string][]segInfo{arch: archSegs, scratch: scratchSegs} {
			js := ctlSegments(t, env, stream)
			if !reflect.DeepEqual(identities(js), identities(segs)) {
				t.Fatalf("%s: segments -o json %v differs from the API's listing %v", stream, js, segs)
			}
			var n, next uint64
			for _, s := range js {
				if s.Base != next || s.Last < s.Base || s.Count != s.Last-s.Base+1 {
					t.Fatalf("%s: segments are not dense from 0: %v", stream, js)
				}
				n += s.Count
				next = s.Last + 1
			}
			if n != want[stream][1] {
				t.Fatalf("%s: segments count %d records, streams says %d", stream, n, want[stream][1])
			}
			r := runCtl(t, env, "", "segments", stream)
			header, rows := parseTable(r.stdout)
			if r.code != 0 || len(header) != 9 || header[0] != "BASE" || header[7] != "TIERS" || len(rows) != len(js) {
				t.Fatalf("%s: segments table has %d rows, JSON %d segments:\n%v", stream, len(rows), len(js), r)
			}
			for i, row := range rows {
				if row[0] != strconv.FormatUint(js[i].Base, 10) || row[1] != strconv.FormatUint(js[i].Last, 10) ||
					row[2] != strconv.FormatUint(js[i].Count, 10) || row[7] != "warm" || !strings.HasPrefix(js[i].Digest, strings.TrimSuffix(row[8], "…")) {
					t.Fatalf("%s: segments table row %q does not match %v", stream, row, js[i])
				}
			}
		}
	})

	step("status before migrate", func(t *testing.T) {
		r := runCtl(t, env, "", "status")
		if r.code != 0 || !strings.Contains(r.stdout, "last run: none since tierd started") ||
			!strings.Contains(r.stdout, `migrator: schedule "@every 1h"`) || !strings.Contains(r.stdout, "sync always") {
			t.Fatalf("status before any migration: %v", r)
		}
	})

	step("migrate", func(t *testing.T) {
		// The dry run plans an upload of every arch segment once its warm
		// age has passed, and changes nothing.
		var plan planned
		waitFor(t, 10*time.Second, "migrate --dry-run plans an upload of every arch segment", func() (bool, string) {
			r := runCtl(t, env, "", "migrate", "--dry-run", "-o", "json")
			if r.code != 0 {
				t.Fatalf("%v", r)
			}
			plan = planned{}
			if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
				t.Fatalf("migrate --dry-run -o json: %v\n%v", err, r)
			}
			return plan.DryRun && slices.Equal(plan.bases("upload", arch), segBases(archSegs)) && len(plan.Actions) == len(archSegs), r.stdout
		})
		r := runCtl(t, env, "", "migrate", "--dry-run")
		_, rows := parseTable(withoutLastLine(r.stdout))
		if r.code != 0 || len(rows) != len(archSegs) || !strings.Contains(r.stdout, fmt.Sprintf("%d actions planned (dry run: nothing changed)", len(archSegs))) {
			t.Fatalf("migrate --dry-run table: %v", r)
		}
		for i, row := range rows {
			if row[0] != "upload" || row[1] != arch || row[2] != strconv.FormatUint(archSegs[i].Base, 10) || !strings.Contains(row[4], "warm.max_age 1s (policy archive)") {
				t.Fatalf("migrate --dry-run row %q, want an upload of %v", row, archSegs[i])
			}
		}
		if r := runCtl(t, env, "", "migrate", "--dry-run", "--stream", scratch); r.code != 0 || !strings.Contains(r.stdout, "0 actions planned") {
			t.Fatalf("migrate --dry-run --stream %s (warm forever): %v", scratch, r)
		}
		if after := segments(t, d.addr, arch); !reflect.DeepEqual(identities(after), identities(archSegs)) {
			t.Fatalf("a dry run changed the segments:\nbefore %v\nafter  %v", archSegs, after)
		}
		if objs, _ := filepath.Glob(filepath.Join(coldDir, "*", "*", "*.parquet")); len(objs) != 0 {
			t.Fatalf("a dry run wrote cold objects: %v", objs)
		}

		// The first run uploads, the second drops the warm copies.
		r = runCtl(t, env, "", "migrate", "--stream", arch, "--progress", "never")
		_, rows = parseTable(withoutLastLine(r.stdout))
		if r.code != 0 || r.stderr != "" || len(rows) != len(archSegs) ||
			!strings.Contains(r.stdout, fmt.Sprintf("%d actions, 0 failed, 0 skipped (backing off)", len(archSegs))) {
			t.Fatalf("migrate --stream %s: %v", arch, r)
		}
		for _, row := range rows {
			if row[0] != "upload" || row[len(row)-1] != "-" {
				t.Fatalf("migrate row %q, want a successful upload", row)
			}
		}
		if segs := segments(t, d.addr, arch); !slices.EqualFunc(segs, archSegs, func(a, b segInfo) bool {
			return a.Base == b.Base && slices.Equal(a.Tiers, []string{"warm", "cold"})
		}) {
			t.Fatalf("after an upload run: %v, want every segment warm and cold", segs)
		}
		r = runCtl(t, env, "", "migrate", "-o", "json", "--progress", "always")
		var ran planned
		if err := json.Unmarshal([]byte(r.stdout), &ran); err != nil || r.code != 0 {
			t.Fatalf("migrate -o json --progress always: stdout is not the JSON report (%v): %v", err, r)
		}
		if ran.DryRun || ran.Failed != 0 || !slices.Equal(ran.bases("drop-warm", arch), segBases(archSegs)) || len(ran.Actions) != len(archSegs) {
			t.Fatalf("second migrate run: %+v, want a drop-warm of every arch segment", ran)
		}
		n := len(archSegs)
		if !strings.Contains(r.stderr, "migrate") || !strings.Contains(r.stderr, fmt.Sprintf("%d/%d actions", n, n)) {
			t.Fatalf("migrate --progress always: no progress line with %d/%d actions on stderr: %q", n, n, r.stderr)
		}
		archSegs = segments(t, d.addr, arch)
		if !allColdOnly(archSegs) {
			t.Fatalf("after two migrate runs: %v, want every segment cold only", archSegs)
		}
		if js := ctlSegments(t, env, arch); !reflect.DeepEqual(identities(js), identities(archSegs)) {
			t.Fatalf("segments -o json %v, API %v", js, archSegs)
		}
		assertNoWarmFiles(t, dataDir, arch, archSegs)
		r = runCtl(t, env, "", "read", arch)
		recs := parseRecords(t, r.stdout)
		checkRecords(t, "read after migration", "k", recs, 0, 0, total)
		r = runCtl(t, env, "", "tail", arch, "-n", "3")
		checkRecords(t, "tail -n 3 from cold", "k", parseRecords(t, r.stdout), uint64(total-3), total-3, 3)
		for _, tier := range readTiers(t, d.addr, arch) {
			if tier != "cold" {
				t.Fatalf("after migration a record of %s is served from %s", arch, tier)
			}
		}
	})

	step("explain", func(t *testing.T) {
		r := runCtl(t, env, "", "explain", arch)
		lines := strings.Split(r.stdout, "\n")
		if r.code != 0 || lines[0] != "stream arch.trades: policy archive (hot 300ms, warm 1s, cold forever)" || len(lines) < 3 {
			t.Fatalf("explain %s: %v", arch, r)
		}
		header, rows := parseTable(strings.Join(lines[2:], "\n"))
		if !slices.Equal(header, []string{"BASE", "LAST", "TIERS", "AGE", "NEXT", "DUE_IN", "REASON", "LAST_ERROR"}) || len(rows) != len(archSegs) {
			t.Fatalf("explain %s: %d rows for %d segments:\n%v", arch, len(rows), len(archSegs), r)
		}
		for i, row := range rows {
			if row[0] != strconv.FormatUint(archSegs[i].Base, 10) || row[1] != strconv.FormatUint(archSegs[i].Last, 10) ||
				row[2] != "cold" || row[4] != "-" || row[6] != "none: the policy keeps it here forever" || row[7] != "-" {
				t.Fatalf("explain row %q for %v", row, archSegs[i])
			}
		}
		r = runCtl(t, env, "", "explain", scratch)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "stream scratch: policy default (hot 300ms, warm forever, cold forever)\n") {
			t.Fatalf("explain %s: %v", scratch, r)
		}
		r = runCtl(t, env, "", "explain", arch, "-o", "json")
		var ex struct {
			Stream   string `json:"stream"`
			Segments []struct {
				Base  uint64   `json:"base"`
				Tiers []string `json:"tiers"`
			} `json:"segments"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil || ex.Stream != arch || len(ex.Segments) != len(archSegs) {
			t.Fatalf("explain -o json (%v): %v", err, r)
		}
	})

	step("status", func(t *testing.T) {
		// The counts a user would add up from segments -o json.
		scratchSegs = ctlSegments(t, env, scratch)
		want := tierCounts(ctlSegments(t, env, arch), scratchSegs)
		if want["cold"] != len(archSegs) || want["warm"] != len(scratchSegs) || want["hot"] != 0 {
			t.Fatalf("placements %v; the test expected arch in cold and scratch in warm alone", want)
		}
		r := runCtl(t, env, "", "status")
		header, rows := parseTable(r.stdout)
		if r.code != 0 || !slices.Equal(header, []string{"TIER", "STREAMS", "SEGMENTS", "SIZE", "OLDEST", "NEWEST", "BUDGET"}) || len(rows) != 3 {
			t.Fatalf("status table: %v", r)
		}
		wantStreams := map[string]string{"hot": "0", "warm": "1", "cold": "1"}
		for i, tier := range []string{"hot", "warm", "cold"} {
			if rows[i][0] != tier || rows[i][1] != wantStreams[tier] || rows[i][2] != strconv.Itoa(want[tier]) {
				t.Fatalf("status row %q, want tier %s with %s streams and %d segments (segments -o json)\n%v", rows[i], tier, wantStreams[tier], want[tier], r)
			}
		}
		lastRun := regexp.MustCompile(`(?m)^last run: (just now|\d+s ago), took \S+: ` + strconv.Itoa(len(archSegs)) + ` actions, 0 failed, 0 skipped`)
		if !lastRun.MatchString(r.stdout) || !strings.Contains(r.stdout, "failing:  none") {
			t.Fatalf("status after migrate: want the last run's %d actions: %v", len(archSegs), r)
		}
		r = runCtl(t, env, "", "status", "-o", "json")
		var st struct {
			Tiers map[string]struct {
				Streams  int `json:"streams"`
				Segments int `json:"segments"`
			} `json:"tiers"`
			Migrator struct {
				Schedule string `json:"schedule"`
				LastRun  *struct {
					Actions int `json:"actions"`
				} `json:"last_run"`
			} `json:"migrator"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
			t.Fatalf("status -o json (%v): %v", err, r)
		}
		if st.Tiers["cold"].Segments != len(archSegs) || st.Tiers["cold"].Segments == 0 || st.Tiers["warm"].Segments != len(scratchSegs) ||
			st.Tiers["hot"].Segments != 0 || st.Migrator.Schedule != "@every 1h" || st.Migrator.LastRun == nil || st.Migrator.LastRun.Actions != len(archSegs) {
			t.Fatalf("status -o json: %+v, want cold %d, warm %d, hot 0 segments and a last run of %d actions", st, len(archSegs), len(scratchSegs), len(archSegs))
		}
	})

	nSegs := len(archSegs) + len(scratchSegs)
	step("verify", func(t *testing.T) {
		r := runCtl(t, env, "", "verify", "--progress", "never")
		summary := fmt.Sprintf("OK: 2 streams, %d segments, %d placements; %s and %s listed, no problems found",
			nSegs, nSegs, nouns(len(scratchSegs), "warm file"), nouns(len(archSegs), "cold object"))
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, summary) {
			t.Fatalf("verify: want exit 0, %q and nothing on stderr: %v", summary, r)
		}
		_, rows := parseTable(r.stdout)
		// Every record is persisted: nothing in memory only ("-").
		if len(rows) != 2 || !slices.Equal(rows[0], []string{arch, "0", "35", strconv.Itoa(len(archSegs)), strconv.Itoa(len(archSegs)), "-"}) ||
			!slices.Equal(rows[1], []string{scratch, "0", "4", strconv.Itoa(len(scratchSegs)), strconv.Itoa(len(scratchSegs)), "-"}) {
			t.Fatalf("verify table %q", rows)
		}
		r = runCtl(t, env, "", "verify", "--stream", scratch)
		if r.code != 0 || !strings.Contains(r.stdout, "OK: 1 stream,") {
			t.Fatalf("verify --stream %s: %v", scratch, r)
		}
		// Progress: a line on stderr with done/total when asked, none
		// when not, and stdout's JSON unharmed.
		r = runCtl(t, env, "", "verify", "--progress", "always")
		if r.code != 0 || !strings.Contains(r.stderr, "verify") || !strings.Contains(r.stderr, fmt.Sprintf("%d/%d segments", nSegs, nSegs)) {
			t.Fatalf("verify --progress always: want a progress line with %d/%d segments on stderr: %v", nSegs, nSegs, r)
		}
		r = runCtl(t, env, "", "verify", "-o", "json", "--progress", "always")
		var v verifyResult
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 || !v.OK || len(v.Findings) != 0 || v.ColdObjects != len(archSegs) {
			t.Fatalf("verify -o json --progress always: stdout must be the clean JSON report (%v): %v", err, r)
		}
		if !strings.Contains(r.stderr, fmt.Sprintf("%d/%d segments", nSegs, nSegs)) {
			t.Fatalf("verify -o json --progress always: no progress on stderr: %q", r.stderr)
		}
		// --progress auto: a pipe is not a terminal.
		if r = runCtl(t, env, "", "verify"); r.code != 0 || r.stderr != "" {
			t.Fatalf("verify --progress auto into a pipe drew progress: %v", r)
		}
	})

	t.Run("progress auto with stdout on /dev/null", func(t *testing.T) {
		// A cron job's `tierctl verify >/dev/null 2>>log` must not fill its
		// log with progress bars: /dev/null is a character device, but it
		// is not a terminal.
		bin, err := buildTierctl()
		if err != nil {
			t.Fatal(err)
		}
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		cmd := exec.Command(bin, "verify")
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = null, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("tierctl verify >/dev/null: %v\n%s", err, stderr.String())
		}
		if stderr.Len() != 0 {
			t.Errorf("tierctl verify >/dev/null (--progress auto) drew a progress line on stderr, as if /dev/null were a terminal: %q", stderr.String())
		}
	})

	step("verify finds damage", func(t *testing.T) {
		// Delete one cold object of arch and one warm file of scratch, both
		// of segments the daemon lists in that tier.
		victim := archSegs[1]
		ts, err := time.Parse(time.RFC3339Nano, victim.MinTS)
		if err != nil {
			t.Fatal(err)
		}
		obj := filepath.Join(coldDir, "stream="+arch, "date="+ts.UTC().Format("2006-01-02"), fmt.Sprintf("%020d-%020d.parquet", victim.Base, victim.Last))
		warmVictim := scratchSegs[0]
		warmFile := filepath.Join(dataDir, "warm", scratch, fmt.Sprintf("%020d.seg", warmVictim.Base))
		for _, p := range []string{obj, warmFile} {
			if err := os.Remove(p); err != nil {
				t.Fatalf("damaging the archive: %v (cold objects: %v, warm files: %v)", err, mustGlob(t, filepath.Join(coldDir, "*", "*", "*")), warmFiles(t, dataDir, scratch))
			}
		}
		r := runCtl(t, env, "", "verify")
		if r.code != 1 || !strings.Contains(r.stdout, "FAILED: 2 problems (2 missing)") || !strings.Contains(r.stderr, "verify found 2 problems") {
			t.Fatalf("verify after deleting a cold object and a warm file: want exit 1 and 2 missing: %v", r)
		}
		_, findings := parseTable(strings.SplitN(r.stdout, "\n\n", 2)[1])
		got := map[string]bool{}
		for _, f := range findings {
			got[strings.Join(f[:4], " ")] = true
		}
		for _, want := range []string{
			fmt.Sprintf("missing %s base %d cold", arch, victim.Base),
			fmt.Sprintf("missing %s base %d warm", scratch, warmVictim.Base),
		} {
			if !got[want] {
				t.Fatalf("verify findings %q lack %q", findings, want)
			}
		}
		r = runCtl(t, env, "", "verify", "--stream", arch, "-o", "json")
		var v struct {
			OK       bool `json:"ok"`
			Findings []struct {
				Kind   string `json:"kind"`
				Stream string `json:"stream"`
				Base   uint64 `json:"base"`
				Tier   string `json:"tier"`
			} `json:"findings"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 1 || v.OK || len(v.Findings) != 1 ||
			v.Findings[0].Kind != "missing" || v.Findings[0].Base != victim.Base || v.Findings[0].Tier != "cold" {
			t.Fatalf("verify --stream %s -o json after the damage (%v): %v", arch, err, r)
		}
	})

	step("errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"read", "nope"}, {"tail", "nope"}, {"tail", "nope", "-f"}, {"segments", "nope"}, {"explain", "nope"},
			{"migrate", "--stream", "nope"}, {"verify", "--stream", "nope"},
		} {
			r := runCtl(t, env, "", args...)
			if r.code != 1 || !strings.HasPrefix(r.stderr, "error: stream_not_found: ") || r.stdout != "" {
				t.Fatalf("unknown stream: want exit 1 and stream_not_found on stderr: %v", r)
			}
		}
		for _, args := range [][]string{
			{"read", arch, "--bogus"}, {"streams", "-o", "yaml"}, {"verify", "--progress", "sometimes"},
			{"read"}, {"segments", arch, "extra"}, {"streams", "extra"}, {"frobnicate"}, {"tail", arch, "--wait", "0s"},
			{"read", arch, "--since", "yesterday"},
		} {
			r := runCtl(t, env, "", args...)
			if r.code != 2 || !strings.Contains(r.stderr, "error: ") || r.stdout != "" {
				t.Fatalf("usage error: want exit 2 and the error on stderr: %v", r)
			}
		}
		// A server that is down: --addr wins over TIERD_ADDR.
		down := "http://" + freeAddr(t)
		for _, args := range [][]string{{"streams", "--addr", down}, {"status", "--addr", down}, {"tail", arch, "-f", "--addr", down}} {
			r := runCtl(t, env, "", args...)
			if r.code != 1 || !strings.Contains(r.stderr, "connection refused") || !strings.Contains(r.stderr, strings.TrimPrefix(down, "http://")) {
				t.Fatalf("server down: want exit 1 naming the address and the refusal: %v", r)
			}
		}
		// And TIERD_ADDR is used without --addr; --addr overrides a dead one.
		if r := runCtl(t, ctlEnv("TIERD_ADDR="+down), "", "streams", "--addr", base); r.code != 0 || !strings.Contains(r.stdout, arch) {
			t.Fatalf("--addr over a dead TIERD_ADDR: %v", r)
		}
		if r := runCtl(t, ctlEnv("TIERD_ADDR="+down), "", "streams"); r.code != 1 || !strings.Contains(r.stderr, strings.TrimPrefix(down, "http://")) {
			t.Fatalf("TIERD_ADDR of a dead server: %v", r)
		}
	})

	step("completion and policy check", func(t *testing.T) {
		code, out := tierctl(t, []string{"TIERD_ADDR=" + base}, "completion", "bash")
		if code != 0 || !strings.Contains(out, "tierctl") || !strings.Contains(out, "complete ") {
			t.Fatalf("completion bash: exit %d\n%.500s", code, out)
		}
		// Stream names complete from the running server.
		r := runCtl(t, env, "", "__complete", "read", "arc")
		if r.code != 0 || !strings.Contains(r.stdout, arch+"\n") || strings.Contains(r.stdout, scratch) {
			t.Fatalf("completing read's STREAM: %v", r)
		}
		r = runCtl(t, env, "", "policy", "check", config, "--stream", arch, "--stream", scratch)
		if r.code != 0 || !strings.HasPrefix(r.stdout, filepath.Base(config)+": OK") && !strings.HasPrefix(r.stdout, config+": OK") ||
			!regexp.MustCompile(`(?m)^arch\.trades\s+archive$`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^scratch\s+default$`).MatchString(r.stdout) {
			t.Fatalf("policy check of the test's config: %v", r)
		}
		bad := filepath.Join(dir, "bad.yaml")
		os.WriteFile(bad, []byte("segment: {max_bytes: 2KiB}\nmax_record_bytes: 4KiB\n"), 0o644)
		r = runCtl(t, env, "", "policy", "check", bad)
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, bad+":2: max_record_bytes") {
			t.Fatalf("policy check of an invalid file: want exit 1 and FILE:LINE: FIELD: %v", r)
		}
	})
}
