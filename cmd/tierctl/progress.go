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
// is watching (--progress auto: stdout is a terminal; always; never); a
// nil *progress draws nothing, so callers need no checks.
type progress struct {
	w     io.Writer
	label string
	unit  string // "segments", "actions"; "bytes" renders sizes
	mu    sync.Mutex
	start time.Time // of the current phase
	last  time.Time // of the last redraw
	shown bool      // a line is on the screen
	now   func() time.Time
}

// barWidth is the bar's width in cells.
const barWidth = 24

// newProgress returns the progress line for an operation, or nil when
// progress is not shown.
func (a *app) newProgress(label, unit string) *progress {
	if !a.showProgress() {
		return nil
	}
	return &progress{w: a.stderr, label: label, unit: unit, start: time.Now(), now: time.Now}
}

// showProgress applies --progress: auto shows it when stdout is a
// terminal (an operator is watching, not a script).
func (a *app) showProgress() bool {
	switch a.progress {
	case "always":
		return true
	case "never":
		return false
	}
	return isTerminal(a.stdout)
}

// isTerminal reports whether w is a terminal (not a pipe, a file or
// /dev/null, which is a character device too).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// phase starts a new phase under a new label (catalog rebuild reads warm
// files, then cold objects): the finished phase's line stays on screen.
func (p *progress) phase(label, unit string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if label == p.label {
		return
	}
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
	p.label, p.unit, p.start, p.last = label, unit, p.now(), time.Time{}
}

// update shows done of total; total ≤ 0 means unknown (no bar, no ETA).
// The last update (done == total) is always drawn.
func (p *progress) update(done, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if (total <= 0 || done < total) && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = now, true
	fmt.Fprintf(p.w, "\r\x1b[K%s", p.line(done, total, now.Sub(p.start)))
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

// done ends the progress line, leaving its last state on screen.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}
