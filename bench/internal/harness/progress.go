package harness

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progressDelay is how long a phase runs before its progress line appears:
// short runs stay quiet.
const progressDelay = 2 * time.Second

// Progress prints a carriage-return status line on a terminal while a long
// phase runs: events done, current rate, elapsed time against the budget.
type Progress struct {
	w     io.Writer
	label string
	done  *atomic.Int64
	total int64
	dur   time.Duration
	stop  chan struct{}
	wg    sync.WaitGroup
	shown bool
}

// ProgressWriter returns os.Stderr if mode asks for progress ("on", or
// "auto" and stderr is a terminal), else nil.
func ProgressWriter(mode string) io.Writer {
	switch mode {
	case "on":
		return os.Stderr
	case "auto":
		if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return os.Stderr
		}
	}
	return nil
}

// StartProgress shows progress of counter against total events (0: no
// count) and dur (0: no time budget) on w, from progressDelay on; w nil
// disables it. Call Stop when the phase ends.
func StartProgress(w io.Writer, label string, counter *atomic.Int64, total int64, dur time.Duration) *Progress {
	p := &Progress{w: w, label: label, done: counter, total: total, dur: dur, stop: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go p.run()
	return p
}

func (p *Progress) run() {
	defer p.wg.Done()
	start := time.Now()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	lastN, lastT := int64(0), start
	for {
		select {
		case <-p.stop:
			if p.shown {
				fmt.Fprint(p.w, "\r\033[K")
			}
			return
		case now := <-t.C:
			n := p.done.Load()
			rate := float64(n-lastN) / now.Sub(lastT).Seconds()
			lastN, lastT = n, now
			el := now.Sub(start)
			if el < progressDelay {
				continue
			}
			p.shown = true
			line := fmt.Sprintf("%s: %s events", p.label, groupThousands(n))
			if p.total > 0 {
				line += fmt.Sprintf("/%s (%.0f%%)", groupThousands(p.total), 100*float64(n)/float64(p.total))
			}
			line += fmt.Sprintf(", %s/s, %.0fs", FormatRate(rate), el.Seconds())
			if p.dur > 0 {
				line += fmt.Sprintf("/%.0fs", p.dur.Seconds())
			}
			fmt.Fprintf(p.w, "\r\033[K%s", line)
		}
	}
}

// Stop ends the display and clears its line.
func (p *Progress) Stop() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.wg.Wait()
}
