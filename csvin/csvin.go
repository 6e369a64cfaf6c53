// Package csvin reads a CSV export of users (a header row naming the
// columns of viswals.User, in any order) as a stream of rows, each either a validated record or a rejected row with the
// reason, in constant memory whatever the size of the input.
package csvin

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/viswals/viswals"
)

const (
	// maxRecordBytes bounds the bytes one record may span. A legal row is a
	// few kilobytes at most (the domain caps names and emails); anything far
	// longer is a quote left open, and is cut back to its first line.
	maxRecordBytes = 1 << 20
	// maxRawBytes bounds the text of an unparsable line kept in a reject.
	maxRawBytes = 4 << 10
)

var bom = []byte("\xef\xbb\xbf")

// Row is one record of the input: good when Err is nil, rejected otherwise.
type Row struct {
	// Line is the physical line where the record starts; the header is
	// line 1 (blank lines count).
	Line int64
	// Record is valid when Err is nil. Its Version.Line is Line; its
	// Version.Load is left 0 for the caller to set.
	Record viswals.Record
	// Err says why the row was rejected, naming the column and value.
	Err error
	// Fields are the row's raw fields, set only for rejected rows (for the
	// rejects file). A row that is not even valid CSV has its raw line cut
	// at every comma, so that joining them with commas gives the line back.
	Fields []string
}

// Reader reads rows from a CSV export. It is not safe for concurrent use.
type Reader struct {
	src      *source
	br       *bufio.Reader // between src and csv; its buffer is csv's read-ahead
	csv      *csv.Reader
	csvStart int64 // input offset where csv started reading
	lineBase int64 // line number of csv's line 1, minus 1
	header   []string
	col      columns
}

// columns holds the index in a record of each known column, -1 if absent.
type columns struct {
	id, firstName, lastName, email, createdAt, deletedAt, mergedAt, parentUserID int
}

// NewReader reads the header row of r and returns a Reader for the rows
// after it. Columns are found by name, in any order, case-insensitively;
// id, email_address and created_at are required, the other known columns
// optional (absent means empty or null), unknown columns ignored.
func NewReader(r io.Reader) (*Reader, error) {
	return newReader(r, maxRecordBytes)
}

func newReader(r io.Reader, limit int) (*Reader, error) {
	src := newSource(r, limit)
	head, err := src.peek(len(bom))
	if err != nil {
		return nil, fmt.Errorf("csvin: reading header: %w", err)
	}
	var start int64
	if bytes.HasPrefix(head, bom) {
		start = int64(len(bom))
	}
	rd := &Reader{src: src}
	rd.restart(start)

	header, err := rd.csv.Read()
	switch {
	case err == io.EOF:
		return nil, errors.New("csvin: empty input, expected a header row")
	case errors.Is(err, errRecordTooLong):
		return nil, fmt.Errorf("csvin: header row longer than %d bytes", limit)
	case err != nil:
		return nil, fmt.Errorf("csvin: reading header: %w", err)
	}
	rd.header = slices.Clone(header)
	rd.src.commit(rd.offset())
	if rd.col, err = findColumns(rd.header); err != nil {
		return nil, fmt.Errorf("csvin: header: %w", err)
	}
	return rd, nil
}

func findColumns(header []string) (columns, error) {
	col := columns{-1, -1, -1, -1, -1, -1, -1, -1}
	known := map[string]*int{
		"id":             &col.id,
		"first_name":     &col.firstName,
		"last_name":      &col.lastName,
		"email_address":  &col.email,
		"created_at":     &col.createdAt,
		"deleted_at":     &col.deletedAt,
		"merged_at":      &col.mergedAt,
		"parent_user_id": &col.parentUserID,
	}
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		p, ok := known[name]
		if !ok {
			continue // unknown columns are ignored, so repeats of them are harmless
		}
		if *p >= 0 {
			return col, fmt.Errorf("column %q appears twice (columns %d and %d)", name, *p+1, i+1)
		}
		*p = i
	}
	for _, req := range []struct {
		name string
		idx  int
	}{{"id", col.id}, {"email_address", col.email}, {"created_at", col.createdAt}} {
		if req.idx < 0 {
			return col, fmt.Errorf("required column %q is missing (found %s)", req.name, strings.Join(header, ","))
		}
	}
	return col, nil
}

