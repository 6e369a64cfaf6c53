package csvin_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/csvin"
)

const header = "id,first_name,last_name,email_address,created_at,deleted_at,merged_at,parent_user_id\n"

// readAll reads every row of input, failing the test on any error of Next.
func readAll(t testing.TB, input string) []csvin.Row {
	t.Helper()
	r, err := csvin.NewReader(strings.NewReader(input))
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	return drain(t, r)
}

func drain(t testing.TB, r *csvin.Reader) []csvin.Row {
	t.Helper()
	var rows []csvin.Row
	for {
		row, err := r.Next()
		if err == io.EOF {
			return rows
		}
		if err != nil {
			t.Fatalf("Next after %d rows: %v", len(rows), err)
		}
		rows = append(rows, row)
	}
}

func ms(v int64) time.Time  { return time.UnixMilli(v).UTC() }
func tp(v int64) *time.Time { t := ms(v); return &t }
func ip(v int64) *int64     { return &v }
func eqTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}

func sameUser(a, b viswals.User) bool {
	return a.ID == b.ID && a.FirstName == b.FirstName && a.LastName == b.LastName &&
		a.Email == b.Email && a.CreatedAt.Equal(b.CreatedAt) && a.CreatedAt.Location() == time.UTC &&
		eqTime(a.DeletedAt, b.DeletedAt) && eqTime(a.MergedAt, b.MergedAt) &&
		(a.ParentUserID == nil && b.ParentUserID == nil ||
			a.ParentUserID != nil && b.ParentUserID != nil && *a.ParentUserID == *b.ParentUserID)
}

