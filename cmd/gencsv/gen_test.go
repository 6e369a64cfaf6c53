package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/csvin"
)

// loaded is what csvin makes of a generated file.
type loaded struct {
	rows, rejects int
	first, last   map[int64]viswals.User // first and last good row of each id
	rowsByID      map[int64]int
	reasons       []string
}

func load(t *testing.T, data []byte) loaded {
	t.Helper()
	r, err := csvin.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	l := loaded{first: map[int64]viswals.User{}, last: map[int64]viswals.User{}, rowsByID: map[int64]int{}}
	for {
		row, err := r.Next()
		if err == io.EOF {
			return l
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		l.rows++
		if row.Err != nil {
			l.rejects++
			l.reasons = append(l.reasons, row.Err.Error())
			continue
		}
		u := row.Record.User
		if _, ok := l.first[u.ID]; !ok {
			l.first[u.ID] = u
		}
		l.last[u.ID] = u
		l.rowsByID[u.ID]++
	}
}

func gen(t *testing.T, cfg config) ([]byte, stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := generate(context.Background(), &buf, cfg)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return buf.Bytes(), st
}

func TestClean(t *testing.T) {
	data, st := gen(t, config{Rows: 5000, Seed: 3})
	if st != (stats{Rows: 5000, Users: 5000}) {
		t.Fatalf("stats %+v", st)
	}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) || bytes.Contains(data, []byte("\r\n")) {
		t.Error("a clean file has no BOM and LF line ends")
	}
	l := load(t, data)
	if l.rows != 5000 || l.rejects != 0 || len(l.first) != 5000 {
		t.Fatalf("read %d rows, %d rejected (%q), %d ids", l.rows, l.rejects, l.reasons[:min(len(l.reasons), 5)], len(l.first))
	}
	for id := int64(1); id <= 5000; id++ {
		if l.rowsByID[id] != 1 {
			t.Fatalf("id %d appears %d times", id, l.rowsByID[id])
		}
	}
	// Every kind of valid row gen makes shows in a file this size.
	var comma, quote, unicode, deleted, merged, selfOrLater bool
	for id, u := range l.first {
		comma = comma || strings.Contains(u.LastName, ",")
		quote = quote || strings.Contains(u.FirstName, `"`)
		unicode = unicode || u.FirstName == "Zoë" || u.LastName == "陈"
		deleted = deleted || u.DeletedAt != nil
		merged = merged || u.MergedAt != nil && u.ParentUserID != nil
		selfOrLater = selfOrLater || u.ParentUserID != nil && *u.ParentUserID >= id
	}
	if !(comma && quote && unicode && deleted && merged && selfOrLater) {
		t.Errorf("missing variety: comma %t quote %t unicode %t deleted %t merged %t parent>=self %t",
			comma, quote, unicode, deleted, merged, selfOrLater)
	}
	if !bytes.Contains(data, []byte(",,\n")) || !bytes.Contains(data, []byte(",-1\n")) {
		t.Error("nulls should be spelled both -1 and empty")
	}
}

func TestDirty(t *testing.T) {
	data, st := gen(t, config{Rows: 20000, Dirty: true, Seed: 5})
	if !bytes.HasPrefix(data, []byte("\xef\xbb\xbfid,")) || bytes.Count(data, []byte("\r\n")) < st.Rows {
		t.Error("a dirty file starts with a BOM and has CRLF line ends")
	}
	if st.Rows != 20000 || st.Bad < len(badKinds) || st.Duplicates == 0 || st.Users != st.Rows-st.Bad-st.Duplicates {
		t.Fatalf("stats %+v", st)
	}
	l := load(t, data)
	if l.rows != st.Rows || l.rejects != st.Bad {
		t.Fatalf("read %d rows, %d rejected; generator says %+v", l.rows, l.rejects, st)
	}
	if len(l.first) != st.Users {
		t.Fatalf("%d distinct ids, want %d", len(l.first), st.Users)
	}
	dups, changed := 0, 0
	for id := int64(1); id <= int64(st.Users); id++ {
		n := l.rowsByID[id]
		if n == 0 {
			t.Fatalf("id %d missing: ids must run 1..%d", id, st.Users)
		}
		dups += n - 1
		if n > 1 && !sameUser(l.first[id], l.last[id]) {
			changed++
		}
	}
	if dups != st.Duplicates {
		t.Errorf("%d duplicate rows, generator says %d", dups, st.Duplicates)
	}
	// A later duplicate may happen to undo an earlier change, so not all.
	if changed < dups*3/4 {
		t.Errorf("only %d of %d duplicated ids end up changed", changed, dups)
	}
}

func sameUser(a, b viswals.User) bool {
	return a.FirstName == b.FirstName && a.LastName == b.LastName && a.Email == b.Email &&
		(a.DeletedAt == nil) == (b.DeletedAt == nil)
}