// Header returns the header row as it was read (names not normalised).
func (r *Reader) Header() []string { return slices.Clone(r.header) }

// restart starts a fresh csv.Reader at input offset off, the start of a line.
func (r *Reader) restart(off int64) {
	r.src.rewind(off)
	// The csv.Reader is new (it has no Reset) but its buffer is reused, so
	// a file full of broken quotes does not churn memory.
	if r.br == nil {
		r.br = bufio.NewReaderSize(r.src, readAhead)
	}
	r.br.Reset(r.src)
	r.csv = csv.NewReader(r.br)
	r.csv.ReuseRecord = true   // the fields are copied out where kept
	r.csv.FieldsPerRecord = -1 // counts are checked here, to say which row is short
	r.csvStart = off
	r.lineBase = r.src.lineAt(off) - 1
}

// offset returns the input offset just after the last record csv returned.
func (r *Reader) offset() int64 { return r.csvStart + r.csv.InputOffset() }

// Next returns the next row, good or rejected, and io.EOF after the last.
// A bad row never stops the reading; the only errors are those of the
// underlying reader.
func (r *Reader) Next() (Row, error) {
	rec, err := r.csv.Read()
	if err != nil {
		return r.readFailed(err)
	}
	l, _ := r.csv.FieldPos(0)
	r.src.commit(r.offset())
	return r.parse(r.lineBase+int64(l), rec), nil
}

// readFailed turns an error of the csv.Reader into a rejected row, or
// returns it when it is the end of the input or an error of the input.
// (Apart from Next so that the good path does not allocate for errors.As.)
func (r *Reader) readFailed(err error) (Row, error) {
	var perr *csv.ParseError
	switch {
	case err == io.EOF:
		return Row{}, io.EOF

	case errors.As(err, &perr) && perr.Line == perr.StartLine && r.src.lineEndsAt(r.offset()):
		// The record is one line and csv has consumed all of it: reject
		// it and carry on with the next line.
		start := r.src.skipBlankLines(r.src.keep)
		end := r.offset()
		raw := bytes.TrimRight(r.src.kept(start, end), "\r\n")
		row := rawReject(r.lineBase+int64(perr.StartLine), raw,
			viswals.Errorf(viswals.EINVALID, "not valid CSV: %v (column %d)", perr.Err, perr.Column))
		r.src.commit(end)
		return row, nil

	case errors.As(err, &perr) && perr.Line > perr.StartLine:
		// A quoted field ran over several lines and then broke: most
		// likely a quote opened by mistake, which swallowed the lines
		// after it. Only its first line is rejected.
		return r.cut(viswals.Errorf(viswals.EINVALID,
			"not valid CSV: a quoted field starting on this line breaks on line %d: %v (only this line is rejected; reading resumes on the next)",
			r.lineBase+int64(perr.Line), perr.Err))

	case errors.As(err, &perr) || errors.Is(err, errRecordTooLong):
		// The source stopped the record at the limit (a parse error in a
		// line cut there is reported first by csv, hence the ParseError).
		return r.cut(viswals.Errorf(viswals.EINVALID,
			"not valid CSV: record longer than %d bytes, probably a quote that is never closed (only this line is rejected; reading resumes on the next)",
			r.src.limit))

	default:
		return Row{}, fmt.Errorf("csvin: reading line %d: %w", r.src.lineAt(r.src.keep), err)
	}
}

// cut rejects the first line of the record being parsed with reason and
// restarts parsing on the line after it.
func (r *Reader) cut(reason error) (Row, error) {
	start := r.src.skipBlankLines(r.src.keep)
	line := r.src.lineAt(start)
	next, raw, err := r.src.skipLine(start, maxRawBytes)
	if err != nil {
		return Row{}, fmt.Errorf("csvin: reading line %d: %w", line, err)
	}
	row := rawReject(line, raw, reason)
	r.restart(next)
	return row, nil
}

