package producer

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar shows rows read and rows/s while its writer is a terminal and does
// nothing otherwise, so logs and CI output stay clean.
type Bar struct{ bar *progressbar.ProgressBar }

// NewBar returns a Bar drawn on w (the program's stderr).
func NewBar(w io.Writer) Bar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return Bar{}
	}
	return Bar{bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("loading"),
		progressbar.OptionSetItsString("rows"),
		progressbar.OptionShowIts(),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)}
}

// Set shows rows read so far.
func (b Bar) Set(rows int64) {
	if b.bar != nil {
		_ = b.bar.Set64(rows)
	}
}

// Finish clears the bar.
func (b Bar) Finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
	}
}