func TestRejectedRows(t *testing.T) {
	const good = "1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1"
	tests := []struct {
		name   string
		line   string
		reason string // a substring of the expected reason
	}{
		{"too few fields", "1,Ann,Lee,ann@example.com,1500000000000,-1,-1", "expected 8 fields, got 7"},
		{"too many fields", good + ",extra", "expected 8 fields, got 9"},
		{"one field", "1", "expected 8 fields, got 1"},
		{"non-numeric id", "abc,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1", `id: "abc" is not an integer`},
		{"id with spaces", " 1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1", `id: " 1" is not an integer`},
		{"id decimal", "1.5,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1", `id: "1.5" is not an integer`},
		{"id zero", "0,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1", `id: "0" must be >= 1`},
		{"id negative", "-3,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1", `id: "-3" must be >= 1`},
		{"id missing", ",Ann,Lee,ann@example.com,1500000000000,-1,-1,-1", "id is required"},
		{"id overflow", "99999999999999999999,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1", `id: "99999999999999999999" is out of range`},
		{"non-numeric created_at", "1,Ann,Lee,ann@example.com,2020-01-01,-1,-1,-1", `created_at: "2020-01-01" is not an integer`},
		{"negative created_at", "1,Ann,Lee,ann@example.com,-5,-1,-1,-1", `created_at: "-5" must be >= 0`},
		{"created_at -1 is not null", "1,Ann,Lee,ann@example.com,-1,-1,-1,-1", `created_at: "-1" must be >= 0`},
		{"missing created_at", "1,Ann,Lee,ann@example.com,,-1,-1,-1", "created_at is required"},
		{"created_at after year 9999", "1,Ann,Lee,ann@example.com,253402300800000,-1,-1,-1", "created_at must be between 1970 and 9999"},
		{"missing email", "1,Ann,Lee,,1500000000000,-1,-1,-1", "email_address is required"},
		{"email without @", "1,Ann,Lee,ann.example.com,1500000000000,-1,-1,-1", "email_address must have one '@' with text on both sides"},
		{"email with two @", "1,Ann,Lee,ann@x@example.com,1500000000000,-1,-1,-1", "email_address must have one '@'"},
		{"email empty local part", "1,Ann,Lee,@example.com,1500000000000,-1,-1,-1", "email_address must have one '@'"},
		{"email empty domain", "1,Ann,Lee,ann@,1500000000000,-1,-1,-1", "email_address must have one '@'"},
		{"email too long", "1,Ann,Lee,a@" + strings.Repeat("x", 400) + ",1500000000000,-1,-1,-1", "email_address is longer than 320 bytes"},
		{"non-numeric deleted_at", "1,Ann,Lee,ann@example.com,1500000000000,yesterday,-1,-1", `deleted_at: "yesterday" is not an integer`},
		{"negative deleted_at", "1,Ann,Lee,ann@example.com,1500000000000,-2,-1,-1", `deleted_at: "-2" must be >= 0 (or -1 or empty for null)`},
		{"non-numeric merged_at", "1,Ann,Lee,ann@example.com,1500000000000,-1,1.5e12,-1", `merged_at: "1.5e12" is not an integer`},
		{"negative merged_at", "1,Ann,Lee,ann@example.com,1500000000000,-1,-7,-1", `merged_at: "-7" must be >= 0`},
		{"non-numeric parent", "1,Ann,Lee,ann@example.com,1500000000000,-1,-1,two", `parent_user_id: "two" is not an integer`},
		{"parent zero", "1,Ann,Lee,ann@example.com,1500000000000,-1,-1,0", `parent_user_id: "0" must be >= 1`},
		{"parent negative", "1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-2", `parent_user_id: "-2" must be >= 1`},
		{"invalid UTF-8 in name", "1,Ann\xff,Lee,ann@example.com,1500000000000,-1,-1,-1", "first_name is not valid UTF-8"},
		{"invalid UTF-8 in email", "1,Ann,Lee,ann\xc3@example.com,1500000000000,-1,-1,-1", "email_address is not valid UTF-8"},
		{"NUL byte", "1,Ann,Le\x00e,ann@example.com,1500000000000,-1,-1,-1", "last_name contains a NUL byte"},
		{"name too long", "1," + strings.Repeat("a", 1025) + ",Lee,ann@example.com,1500000000000,-1,-1,-1", "first_name is longer than 1024 bytes"},
		{"bare quote", `1,Ann "Annie",Lee,ann@example.com,1500000000000,-1,-1,-1`, `not valid CSV: bare " in non-quoted-field`},
		{"text after closing quote", `1,"Ann"ie,Lee,ann@example.com,1500000000000,-1,-1,-1`, `not valid CSV: extraneous or missing " in quoted-field`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A good row after the bad one shows that reading goes on.
			rows := readAll(t, header+tt.line+"\n"+good+"\n")
			if len(rows) != 2 {
				t.Fatalf("got %d rows, want 2: %+v", len(rows), rows)
			}
			bad := rows[0]
			if bad.Err == nil {
				t.Fatalf("row accepted, want rejected with %q", tt.reason)
			}
			if !strings.Contains(bad.Err.Error(), tt.reason) {
				t.Errorf("reason %q, want it to contain %q", bad.Err, tt.reason)
			}
			if viswals.ErrorCode(bad.Err) != viswals.EINVALID {
				t.Errorf("error code %q, want %q", viswals.ErrorCode(bad.Err), viswals.EINVALID)
			}
			if bad.Line != 2 {
				t.Errorf("line %d, want 2", bad.Line)
			}
			if got := strings.Join(bad.Fields, ","); got != tt.line {
				t.Errorf("fields join to %q, want the raw line %q", got, tt.line)
			}
			if rows[1].Err != nil || rows[1].Line != 3 || rows[1].Record.ID != 1 {
				t.Errorf("row after the bad one: %+v", rows[1])
			}
		})
	}
}