// rawReject rejects a line that could not be parsed as CSV; its fields are
// the raw text cut at every comma.
func rawReject(line int64, raw []byte, reason error) Row {
	return Row{Line: line, Err: reason, Fields: strings.Split(string(raw), ",")}
}

// reject returns a rejected row with a copy of fields (the csv.Reader
// reuses its slice).
func reject(line int64, fields []string, reason error) Row {
	return Row{Line: line, Err: reason, Fields: slices.Clone(fields)}
}

// parse turns one CSV record into a validated row.
func (r *Reader) parse(line int64, rec []string) Row {
	if len(rec) != len(r.header) {
		return reject(line, rec, viswals.Errorf(viswals.EINVALID,
			"expected %d fields, got %d", len(r.header), len(rec)))
	}
	field := func(i int) string {
		if i < 0 {
			return ""
		}
		return rec[i]
	}

	var u viswals.User
	var err error
	if u.ID, err = parseInt("id", field(r.col.id), 1); err != nil {
		return reject(line, rec, err)
	}
	u.FirstName = field(r.col.firstName)
	u.LastName = field(r.col.lastName)
	if u.Email = field(r.col.email); u.Email == "" {
		return reject(line, rec, viswals.Errorf(viswals.EINVALID, "email_address is required"))
	}
	ms, err := parseInt("created_at", field(r.col.createdAt), 0)
	if err != nil {
		return reject(line, rec, err)
	}
	u.CreatedAt = time.UnixMilli(ms).UTC()
	if u.DeletedAt, err = parseNullTime("deleted_at", field(r.col.deletedAt)); err != nil {
		return reject(line, rec, err)
	}
	if u.MergedAt, err = parseNullTime("merged_at", field(r.col.mergedAt)); err != nil {
		return reject(line, rec, err)
	}
	if u.ParentUserID, err = parseNullInt("parent_user_id", field(r.col.parentUserID), 1); err != nil {
		return reject(line, rec, err)
	}
	// The domain rules: sizes, UTF-8, NUL bytes, the email's shape, time range.
	if err := u.Validate(); err != nil {
		return reject(line, rec, err)
	}
	return Row{Line: line, Record: viswals.Record{User: u, Version: viswals.Version{Line: line}}}
}

// parseInt parses a required integer column that must be at least min.
func parseInt(name, s string, min int64) (int64, error) {
	if s == "" {
		return 0, viswals.Errorf(viswals.EINVALID, "%s is required", name)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, viswals.Errorf(viswals.EINVALID, "%s: %s is out of range", name, show(s))
	}
	if err != nil {
		return 0, viswals.Errorf(viswals.EINVALID, "%s: %s is not an integer", name, show(s))
	}
	if v < min {
		return 0, viswals.Errorf(viswals.EINVALID, "%s: %s must be >= %d", name, show(s), min)
	}
	return v, nil
}

// show quotes a value for a reason, cut short: the whole value is in the
// rejects file already, and a reason should stay one readable line.
func show(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// isNull reports whether s is one of the input's spellings of null.
func isNull(s string) bool { return s == "" || s == "-1" }

// parseNullInt parses an integer column where -1 or empty means null.
func parseNullInt(name, s string, min int64) (*int64, error) {
	if isNull(s) {
		return nil, nil
	}
	v, err := parseInt(name, s, min)
	if err != nil {
		return nil, viswals.Errorf(viswals.EINVALID, "%v (or -1 or empty for null)", err)
	}
	return &v, nil
}

// parseNullTime parses a unix-milliseconds column where -1 or empty means null.
func parseNullTime(name, s string) (*time.Time, error) {
	ms, err := parseNullInt(name, s, 0)
	if err != nil || ms == nil {
		return nil, err
	}
	t := time.UnixMilli(*ms).UTC()
	return &t, nil
}
