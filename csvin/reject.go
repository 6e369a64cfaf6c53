package csvin

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// RejectWriter writes rejected rows as CSV: a header "line,reason,<the
// input's header names>", then per reject its line, its reason and its raw
// fields, so the file can be fixed and loaded again.
type RejectWriter struct {
	w   *csv.Writer
	rec []string
	err error // of writing the header, reported by the first Write or Flush
}

// NewRejectWriter returns a RejectWriter to w for an input with the given
// header. Output is buffered: call Flush at the end.
func NewRejectWriter(w io.Writer, header []string) *RejectWriter {
	rw := &RejectWriter{w: csv.NewWriter(w)}
	rw.err = rw.w.Write(append([]string{"line", "reason"}, header...))
	return rw
}

// Write writes one rejected row.
func (rw *RejectWriter) Write(row Row) error {
	if rw.err != nil {
		return fmt.Errorf("csvin: writing rejects: %w", rw.err)
	}
	reason := "rejected" // never written blank, though a rejected Row always has Err
	if row.Err != nil {
		reason = row.Err.Error()
	}
	rw.rec = append(rw.rec[:0], strconv.FormatInt(row.Line, 10), reason)
	rw.rec = append(rw.rec, row.Fields...)
	if err := rw.w.Write(rw.rec); err != nil {
		return fmt.Errorf("csvin: writing reject of line %d: %w", row.Line, err)
	}
	return nil
}

// Flush writes any buffered rows to the underlying writer.
func (rw *RejectWriter) Flush() error {
	if rw.err != nil {
		return fmt.Errorf("csvin: writing rejects: %w", rw.err)
	}
	rw.w.Flush()
	if err := rw.w.Error(); err != nil {
		return fmt.Errorf("csvin: writing rejects: %w", err)
	}
	return nil
}
