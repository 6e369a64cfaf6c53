package producer

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress display modes.
const (
	ProgressAuto  = "auto"  // a bar on a terminal, plain lines otherwise
	ProgressBar   = "bar"   // a bar, redrawn in place
	ProgressPlain = "plain" // a line every PlainInterval, for logs
	ProgressNone  = "none"
)

// PlainInterval is how often plain progress prints a line.
const PlainInterval = 5 * time.Second

// Meter shows a load's progress on stderr: first reading the file (bytes
// read out of its size give the percent and the ETA, with rows/s), then,
// when the producer waits, rows committed by the consumers out of those
// published. Safe for concurrent use.
type Meter struct {
	mode  string
	w     io.Writer
	size  int64 // the input's size in bytes; <= 0 unknown (stdin)
	bytes *CountingReader
	start time.Time

	mu        sync.Mutex
	bar       *progressbar.ProgressBar
	lastPrint time.Time
	phase     string
	note      string // the last note Committed showed
}

// NewMeter returns a Meter drawing on w in mode (ProgressAuto picks by
// whether w is a terminal). in counts the bytes read of an input of size
// bytes (<= 0: unknown, shown without percent or ETA).
func NewMeter(w io.Writer, mode string, size int64, in *CountingReader) *Meter {
	if mode == ProgressAuto || mode == "" {
		mode = ProgressPlain
		if isTerminal(w) {
			mode = ProgressBar
		}
	}
	m := &Meter{mode: mode, w: w, size: size, bytes: in, start: time.Now(), phase: "loading"}
	if mode == ProgressBar {
		m.bar = m.newBar(size, "loading", size > 0)
	}
	return m
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (m *Meter) newBar(total int64, desc string, bytes bool) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(m.w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(m.w) }),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"))
	}
	return progressbar.NewOptions64(total, opts...)
}

// Set shows rows read so far.
func (m *Meter) Set(rows int64) {
	if m.mode == ProgressNone {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	elapsed := time.Since(m.start)
	rate := float64(rows) / max(elapsed.Seconds(), 1e-9)
	read := m.bytes.N()
	switch m.mode {
	case ProgressBar:
		if m.size > 0 {
			m.bar.Describe(fmt.Sprintf("loading %d rows (%.0f rows/s)", rows, rate))
			_ = m.bar.Set64(min(read, m.size))
		} else {
			_ = m.bar.Set64(rows)
		}
	case ProgressPlain:
		if time.Since(m.lastPrint) < PlainInterval {
			return
		}
		m.lastPrint = time.Now()
		if m.size > 0 {
			pct := 100 * float64(read) / float64(m.size)
			eta := "?"
			if read > 0 {
				eta = (time.Duration(float64(elapsed) * float64(m.size-read) / float64(read))).Round(time.Second).String()
			}
			fmt.Fprintf(m.w, "loading: %.1f%% rows=%d rows_per_second=%.0f eta=%s\n", pct, rows, rate, eta)
		} else {
			fmt.Fprintf(m.w, "loading: rows=%d rows_per_second=%.0f\n", rows, rate)
		}
	}
}

// Loaded ends the reading phase.
func (m *Meter) Loaded() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bar != nil {
		if m.size > 0 {
			_ = m.bar.Set64(m.size)
		}
		_ = m.bar.Finish()
		m.bar = nil
	}
}

// Committed shows the rows the consumers committed out of published, and
// note (what the wait is at).
func (m *Meter) Committed(received, published int64, note string) {
	if m.mode == ProgressNone {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.mode {
	case ProgressBar:
		if m.phase != "committed" {
			m.phase = "committed"
			m.bar = m.newBar(max(published, 1), "committed", false)
		}
		m.bar.Describe("committed" + suffix(note))
		_ = m.bar.Set64(received)
	case ProgressPlain:
		// A line per interval, and at once for the first, the last and a
		// change of what the wait is at.
		if m.phase == "committed" && time.Since(m.lastPrint) < PlainInterval && received < published && note == m.note {
			return
		}
		m.phase, m.lastPrint, m.note = "committed", time.Now(), note
		fmt.Fprintf(m.w, "committed: %d/%d rows%s\n", received, published, suffix(note))
	}
}

func suffix(note string) string {
	if note == "" {
		return ""
	}
	return " (" + note + ")"
}

// Finish ends the display.
func (m *Meter) Finish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bar != nil {
		_ = m.bar.Finish()
		m.bar = nil
	}
}

// CountingReader counts the bytes read through it, for the progress.
type CountingReader struct {
	r io.Reader
	n atomic.Int64
}

// NewCountingReader counts what is read of r.
func NewCountingReader(r io.Reader) *CountingReader { return &CountingReader{r: r} }

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// N is the number of bytes read so far.
func (c *CountingReader) N() int64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}
