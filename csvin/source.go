package csvin

import (
	"bytes"
	"errors"
	"io"
)

// errRecordTooLong is returned by source.Read when one record has grown past
// the limit: almost always a quote that is never closed, which would
// otherwise make encoding/csv read the rest of the input into one field.
var errRecordTooLong = errors.New("record too long")

const (
	// readChunk is how much source asks the underlying reader for at a time.
	readChunk = 64 << 10
	// readAhead is the size of the bufio.Reader between source and the
	// csv.Reader: bytes source has handed out but csv has not parsed yet.
	readAhead = 16 << 10
)

// source is the byte stream under the csv.Reader. It keeps every byte from
// the start of the record being parsed (offset keep) onward, so that a record
// found malformed across several lines can be cut back to its first line:
// the Reader then starts a fresh csv.Reader on the next line, and one stray
// quote costs one rejected line instead of the rest of the file. What it
// keeps is bounded by limit, so memory stays constant whatever the input.
type source struct {
	r     io.Reader
	buf   []byte // input from offset start onward
	start int64  // input offset of buf[0]
	line  int64  // line number at offset start (lines count from 1)
	pos   int    // next byte of buf to hand out
	keep  int64  // input offset of the start of the record being parsed
	limit int    // most bytes a record may span
	err   error  // sticky error of r, returned once buf is drained
}

func newSource(r io.Reader, limit int) *source {
	// Room for a read beside what a fill keeps (the record in progress and
	// the read-ahead), so that ordinary input never grows the buffer.
	return &source{r: r, buf: make([]byte, 0, 2*readChunk), line: 1, limit: limit}
}

func (s *source) Read(p []byte) (int, error) {
	// Like bufio, give up on a reader that keeps returning nothing.
	for tries := 0; s.pos == len(s.buf); tries++ {
		if s.err != nil {
			return 0, s.err
		}
		if tries == 100 {
			return 0, io.ErrNoProgress
		}
		// Empty lines belong to no record; skipping them here keeps a long
		// run of them from counting against the limit.
		s.keep = s.skipBlankLines(s.keep)
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf[s.pos:])
	s.pos += n
	return n, nil
}

// fill reads more input into buf, first dropping the bytes before keep:
// parsing never goes back past the start of the current record.
func (s *source) fill() error {
	if drop := int(s.keep - s.start); drop > 0 {
		s.line += int64(bytes.Count(s.buf[:drop], []byte("\n")))
		n := copy(s.buf, s.buf[drop:])
		s.buf = s.buf[:n]
		s.pos -= drop
		s.start = s.keep
	}
	// What is left is the record in progress and the csv.Reader's read-ahead.
	if len(s.buf) > s.limit+readAhead {
		return errRecordTooLong
	}
	if cap(s.buf)-len(s.buf) < readChunk {
		grown := make([]byte, len(s.buf), 2*cap(s.buf)+readChunk)
		copy(grown, s.buf)
		s.buf = grown
	}
	n, err := s.r.Read(s.buf[len(s.buf) : len(s.buf)+readChunk])
	s.buf = s.buf[:len(s.buf)+n]
	if err != nil {
		s.err = err
	}
	return nil
}

// peek returns at least n bytes of the input at the read position when
// there are that many, fewer at the end of the input.
func (s *source) peek(n int) ([]byte, error) {
	for len(s.buf)-s.pos < n && s.err == nil {
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
	if len(s.buf)-s.pos < n && s.err != io.EOF {
		return nil, s.err
	}
	return s.buf[s.pos:], nil
}

// kept returns the bytes from offset from to offset to; both must lie in
// what the source still holds (from >= keep).
func (s *source) kept(from, to int64) []byte {
	return s.buf[from-s.start : to-s.start]
}

// lineAt returns the line number at offset off, which the source must
// still hold. It counts lines from the start of what is held, so it is for
// the rare paths only; the csv.Reader numbers the lines of ordinary rows.
func (s *source) lineAt(off int64) int64 {
	return s.line + int64(bytes.Count(s.buf[:off-s.start], []byte("\n")))
}

// lineEndsAt reports whether offset off, which the source must still hold,
// is at the end of a line: just after a newline, or at the end of the input.
func (s *source) lineEndsAt(off int64) bool {
	i := int(off - s.start)
	return i > 0 && s.buf[i-1] == '\n' || i == len(s.buf) && s.err == io.EOF
}

// commit records that everything before offset off has been parsed into
// complete records and need not be kept.
func (s *source) commit(off int64) { s.keep = off }

// rewind makes the next Read start at offset off (>= keep) and keeps it.
func (s *source) rewind(off int64) {
	s.pos = int(off - s.start)
	s.keep = off
}

// skipBlankLines returns the offset of the first byte at or after off that
// is not part of an empty line, which encoding/csv skips without counting a
// record: that is where the record after off starts.
func (s *source) skipBlankLines(off int64) int64 {
	b := s.buf[off-s.start:]
	i := 0
	for {
		switch {
		case bytes.HasPrefix(b[i:], []byte("\n")):
			i++
		case bytes.HasPrefix(b[i:], []byte("\r\n")):
			i += 2
		default:
			return off + int64(i)
		}
	}
}

// skipLine moves past the line that starts at offset off, returns the
// offset just after its end and the line's text without the line end, cut
// to at most max bytes. It reads on when the line goes beyond what is held,
// discarding as it goes, so even a line longer than limit costs no memory.
func (s *source) skipLine(off int64, max int) (next int64, text []byte, err error) {
	s.rewind(off)
	for {
		rest := s.buf[s.pos:]
		i := bytes.IndexByte(rest, '\n')
		if len(text) < max {
			end := len(rest)
			if i >= 0 {
				end = i
			}
			text = append(text, rest[:min(end, max-len(text))]...)
		}
		if i >= 0 {
			s.rewind(s.start + int64(s.pos+i+1))
			return s.keep, bytes.TrimSuffix(text, []byte("\r")), nil
		}
		s.rewind(s.start + int64(len(s.buf)))
		if s.err != nil {
			if s.err == io.EOF {
				return s.keep, bytes.TrimSuffix(text, []byte("\r")), nil
			}
			return s.keep, text, s.err
		}
		if err := s.fill(); err != nil {
			return s.keep, text, err
		}
	}
}
