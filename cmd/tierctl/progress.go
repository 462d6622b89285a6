package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress draws one line on stderr for a long operation: a bar, done of
// total, the rate and the time left,
//
//	verify  [=========>          ]  45/100 segments  12.3/s  ETA 4s
//
// redrawn at most ten times a second. It is drawn only when the operator
// is watching (--progress auto: stderr is a terminal; always; never), and
// under auto only once the work has lasted showAfter: a quick append or
// verify draws nothing. The line is erased, not left behind, before
// anything else is printed (done, note), so a table printed after it
// starts at column 0 of a clean line. A nil *progress draws nothing, so
// callers need no checks.
type progress struct {
	w     io.Writer
	label string
	unit  string // "segments", "actions", "records"; "bytes" renders sizes
	mu    sync.Mutex
	begun time.Time     // when the operation started
	after time.Duration // nothing is drawn before begun+after
	start time.Time     // of the current phase, for the rate
	last  time.Time     // of the last redraw
	shown bool          // a line is on the screen
	// cur and total are the last update, redrawn after a note.
	cur, total int64
	now        func() time.Time
}

// barWidth is the bar's width in cells.
const barWidth = 24

// showAfter is how long work lasts before --progress auto draws its line:
// a progress bar that flashes for 50 ms tells nothing.
const showAfter = time.Second

// newProgress returns the progress line for an operation, or nil when
// progress is not shown. It becomes the app's line: notef clears it.
func (a *app) newProgress(label, unit string) *progress {
	return a.startProgress(label, unit, a.showProgress())
}

// startProgress is newProgress with the decision to show it made.
func (a *app) startProgress(label, unit string, show bool) *progress {
	if !show {
		return nil
	}
	after := showAfter
	if a.progress == "always" {
		after = 0 // asked for: drawn from the first update
	}
	now := time.Now()
	p := &progress{w: a.stderr, label: label, unit: unit, begun: now, after: after, start: now, now: time.Now}
	a.prog = p
	return p
}

// showProgress applies --progress: auto shows it when stderr, where it
// is drawn, is a terminal (an operator is watching, not a log file).
func (a *app) showProgress() bool {
	switch a.progress {
	case "always":
		return true
	case "never":
		return false
	}
	return isTerminal(a.stderr)
}

// notef prints a line on stderr for the operator: the progress line, if
// one is drawn, is erased first and redrawn under it at its next update.
func (a *app) notef(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if a.prog != nil {
		a.prog.note(msg)
		return
	}
	fmt.Fprintln(a.stderr, msg)
}

// noteWriter is stderr for writers that print whole lines (a logger):
// the progress line, if one is drawn, is erased before each.
func (a *app) noteWriter() io.Writer { return noteWriter{a} }

type noteWriter struct{ a *app }

func (w noteWriter) Write(b []byte) (int, error) {
	if p := w.a.prog; p != nil {
		p.clear()
	}
	return w.a.stderr.Write(b)
}

// isTerminal reports whether w is a terminal (not a pipe, a file or
// /dev/null, which is a character device too).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// phase starts a new phase under a new label (catalog rebuild reads warm
// files, then cold objects): the finished phase's line is erased.
func (p *progress) phase(label, unit string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if label == p.label {
		return
	}
	p.eraseLocked()
	p.label, p.unit, p.start, p.last = label, unit, p.now(), time.Time{}
	p.cur, p.total = 0, 0
}

// update shows done of total; total ≤ 0 means unknown (no bar, no ETA).
// The last update (done == total) is always drawn, once the line shows.
func (p *progress) update(done, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur, p.total = done, total
	now := p.now()
	if now.Sub(p.begun) < p.after {
		return
	}
	if (total <= 0 || done < total) && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = now, true
	fmt.Fprintf(p.w, "\r\x1b[K%s", p.line(done, total, now.Sub(p.start)))
}

// note prints msg on a line of its own, erasing the progress line first;
// the next update draws it again.
func (p *progress) note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.eraseLocked()
	fmt.Fprintln(p.w, msg)
	p.last = time.Time{} // redraw at the next update
}

// clear erases the line for output that goes to the same screen; the next
// update draws it again.
func (p *progress) clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.eraseLocked()
	p.last = time.Time{}
}

// eraseLocked takes the line off the screen, leaving the cursor at
// column 0 of an empty line.
func (p *progress) eraseLocked() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// line renders one progress line for done of total after elapsed.
func (p *progress) line(done, total int64, elapsed time.Duration) string {
	var b strings.Builder
	b.WriteString(p.label)
	if total > 0 {
		fill := int(min(done, total) * barWidth / total)
		b.WriteString("  [")
		b.WriteString(strings.Repeat("=", fill))
		if fill < barWidth {
			b.WriteString(">")
			b.WriteString(strings.Repeat(" ", barWidth-fill-1))
		}
		b.WriteString("]")
	}
	if p.unit == "bytes" {
		fmt.Fprintf(&b, "  %s", humanBytes(done))
		if total > 0 {
			fmt.Fprintf(&b, " / %s", humanBytes(total))
		}
	} else {
		fmt.Fprintf(&b, "  %d", done)
		if total > 0 {
			fmt.Fprintf(&b, "/%d", total)
		}
		fmt.Fprintf(&b, " %s", p.unit)
	}
	secs := elapsed.Seconds()
	if secs <= 0 || done <= 0 {
		return b.String()
	}
	rate := float64(done) / secs
	if p.unit == "bytes" {
		fmt.Fprintf(&b, "  %s/s", humanBytes(int64(rate)))
	} else {
		fmt.Fprintf(&b, "  %.1f/s", rate)
	}
	if total > 0 && done < total {
		eta := "<1s"
		if left := time.Duration(float64(total-done) / rate * float64(time.Second)); left >= time.Second {
			eta = humanAge(left.Round(time.Second))
		}
		fmt.Fprintf(&b, "  ETA %s", eta)
	}
	return b.String()
}

// done erases the progress line for good: what the verb prints next
// (its table, its summary, an error) starts on a clean line.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.eraseLocked()
	p.after = 1<<63 - 1 // nothing more is drawn
}
