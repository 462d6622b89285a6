package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tierctl at a terminal: progress is drawn only on a terminal, so these
// tests give tierctl a pseudo-terminal for its stdout and stderr, as a
// shell in tmux does, and replay what it wrote the way the terminal shows
// it.

// openPTY opens a pseudo-terminal pair: tierctl writes to the slave, the
// test reads what it wrote from the master.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("naming the pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("opening the pseudo-terminal's slave: %v", err)
	}
	return m, s
}

// ptyRun runs tierctl with stdout and stderr on a pseudo-terminal and
// stdin from feed (which writes and closes it) and returns the exit code
// and every byte the terminal received.
func ptyRun(t *testing.T, env []string, feed func(w io.WriteCloser), args ...string) (int, string) {
	t.Helper()
	bin, err := buildTierctl()
	if err != nil {
		t.Fatal(err)
	}
	master, slave := openPTY(t)
	defer master.Close()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the child holds it; the master reads EIO once it exits
	stdinR.Close()
	read := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		_, err := io.Copy(&b, master)
		if err != nil && !errors.Is(err, syscall.EIO) {
			b.WriteString(fmt.Sprintf("\n[reading the terminal: %v]", err))
		}
		read <- b.String()
	}()
	go feed(stdinW)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("tierctl %v at a terminal still running after 60 s", args)
	}
	select {
	case out := <-read:
		return cmd.ProcessState.ExitCode(), out
	case <-time.After(10 * time.Second):
		t.Fatalf("the terminal of tierctl %v did not close", args)
	}
	return 0, ""
}

// screenLines replays terminal output: \r goes to column 0, ESC[K erases
// to the end of the line, \n starts a new line. It returns the lines left
// on screen, and fails the test if text was written into a line that was
// not empty at its cursor (output running into a progress line).
func screenLines(t *testing.T, out string) []string {
	t.Helper()
	var lines []string
	var cur []byte
	col := 0
	for i := 0; i < len(out); i++ {
		switch c := out[i]; {
		case c == '\r':
			col = 0
		case c == '\n':
			lines = append(lines, string(cur))
			cur, col = nil, 0
		case strings.HasPrefix(out[i:], "\x1b[K"):
			cur = cur[:col]
			i += 2
		case c == 0x1b:
			t.Fatalf("an escape sequence other than ESC[K at byte %d of %q", i, out)
		default:
			if col < len(cur) {
				cur[col] = c
			} else {
				cur = append(cur, c)
			}
			col++
		}
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}

// TestTierctlAtATerminal: at a terminal, a quick append draws no progress
// at all; an append fed for over two seconds draws its progress line and
// erases it, so the summary table's header starts at column 0 of a clean
// line and nothing of the progress is left on screen. verify, quick
// here, draws nothing either, and read never draws among its records.
func TestTierctlAtATerminal(t *testing.T) {
	dir := t.TempDir()
	config := writeConfig(t, dir, "wal: {sync: always}\n")
	d := startDaemonEnv(t, config, filepath.Join(dir, "data"))
	env := ctlEnv("TIERD_ADDR=http://" + d.addr)
	header := []string{"STREAM", "FIRST_OFFSET", "LAST_OFFSET", "COUNT", "BATCHES"}

	feedAll := func(s string) func(io.WriteCloser) {
		return func(w io.WriteCloser) { io.WriteString(w, s); w.Close() }
	}
	code, out := ptyRun(t, env, feedAll(e2eRecord("q", 0)+"\n"), "append", "quick")
	if code != 0 || strings.Contains(out, "\x1b") {
		t.Fatalf("a one-line append at a terminal: exit %d, drew progress: %q", code, out)
	}
	checkScreen(t, "a one-line append", out, header, []string{"quick", "0", "0", "1", "1"})

	// Records arrive for 2.4 s, in batches of 10: the progress line shows
	// after the first second and is redrawn until the input ends.
	code, out = ptyRun(t, env, func(w io.WriteCloser) {
		for i := 0; i < 120; i += 10 {
			io.WriteString(w, e2eRecords("s", i, i+10))
			time.Sleep(200 * time.Millisecond)
		}
		w.Close()
	}, "append", "slow", "--batch", "10")
	if code != 0 || !strings.Contains(out, "\r\x1b[Kappend slow  ") {
		t.Fatalf("an append fed for 2.4 s at a terminal: exit %d, no progress line drawn: %q", code, out)
	}
	checkScreen(t, "an append fed for 2.4 s", out, header, []string{"slow", "0", "119", "120", "12"})

	code, out = ptyRun(t, env, feedAll(""), "verify")
	if code != 0 || strings.Contains(out, "\x1b") {
		t.Fatalf("verify of a small archive at a terminal: exit %d, drew progress: %q", code, out)
	}
	if lines := screenLines(t, out); len(lines) < 2 || !strings.HasPrefix(lines[0], "STREAM") {
		t.Fatalf("verify at a terminal: screen %q", lines)
	}
	code, out = ptyRun(t, env, feedAll(""), "read", "slow", "--all")
	if code != 0 || strings.Contains(out, "\x1b") {
		t.Fatalf("read --all to the terminal: exit %d, drew progress among the records: %q", code, out)
	}
	checkRecords(t, "read --all at a terminal", "s", parseRecords(t, strings.ReplaceAll(out, "\r\n", "\n")), 0, 0, 120)
}

// checkScreen wants exactly a table of header and one row on screen.
func checkScreen(t *testing.T, what, out string, header, row []string) {
	t.Helper()
	lines := screenLines(t, out)
	if len(lines) != 2 {
		t.Fatalf("%s: the screen holds %d lines, want the table's 2: %q\n(raw %q)", what, len(lines), lines, out)
	}
	gotHeader, rows := parseTable(strings.Join(lines, "\n"))
	if !strings.HasPrefix(lines[0], header[0]) || strings.Join(gotHeader, " ") != strings.Join(header, " ") ||
		len(rows) != 1 || strings.Join(rows[0], " ") != strings.Join(row, " ") {
		t.Fatalf("%s: screen %q, want the table %q / %q at column 0\n(raw %q)", what, lines, header, row, out)
	}
}
