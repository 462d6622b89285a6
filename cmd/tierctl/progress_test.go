package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// screen replays what a terminal shows for text written to it: \r goes
// to column 0, ESC[K erases to the end of the line, \n starts a new line.
// It returns the lines on screen and, for each line that text put there,
// the column the cursor was at when the line's first printable byte came
// (so a table's header must start at column 0 of an empty line).
func screen(t *testing.T, out string) []string {
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
		case c == 0x1b && strings.HasPrefix(out[i:], "\x1b[K"):
			cur = cur[:col]
			i += 2
		case c == 0x1b:
			t.Fatalf("an escape sequence other than ESC[K at byte %d: %q", i, out[i:min(len(out), i+8)])
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

// fakeClock is a progress line's clock, moved by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newFakeProgress(w *bytes.Buffer, after time.Duration) (*progress, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	return &progress{w: w, label: "append s", unit: "bytes", begun: clk.t, start: clk.t, after: after, now: clk.now}, clk
}

// TestProgressOnlyForWorkThatLasts: under --progress auto nothing is drawn
// during the first second, so a quick append or verify leaves stderr
// untouched; after it the line is drawn and redrawn in place.
func TestProgressOnlyForWorkThatLasts(t *testing.T) {
	var w bytes.Buffer
	p, clk := newFakeProgress(&w, showAfter)
	for range 5 {
		clk.advance(150 * time.Millisecond)
		p.update(100, 1000)
	}
	p.update(1000, 1000) // even the last update, when the work was quick
	if w.Len() != 0 {
		t.Fatalf("drawn within the first second: %q", w.String())
	}
	p.done()
	if w.Len() != 0 {
		t.Fatalf("done of a line never drawn wrote %q", w.String())
	}

	w.Reset()
	p, clk = newFakeProgress(&w, showAfter)
	clk.advance(1100 * time.Millisecond)
	p.update(300<<10, 1<<20)
	if !strings.Contains(w.String(), "append s") || !strings.Contains(w.String(), "300.0 KiB / 1.0 MiB") {
		t.Fatalf("after a second, no progress line: %q", w.String())
	}
	clk.advance(200 * time.Millisecond)
	p.update(600<<10, 1<<20)
	if got := screen(t, w.String()); len(got) != 1 || !strings.Contains(got[0], "600.0 KiB / 1.0 MiB") {
		t.Fatalf("the redraw is not in place: screen %q", got)
	}
}

// TestProgressErasedBeforeOutput: done erases the line, so what follows
// (a table on the same terminal) starts at column 0 of an empty line; a
// note is printed on a line of its own and the progress comes back under
// it.
func TestProgressErasedBeforeOutput(t *testing.T) {
	var w bytes.Buffer
	p, clk := newFakeProgress(&w, 0)
	p.update(10, 100)
	clk.advance(time.Second)
	p.note("tierctl: batch 3: backpressure (HTTP 503); retry 1 of 30 in 100ms")
	clk.advance(time.Second)
	p.update(50, 100)
	p.done()
	w.WriteString("STREAM  FIRST_OFFSET\ns       0\n") // the table, on the same terminal
	got := screen(t, w.String())
	want := []string{"tierctl: batch 3: backpressure (HTTP 503); retry 1 of 30 in 100ms", "STREAM  FIRST_OFFSET", "s       0"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("screen after a note, progress and a table:\n%q\nwant\n%q\n(raw %q)", got, want, w.String())
	}
	p.update(100, 100)
	if strings.Contains(w.String()[strings.Index(w.String(), "s       0"):], "append") {
		t.Fatalf("drawn after done: %q", w.String())
	}
}

// TestProgressPhasesErased: catalog rebuild's phases replace each other on
// the same line.
func TestProgressPhasesErased(t *testing.T) {
	var w bytes.Buffer
	p, _ := newFakeProgress(&w, 0)
	p.phase("rebuild: warm", "files")
	p.update(3, 3)
	p.phase("rebuild: cold", "objects")
	p.update(1, 2)
	p.done()
	if got := screen(t, w.String()); len(got) != 0 {
		t.Fatalf("screen after two phases and done: %q, want nothing left", got)
	}
	if !strings.Contains(w.String(), "rebuild: warm  [") || !strings.Contains(w.String(), "1/2 objects") {
		t.Fatalf("phases not drawn: %q", w.String())
	}
}

// TestNilProgress: a progress line not shown takes every call.
func TestNilProgress(t *testing.T) {
	var p *progress
	p.update(1, 2)
	p.phase("x", "y")
	p.clear()
	p.done()
	var errb bytes.Buffer
	a := &app{stderr: &errb, progress: "never"}
	if a.newProgress("x", "y") != nil {
		t.Fatal("--progress never made a progress line")
	}
	a.notef("tierctl: %d", 1)
	if errb.String() != "tierctl: 1\n" {
		t.Fatalf("notef without a progress line wrote %q", errb.String())
	}
}
