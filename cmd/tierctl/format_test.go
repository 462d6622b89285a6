package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestHumanAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                 "0ms",
		950 * time.Millisecond:            "950ms",
		time.Second:                       "1s",
		42 * time.Second:                  "42s",
		5*time.Minute + 10*time.Second:    "5m 10s",
		2 * time.Hour:                     "2h",
		2*time.Hour + 59*time.Second:      "2h", // the seconds are past the two units shown
		3*24*time.Hour + 4*time.Hour + 5:  "3d 4h",
		400 * 24 * time.Hour:              "400d",
		-(90 * time.Second):               "1m 30s",
		26*time.Hour + 30*time.Minute + 1: "1d 2h",
	} {
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	p := &progress{label: "verify", unit: "segments"}
	got := p.line(45, 100, 10*time.Second)
	want := "verify  [==========>             ]  45/100 segments  4.5/s  ETA 12s"
	if got != want {
		t.Errorf("line = %q\n  want %q", got, want)
	}
	if got := p.line(100, 100, 10*time.Second); strings.Contains(got, "ETA") || !strings.Contains(got, "[========================]") {
		t.Errorf("finished line %q", got)
	}
	if got := p.line(0, 0, 0); got != "verify  0 segments" {
		t.Errorf("line with nothing known = %q", got)
	}
	b := &progress{label: "append s", unit: "bytes"}
	if got := b.line(3<<20, 0, 2*time.Second); got != "append s  3.0 MiB  1.5 MiB/s" {
		t.Errorf("bytes line without a total = %q", got)
	}
	if got := b.line(1<<30, 4<<30, 8*time.Second); !strings.Contains(got, "1.0 GiB / 4.0 GiB  128.0 MiB/s  ETA 24s") {
		t.Errorf("bytes line = %q", got)
	}
}

func TestProgressDrawsOnlyWhenAsked(t *testing.T) {
	var stderr bytes.Buffer
	for mode, want := range map[string]bool{"always": true, "never": false, "auto": false} { // auto: stdout is a buffer here
		stderr.Reset()
		a := &app{stdout: io.Discard, stderr: &stderr, progress: mode}
		p := a.newProgress("migrate", "actions")
		p.update(1, 2)
		p.update(2, 2)
		p.done()
		if got := strings.Contains(stderr.String(), "migrate"); got != want {
			t.Errorf("--progress %s drew %q", mode, stderr.String())
		}
	}
	// The last update of a phase is drawn even within the redraw interval.
	stderr.Reset()
	a := &app{stdout: io.Discard, stderr: &stderr, progress: "always"}
	p := a.newProgress("verify", "segments")
	p.update(1, 3)
	p.update(3, 3)
	p.done()
	if !strings.Contains(stderr.String(), "3/3 segments") || !strings.HasSuffix(stderr.String(), "\r\x1b[K") {
		t.Errorf("progress output %q lacks the final state, or done did not erase it", stderr.String())
	}
}

// TestEveryVerbHasHelpWithExample walks the command tree: every command an
// operator can run has a short description and an example.
func TestEveryVerbHasHelpWithExample(t *testing.T) {
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	root := newRoot(a, func(string) string { return "" })
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		n++
		if c.Short == "" || strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q: short %q, example %q", c.CommandPath(), c.Short, c.Example)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 18 {
		t.Errorf("walked %d commands; the tree is not what this test expects", n)
	}
	// Each verb's --help prints its example.
	var out bytes.Buffer
	if code := run(context.Background(), []string{"tail", "--help"}, strings.NewReader(""), &out, io.Discard, func(string) string { return "" }); code != 0 || !strings.Contains(out.String(), "tierctl tail trades -n 0 -f") {
		t.Errorf("tail --help (exit %d):\n%s", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"completion", "bash"}, strings.NewReader(""), &out, io.Discard, func(string) string { return "" }); code != 0 || !strings.Contains(out.String(), "__start_tierctl") {
		t.Errorf("completion bash (exit %d): %.200s", code, out.String())
	}
}