func TestGoodRows(t *testing.T) {
	base := viswals.User{ID: 1, FirstName: "Ann", LastName: "Lee", Email: "ann@example.com", CreatedAt: ms(1500000000000)}
	with := func(f func(*viswals.User)) viswals.User { u := base; f(&u); return u }
	tests := []struct {
		name  string
		input string
		want  []viswals.User
		lines []int64
	}{
		{"plain", header + "1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1\n", []viswals.User{base}, []int64{2}},
		{"no final newline", header + "1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1", []viswals.User{base}, []int64{2}},
		{"empty nulls", header + "1,Ann,Lee,ann@example.com,1500000000000,,,\n", []viswals.User{base}, []int64{2}},
		{"BOM", "\xef\xbb\xbf" + header + "1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1\n", []viswals.User{base}, []int64{2}},
		{"CRLF", strings.ReplaceAll(header+"1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1\n2,Bo,Ek,bo@x.io,0,,,\n", "\n", "\r\n"),
			[]viswals.User{base, {ID: 2, FirstName: "Bo", LastName: "Ek", Email: "bo@x.io", CreatedAt: ms(0)}}, []int64{2, 3}},
		{"quoted comma", header + `1,Ann,"Smith, Jr.",ann@example.com,1500000000000,-1,-1,-1` + "\n",
			[]viswals.User{with(func(u *viswals.User) { u.LastName = "Smith, Jr." })}, []int64{2}},
		{"doubled quotes", header + `1,"Dwayne ""The Rock""",Lee,ann@example.com,1500000000000,-1,-1,-1` + "\n",
			[]viswals.User{with(func(u *viswals.User) { u.FirstName = `Dwayne "The Rock"` })}, []int64{2}},
		{"embedded newline keeps later line numbers", header +
			"1,\"Ann\nMarie\",Lee,ann@example.com,1500000000000,-1,-1,-1\n" +
			"2,Bo,\"Ek\r\n\r\nEk\",bo@x.io,0,,,\r\n" +
			"3,Cy,Do,cy@x.io,0,,,\n",
			[]viswals.User{
				with(func(u *viswals.User) { u.FirstName = "Ann\nMarie" }),
				{ID: 2, FirstName: "Bo", LastName: "Ek\n\nEk", Email: "bo@x.io", CreatedAt: ms(0)},
				{ID: 3, FirstName: "Cy", LastName: "Do", Email: "cy@x.io", CreatedAt: ms(0)},
			}, []int64{2, 4, 7}},
		{"blank lines are counted but skipped", header + "\n\n1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1\n\n", []viswals.User{base}, []int64{4}},
		{"times and parent", header + "1,Ann,Lee,ann@example.com,1500000000000,1600000000000,1700000000000,42\n",
			[]viswals.User{with(func(u *viswals.User) {
				u.DeletedAt, u.MergedAt, u.ParentUserID = tp(1600000000000), tp(1700000000000), ip(42)
			})}, []int64{2}},
		{"self parent and time zero", header + "7,Ann,Lee,ann@example.com,0,0,0,7\n",
			[]viswals.User{{ID: 7, FirstName: "Ann", LastName: "Lee", Email: "ann@example.com", CreatedAt: ms(0), DeletedAt: tp(0), MergedAt: tp(0), ParentUserID: ip(7)}}, []int64{2}},
		{"last millisecond of 9999", header + "1,Ann,Lee,ann@example.com,253402300799999,-1,-1,-1\n",
			[]viswals.User{with(func(u *viswals.User) { u.CreatedAt = ms(viswals.MaxUnixMilli) })}, []int64{2}},
		{"empty names", header + "1,,,ann@example.com,1500000000000,-1,-1,-1\n",
			[]viswals.User{with(func(u *viswals.User) { u.FirstName, u.LastName = "", "" })}, []int64{2}},
		{"unicode names", header + "1,Zoë,Øyvind-Ünal 李,josé@exämple.com,1500000000000,-1,-1,-1\n",
			[]viswals.User{with(func(u *viswals.User) {
				u.FirstName, u.LastName, u.Email = "Zoë", "Øyvind-Ünal 李", "josé@exämple.com"
			})}, []int64{2}},
		{"columns in another order, some absent, extra unknown",
			" Email_Address ,CREATED_AT,notes,id\n\"ann@example.com\",1500000000000,\"anything, here\",1\n",
			[]viswals.User{with(func(u *viswals.User) { u.FirstName, u.LastName = "", "" })}, []int64{2}},
		{"duplicate ids are both kept", header + "1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1\n1,Ann,Li,ann@example.com,1500000000000,-1,-1,-1\n",
			[]viswals.User{base, with(func(u *viswals.User) { u.LastName = "Li" })}, []int64{2, 3}},
		{"header only", header, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := readAll(t, tt.input)
			if len(rows) != len(tt.want) {
				t.Fatalf("got %d rows, want %d: %+v", len(rows), len(tt.want), rows)
			}
			for i, row := range rows {
				if row.Err != nil {
					t.Fatalf("row %d rejected: %v", i, row.Err)
				}
				if row.Fields != nil {
					t.Errorf("row %d: good row carries fields %q", i, row.Fields)
				}
				if !sameUser(row.Record.User, tt.want[i]) {
					t.Errorf("row %d:\n got %+v\nwant %+v", i, row.Record.User, tt.want[i])
				}
				if row.Line != tt.lines[i] || row.Record.Version != (viswals.Version{Line: tt.lines[i]}) {
					t.Errorf("row %d: line %d, version %+v, want line %d", i, row.Line, row.Record.Version, tt.lines[i])
				}
			}
		})
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		name, input, err string
	}{
		{"empty input", "", "empty input"},
		{"only a BOM", "\xef\xbb\xbf", "empty input"},
		{"missing id", "first_name,email_address,created_at\n", `required column "id" is missing`},
		{"missing email", "id,created_at\n", `required column "email_address" is missing`},
		{"missing created_at", "id,email_address\n", `required column "created_at" is missing`},
		{"duplicate column", "id,email_address,created_at,ID\n", `column "id" appears twice (columns 1 and 4)`},
		{"bad quote in header", "id,\"email_address,created_at\n", "reading header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := csvin.NewReader(strings.NewReader(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.err)
			}
		})
	}

	t.Run("kept as read", func(t *testing.T) {
		r, err := csvin.NewReader(strings.NewReader("\xef\xbb\xbf ID ,email_address,created_at,x,x\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(r.Header(), "|"); got != " ID |email_address|created_at|x|x" {
			t.Errorf("Header() = %q", got)
		}
	})
}

