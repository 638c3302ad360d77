package dev

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// benchProgress reports progress on standard error: a bar when it is a
// terminal, otherwise a line at the start and end of each step.
type benchProgress struct {
	w   io.Writer
	tty bool
}

func newBenchProgress(w io.Writer) *benchProgress {
	p := &benchProgress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *benchProgress) say(format string, a ...any) {
	fmt.Fprintf(p.w, "bench: "+format+"\n", a...)
}

// benchBar is one step's progress; total -1 is unknown.
type benchBar struct {
	p    *benchProgress
	bar  *progressbar.ProgressBar
	desc string
	t0   time.Time
}

func (p *benchProgress) bar(total int, desc string) *benchBar {
	b := &benchBar{p: p, desc: desc, t0: time.Now()}
	if p.tty {
		b.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("bench: "+desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
		)
	} else {
		p.say("%s…", desc)
	}
	return b
}

func (b *benchBar) add(n int) {
	if b.bar != nil {
		_ = b.bar.Add(n)
	}
}

// finish ends the step; err is how it ended.
func (b *benchBar) finish(err error) {
	if b.bar != nil {
		_ = b.bar.Exit()
		_ = b.bar.Clear()
	}
	if err == nil {
		b.p.say("%s: done in %s", b.desc, time.Since(b.t0).Round(time.Millisecond))
	}
}
