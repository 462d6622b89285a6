package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tierd/tierd/testenv"
)

// The README's Quick start is run as written, so that it cannot drift from
// what tierd and tierctl do: the daemon is started with the command of the
// Makefile's run target in a scratch directory that looks like a checkout
// (bin/, examples/, scripts/, testenv/), then every command of the Quick
// start's shell blocks is run in order with bash, and each one's outcome is
// checked. The one liberty taken is the address: the daemon listens on a
// free port (--listen) and 127.0.0.1:7070 in the commands is rewritten to
// it (tierctl gets it through TIERD_ADDR), so the test does not need port
// 7070. The whole walk-through runs twice on the same data directory, with
// a restart between, as a newcomer who tries it again would.

// quickStart is the README's Quick start: the make command that starts the
// daemon, and the shell commands that follow it, in order.
type quickStart struct {
	commands []string
}

// readQuickStart extracts the shell blocks of README's "## Quick start"
// section. The first must start the daemon with `make run`; the commands of
// the others are returned, continuation lines joined.
func readQuickStart(t *testing.T, readme string) quickStart {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## Quick start\n")
	if start < 0 {
		t.Fatalf("%s has no '## Quick start' section", readme)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) < 2 {
		t.Fatalf("the Quick start has %d sh blocks, want the make run block and at least one more", len(blocks))
	}
	if !strings.HasPrefix(strings.TrimSpace(blocks[0][1]), "make run") {
		t.Fatalf("the Quick start's first block does not start the daemon with make run:\n%s", blocks[0][1])
	}
	var qs quickStart
	for _, blk := range blocks[1:] {
		var cur strings.Builder
		sc := bufio.NewScanner(strings.NewReader(blk[1]))
		for sc.Scan() {
			line := sc.Text()
			if cur.Len() == 0 && strings.TrimSpace(line) == "" {
				continue
			}
			if strings.HasSuffix(line, `\`) {
				cur.WriteString(line + "\n")
				continue
			}
			cur.WriteString(line)
			qs.commands = append(qs.commands, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			t.Fatalf("a Quick start command ends in a continuation: %q", cur.String())
		}
	}
	return qs
}

// makeRunCommand returns the Makefile's run recipe with $(BIN) expanded:
// the command `make run` starts the daemon with.
func makeRunCommand(t *testing.T, makefile string) []string {
	t.Helper()
	b, err := os.ReadFile(makefile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^run:.*\n\t(.+)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no run target with a one-line recipe in %s", makefile)
	}
	return strings.Fields(strings.ReplaceAll(m[1], "$(BIN)", "bin"))
}

// quickStartStep checks one command's outcome, given what the walk-through
// appended before it.
type quickStartStep struct {
	match string // the command starts with this
	check func(t *testing.T, out string, st *quickStartState)
}

// quickStartState is what the walk-through has done so far.
type quickStartState struct {
	appended int // records appended through the Quick start
	sealed   int // records appended before the last seal
	offloads int // offload commands that ran
}

var quickStartSteps = []quickStartStep{
	{"printf", func(t *testing.T, out string, st *quickStartState) {
		st.appended += 2
		if !strings.Contains(out, "trades") {
			t.Errorf("append did not report the stream:\n%s", out)
		}
	}},
	{"bin/tierctl read trades", func(t *testing.T, out string, st *quickStartState) {
		if n := strings.Count(out, `"offset":`); n != st.appended {
			t.Errorf("read printed %d records, want the %d appended:\n%s", n, st.appended, out)
		}
	}},
	{"bin/tierctl seal trades", func(t *testing.T, out string, st *quickStartState) {
		st.sealed = st.appended
	}},
	{"bin/tierctl offload trades", func(t *testing.T, out string, st *quickStartState) {
		st.offloads++
	}},
	{"bin/tierctl segments trades", func(t *testing.T, out string, st *quickStartState) {
		if st.offloads > 0 && !strings.Contains(out, "cold") {
			t.Errorf("after the offload no segment is cold:\n%s", out)
		}
	}},
	{"bin/tierctl explain trades", nil},
	{"bin/tierctl verify", func(t *testing.T, out string, st *quickStartState) {
		if !strings.Contains(out, "OK") {
			t.Errorf("verify did not say OK:\n%s", out)
		}
	}},
	{"bin/tierctl status", nil},
	{"scripts/duckdb", func(t *testing.T, out string, st *quickStartState) {
		if want := fmt.Sprintf("(%d rows)", st.sealed); !strings.Contains(out, want) {
			t.Errorf("DuckDB did not read the %d records sealed and offloaded (%s):\n%s", st.sealed, want, out)
		}
		for _, s := range []string{"IF2406", `{"px":3521.4,"qty":2}`, "done"} {
			if !strings.Contains(out, s) {
				t.Errorf("DuckDB's rows lack %s:\n%s", s, out)
			}
		}
	}},
	{"curl -s --data-binary", func(t *testing.T, out string, st *quickStartState) {
		st.appended++
		if !strings.Contains(out, `"first_offset"`) {
			t.Errorf("the curl append did not answer offsets:\n%s", out)
		}
	}},
	{"curl -s 'http", func(t *testing.T, out string, st *quickStartState) {
		if n := strings.Count(out, `"offset":`); n != min(st.appended, 10) {
			t.Errorf("the curl read printed %d records, want %d:\n%s", n, min(st.appended, 10), out)
		}
	}},
}

func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the real daemon, the CLI and DuckDB")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("the Quick start reads Parquet with scripts/duckdb, which needs Node.js ≥ 18: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	qs := readQuickStart(t, filepath.Join(root, "README.md"))
	argv := makeRunCommand(t, filepath.Join(root, "Makefile"))

	// A scratch checkout: the binaries under bin/, the rest linked.
	work := t.TempDir()
	tierd := testenv.TierdBin(t)
	tierctl, err := buildTierctl()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"bin/tierd": tierd, "bin/tierctl": tierctl,
		"examples": filepath.Join(root, "examples"), "scripts": filepath.Join(root, "scripts"), "testenv": filepath.Join(root, "testenv"),
	} {
		if err := os.Symlink(target, filepath.Join(work, name)); err != nil {
			t.Fatal(err)
		}
	}

	for run := 1; run <= 2; run++ {
		// As make run starts it, with --listen 127.0.0.1:0 added.
		d := testenv.StartTierd(t, testenv.TierdOptions{Command: append([]string{filepath.Join(work, argv[0])}, argv[1:]...), Dir: work})
		addr := d.Addr()
		st := &quickStartState{}
		if run == 2 {
			// The first run's records are still there: the counts go on.
			st.appended, st.sealed = 3, 2
		}
		for _, c := range qs.commands {
			c = strings.ReplaceAll(c, "127.0.0.1:7070", addr)
			out := runQuickStartCommand(t, work, addr, c)
			var step *quickStartStep
			for i := range quickStartSteps {
				if strings.HasPrefix(c, quickStartSteps[i].match) {
					step = &quickStartSteps[i]
					break
				}
			}
			if step == nil {
				t.Fatalf("run %d: the Quick start has a command this test does not know how to check; add a step for it:\n%s", run, c)
			}
			if step.check != nil {
				step.check(t, out, st)
			}
			if t.Failed() {
				t.Fatalf("run %d stopped at: %s\ndaemon log:\n%s", run, c, d.RunLogs())
			}
		}
		stopQuickStart(t, d)
	}
}

// stopQuickStart interrupts the daemon as Ctrl-C in make run's terminal
// would, and waits for a clean exit.
func stopQuickStart(t *testing.T, d *testenv.Tierd) {
	t.Helper()
	d.Signal(syscall.SIGINT)
	select {
	case <-d.Exited():
	case <-time.After(60 * time.Second):
		t.Fatalf("the daemon did not stop within 60s of Ctrl-C:\n%s", d.RunLogs())
	}
	if code := d.ExitCode(); code != 0 {
		t.Fatalf("the daemon exited %d after Ctrl-C:\n%s", code, d.RunLogs())
	}
}

// runQuickStartCommand runs one Quick start command with bash in work, as
// a newcomer's shell would, and returns its stdout and stderr; it fails the
// test when the command fails.
func runQuickStartCommand(t *testing.T, work, addr, command string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", command)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "TIERD_ADDR=http://"+addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("Quick start command failed (%v):\n%s\noutput:\n%s", err, command, out.String())
	}
	return out.String()
}