// A quote opened by mistake makes encoding/csv read on across lines; only
// the line that opened it is rejected and every line after it still counts.
func TestOpenQuote(t *testing.T) {
	good := func(id int) string { return fmt.Sprintf("%d,Bo,Ek,bo%d@x.io,0,,,\n", id, id) }
	tests := []struct {
		name    string
		limit   int
		input   string
		rejects map[int64]string // line -> substring of the reason
		goodIDs string
	}{
		{"closed later by another field's quote", 1 << 20,
			header + good(1) + "2,\"Ann,Lee,ann@x.io,0,,,\n" + good(3) + "4,\"Cy\",Do,cy@x.io,0,,,\n" + good(5),
			map[int64]string{3: "a quoted field starting on this line breaks on line 5"}, "1 3 4 5"},
		{"never closed", 1 << 20,
			header + good(1) + "2,\"Ann,Lee,ann@x.io,0,,,\n" + good(3) + good(4),
			map[int64]string{3: "a quoted field starting on this line breaks on line 5"}, "1 3 4"},
		{"never closed, CRLF", 1 << 20,
			strings.ReplaceAll(header+good(1)+"2,\"Ann,Lee,ann@x.io,0,,,\n"+good(3)+good(4), "\n", "\r\n"),
			map[int64]string{3: "a quoted field starting on this line"}, "1 3 4"},
		// The limit is checked when more input is needed, so it shows only
		// past the read-ahead (16 KiB) and one read (64 KiB): hence the
		// large inputs.
		{"longer than the limit", 100,
			header + good(1) + "2,\"Ann,Lee,ann@x.io,0,,,\n" + strings.Repeat(good(3), 10000) + good(4),
			map[int64]string{3: "record longer than 100 bytes"}, "1" + strings.Repeat(" 3", 10000) + " 4"},
		{"a single line longer than the limit", 100,
			header + good(1) + "2,Ann,Lee,ann@x.io,0,,," + strings.Repeat("x", 200000) + "\n" + good(3),
			map[int64]string{3: "record longer than 100 bytes"}, "1 3"},
		{"a bare quote in a line longer than the limit", 100,
			header + good(1) + "2,\"Ann\"x," + strings.Repeat("x", 200000) + "\n" + good(3) + good(4),
			map[int64]string{3: "record longer than 100 bytes"}, "1 3 4"},
		{"many blank lines are not a long record", 100,
			header + good(1) + strings.Repeat("\r\n", 100000) + good(2),
			nil, "1 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := csvin.NewReaderLimit(strings.NewReader(tt.input), tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			rejects, nrejects := map[int64]string{}, 0
			for _, row := range drain(t, r) {
				if row.Err != nil {
					rejects[row.Line] = row.Err.Error()
					nrejects++
					continue
				}
				ids = append(ids, row.Record.ID)
			}
			if got := strings.Trim(fmt.Sprint(ids), "[]"); got != tt.goodIDs {
				t.Errorf("good ids %.200s, want %.200s", got, tt.goodIDs)
			}
			if nrejects != len(tt.rejects) {
				t.Errorf("%d rejects (%.300s), want %d", nrejects, fmt.Sprint(rejects), len(tt.rejects))
			}
			for line, want := range tt.rejects {
				if !strings.Contains(rejects[line], want) {
					t.Errorf("reject of line %d: %.300q, want it to contain %q", line, rejects[line], want)
				}
			}
		})
	}
}