// Every kind of bad row is rejected by csvin on its own, and for the
// reason it is meant to show.
func TestBadKinds(t *testing.T) {
	reasons := map[string]string{
		"too few fields":               "expected 8 fields, got 5",
		"too many fields":              "expected 8 fields, got 9",
		"non-numeric id":               "id: \"ID-",
		"id zero":                      "id: \"0\" must be >= 1",
		"negative id":                  "must be >= 1",
		"id with spaces":               "is not an integer",
		"non-numeric created_at":       "created_at: \"2019-05-04T10:00:00Z\" is not an integer",
		"negative created_at":          "created_at: \"-86400000\" must be >= 0",
		"missing created_at":           "created_at is required",
		"created_at after year 9999":   "created_at must be between 1970 and 9999",
		"missing email":                "email_address is required",
		"email without @":              "email_address must have one '@'",
		"email with two @":             "email_address must have one '@'",
		"email without local part":     "email_address must have one '@'",
		"email without domain":         "email_address must have one '@'",
		"non-numeric deleted_at":       "deleted_at: \"yesterday\" is not an integer",
		"negative merged_at":           "merged_at: \"-2\" must be >= 0",
		"parent_user_id zero":          "parent_user_id: \"0\" must be >= 1",
		"non-numeric parent_user_id":   "parent_user_id: \"none\" is not an integer",
		"invalid UTF-8 (Latin-1 name)": "first_name is not valid UTF-8",
		"NUL byte":                     "last_name contains a NUL byte",
		"bare quote":                   "not valid CSV: bare \"",
	}
	g := newGenerator(config{Rows: 100, Seed: 1})
	for _, kind := range badKinds {
		t.Run(kind.name, func(t *testing.T) {
			want, ok := reasons[kind.name]
			if !ok {
				t.Fatalf("no expected reason for kind %q", kind.name)
			}
			// A user whose last name needs quoting, to show that spoiling
			// keeps the other fields whole.
			u := g.user(7)
			u.last = name{"Smith, Jr.", "smith"}
			line := appendRaw(nil, kind.spoil(g.fields(u)))
			l := load(t, []byte(header+"\n"+string(line)+"\n"))
			if l.rows != 1 || l.rejects != 1 {
				t.Fatalf("%q: %d rows, %d rejected", line, l.rows, l.rejects)
			}
			if !strings.Contains(l.reasons[0], want) {
				t.Errorf("%q rejected for %q, want %q", line, l.reasons[0], want)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	a, _ := gen(t, config{Rows: 3000, Dirty: true, Seed: 9})
	b, _ := gen(t, config{Rows: 3000, Dirty: true, Seed: 9})
	c, _ := gen(t, config{Rows: 3000, Dirty: true, Seed: 10})
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different files")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same file")
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := generate(ctx, io.Discard, config{Rows: 10}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestRun(t *testing.T) {
	noenv := func(string) string { return "" }

	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "users.csv")
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"-rows", "50", "-dirty", "-seed", "4", "-o", path}, noenv, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, st := gen(t, config{Rows: 50, Dirty: true, Seed: 4})
		if !bytes.Equal(data, want) || stdout.Len() != 0 {
			t.Error("the file differs from generate's output, or something went to stdout")
		}
		if !strings.HasPrefix(stderr.String(), fmt.Sprintf("rows=50 bad=%d duplicates=%d users=", st.Bad, st.Duplicates)) {
			t.Errorf("summary %q", stderr.String())
		}
	})

	t.Run("stdout", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"-rows", "3"}, noenv, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(stdout.String(), "\n"); n != 4 {
			t.Errorf("%d lines on stdout, want header and 3 rows", n)
		}
		if stderr.String() != "rows=3 bad=0 duplicates=0 users=3\n" {
			t.Errorf("summary %q", stderr.String())
		}
	})

	for _, args := range [][]string{{"-rows", "x"}, {"-rows", "-1"}, {"-nope"}, {"extra"}} {
		var stderr bytes.Buffer
		err := run(context.Background(), args, noenv, io.Discard, &stderr)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(stderr.String(), "usage: gencsv") {
			t.Errorf("%q: err %v, stderr %q; want a usage error", args, err, stderr.String())
		}
	}

	if err := run(context.Background(), []string{"-o", filepath.Join(t.TempDir(), "no", "such", "dir.csv")}, noenv, io.Discard, io.Discard); err == nil {
		t.Error("writing into a missing directory should fail")
	}
}

func BenchmarkGenerate(b *testing.B) {
	const rows = 100_000
	for b.Loop() {
		if _, err := generate(context.Background(), io.Discard, config{Rows: rows, Dirty: true, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// The bundled sample is this generator's output; regenerate it with the
// command in data/README.md when the generator changes.
func TestSampleFile(t *testing.T) {
	data, err := os.ReadFile("../../data/users.csv")
	if err != nil {
		t.Fatal(err)
	}
	want, st := gen(t, config{Rows: 1000, Dirty: true, Seed: 1})
	if !bytes.Equal(data, want) {
		t.Fatal("data/users.csv is not the output of gencsv -rows 1000 -dirty -seed 1; regenerate it (see data/README.md)")
	}
	if st != (stats{Rows: 1000, Bad: 23, Duplicates: 16, Users: 961}) {
		t.Fatalf("stats %+v differ from those data/README.md gives", st)
	}
}