func TestLineNumbersAfterOpenQuote(t *testing.T) {
	input := header +
		"1,\"A\nB\",C,a@x.io,0,,,\n" + // lines 2-3
		"2,\"Ann,Lee,a@x.io,0,,,\n" + // line 4: the quote never closes
		"3,Bo,Ek,b@x.io,0,,,\n" + // line 5
		"4,\"C\nD\",E,c@x.io,0,,,\n" + // lines 6-7: its quote closes the one of line 4
		"5,Cy,Do,c@x.io,0,,,\n" // line 8
	var got []string
	for _, row := range readAll(t, input) {
		got = append(got, fmt.Sprintf("%d:%d:%t", row.Line, row.Record.ID, row.Err == nil))
	}
	// The field opened on line 4 runs to the quote of line 6 and breaks
	// there; cut back to line 4, reading resumes on line 5 and all after land.
	want := "[2:1:true 4:0:false 5:3:true 6:4:true 8:5:true]"
	if fmt.Sprint(got) != want {
		t.Errorf("rows %v, want %v", got, want)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	input := header + "1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1\n2,Bo"
	r, err := csvin.NewReader(io.MultiReader(strings.NewReader(input), iotest.ErrReader(boom)))
	if err != nil {
		t.Fatal(err)
	}
	if row, err := r.Next(); err != nil || row.Err != nil {
		t.Fatalf("first row: %+v, %v", row, err)
	}
	_, err = r.Next()
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("err = %v, want %v naming line 3", err, boom)
	}
}

func TestSmallReads(t *testing.T) {
	// One byte at a time, the BOM and every record boundary fall across reads.
	input := "\xef\xbb\xbf" + header + "1,\"A\r\nB\",C,a@x.io,0,,,\r\n2,\"Ann,Lee,a@x.io,0,,,\r\n3,Bo,Ek,b@x.io,0,,,\r\n"
	r, err := csvin.NewReaderLimit(iotest.OneByteReader(strings.NewReader(input)), 30)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, row := range drain(t, r) {
		got = append(got, fmt.Sprintf("%d:%d:%t", row.Line, row.Record.ID, row.Err == nil))
	}
	if want := "[2:1:true 4:0:false 5:3:true]"; fmt.Sprint(got) != want {
		t.Errorf("rows %v, want %v", got, want)
	}
}

func TestRejectWriter(t *testing.T) {
	input := header +
		"x,Ann,\"Smith, Jr.\",ann@example.com,1500000000000,-1,-1,-1\n" +
		"2,Bo,Ek,bo@x.io,0,,,\n" +
		"3,Ann \"A\",Lee,a@x.io,0,,,\n" +
		"4,Ann\n"
	r, err := csvin.NewReader(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rw := csvin.NewRejectWriter(&out, r.Header())
	for _, row := range drain(t, r) {
		if row.Err != nil {
			if err := rw.Write(row); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rw.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "line,reason,id,first_name,last_name,email_address,created_at,deleted_at,merged_at,parent_user_id\n" +
		"2,\"id: \"\"x\"\" is not an integer\",x,Ann,\"Smith, Jr.\",ann@example.com,1500000000000,-1,-1,-1\n" +
		"4,\"not valid CSV: bare \"\" in non-quoted-field (column 7)\",3,\"Ann \"\"A\"\"\",Lee,a@x.io,0,,,\n" +
		"5,\"expected 8 fields, got 2\",4,Ann\n"
	if out.String() != want {
		t.Errorf("rejects file:\n%s\nwant:\n%s", out.String(), want)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestRejectWriterError(t *testing.T) {
	boom := errors.New("disk full")
	rw := csvin.NewRejectWriter(failingWriter{boom}, []string{"id"})
	// Output is buffered: the error shows at the latest on Flush.
	err := rw.Write(csvin.Row{Line: 2, Err: errors.New("bad"), Fields: []string{"x"}})
	if err == nil {
		err = rw.Flush()
	}
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

// FuzzReader feeds arbitrary bytes after a valid header: the reader must
// never panic nor fail, every row must be good and valid or rejected with a
// reason, and lines must increase.
func FuzzReader(f *testing.F) {
	f.Add([]byte("1,Ann,Lee,ann@example.com,1500000000000,-1,-1,-1\n"))
	f.Add([]byte("1,\"A\nB\",\"Smith, Jr.\",a@x.io,0,,,7\r\n2,x\"y,,,,,,\n"))
	f.Add([]byte("2,\"Ann,Lee,a@x.io,0,,,\n3,Bo,Ek,b@x.io,0,,,\n"))
	f.Add([]byte("\n\n\r\n1,,,a@b,0,,,\n\"\"\"\n,,,,,,,\n"))
	f.Add([]byte("1,\xff,\x00,a@@b,-1,x,-2,0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		input := append([]byte(header), data...)
		// Where encoding/csv alone reads the input without error, the
		// Reader must see the same records on the same lines.
		var wantLines []int64
		cr := csv.NewReader(bytes.NewReader(input))
		cr.FieldsPerRecord = -1
		for {
			_, err := cr.Read()
			if err != nil {
				if err != io.EOF {
					wantLines = nil
				}
				break
			}
			l, _ := cr.FieldPos(0)
			wantLines = append(wantLines, int64(l))
		}
		if len(wantLines) > 0 {
			wantLines = wantLines[1:] // the header
		}

		for _, limit := range []int{1 << 20, 64} {
			r, err := csvin.NewReaderLimit(bytes.NewReader(input), limit)
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			last := int64(1)
			var lines []int64
			for n := 0; ; n++ {
				if n > len(data)+1 {
					t.Fatalf("more rows (%d) than input bytes (%d)", n, len(data))
				}
				row, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				if row.Line <= last {
					t.Fatalf("line %d after line %d", row.Line, last)
				}
				last = row.Line
				lines = append(lines, row.Line)
				if row.Err != nil {
					if row.Err.Error() == "" {
						t.Fatalf("line %d rejected without a reason", row.Line)
					}
					continue
				}
				if err := row.Record.Validate(); err != nil {
					t.Fatalf("line %d accepted but invalid: %v", row.Line, err)
				}
				if row.Record.Version.Line != row.Line {
					t.Fatalf("line %d has version line %d", row.Line, row.Record.Version.Line)
				}
			}
			if wantLines != nil && fmt.Sprint(lines) != fmt.Sprint(wantLines) {
				t.Fatalf("rows on lines %v, encoding/csv finds records on lines %v", lines, wantLines)
			}
		}
	})
}

// benchInput returns a realistic CSV of n rows.
func benchInput(n int) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	for i := 1; i <= n; i++ {
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "%d,Zoë,\"Smith, Jr.\",zoe.smith.%d@example.com,%d,%d,-1,-1\n", i, i, 1500000000000+i, 1600000000000+i)
		case 5:
			fmt.Fprintf(&b, "%d,José,García,jose.garcia.%d@example.com,%d,-1,%d,%d\n", i, i, 1500000000000+i, 1600000000000+i, i/2+1)
		default:
			fmt.Fprintf(&b, "%d,Ann,Lee,ann.lee.%d@example.com,%d,-1,-1,-1\n", i, i, 1500000000000+i)
		}
	}
	return b.Bytes()
}

func BenchmarkReader(b *testing.B) {
	const n = 100_000
	input := benchInput(n)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := csvin.NewReader(bytes.NewReader(input))
		if err != nil {
			b.Fatal(err)
		}
		rows := 0
		for {
			row, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil || row.Err != nil {
				b.Fatalf("row %d: %v %v", rows, err, row.Err)
			}
			rows++
		}
		if rows != n {
			b.Fatalf("read %d rows, want %d", rows, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func TestEveryLineOpensAQuote(t *testing.T) {
	var b strings.Builder
	b.WriteString(header)
	const n = 5000
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d,\"Ann,Lee,a%d@x.io,0,,,\n", i, i)
	}
	rows := readAll(t, b.String())
	if len(rows) != n {
		t.Fatalf("got %d rows, want %d", len(rows), n)
	}
	for i, row := range rows {
		if row.Err == nil || row.Line != int64(i+2) {
			t.Fatalf("row %d: line %d, err %v; want line %d rejected", i, row.Line, row.Err, i+2)
		}
	}
}
