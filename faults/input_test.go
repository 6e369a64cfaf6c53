package faults_test

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// wantUser is a user as the table must hold it: times in unix
// milliseconds, nil for null.
type wantUser struct {
	ID              int64
	First, Last     string
	Email           string
	Created         int64
	Deleted, Merged *int64
	Parent          *int64
}

func (u wantUser) String() string {
	opt := func(p *int64) string {
		if p == nil {
			return "null"
		}
		return strconv.FormatInt(*p, 10)
	}
	return fmt.Sprintf("{id=%d first=%q last=%q email=%q created=%d deleted=%s merged=%s parent=%s}",
		u.ID, u.First, u.Last, u.Email, u.Created, opt(u.Deleted), opt(u.Merged), opt(u.Parent))
}

// input is a generated CSV export and what a correct load makes of it.
type input struct {
	path     string
	size     int64
	rows     int                // data rows (the header excluded)
	rejected int                // rows the producer must reject
	want     map[int64]wantUser // the valid rows, the later row winning per id
	// stable are ids that occur in one row only: their final value is
	// stored by the first write.
	stable []int64
}

// published is how many rows the producer must publish.
func (in *input) published() int { return in.rows - in.rejected }

// Names with what real exports carry: commas and quotes (quoted fields),
// accents and other scripts, apostrophes, empty names.
var (
	firstNames = []string{"Ada", "Zoë", "José", "Wei", "Ólafur", "Renée", "李", "Мария", "Siobhán", "Nguyễn", "O'Neil", "Jean-Luc", "", "Anne \"Nan\"", "Ren, Jr."}
	lastNames  = []string{"Lovelace", "Smith, Jr.", "O'Brien", "Müller", "Dvořák", "García", "王", "Иванова", "d'Artagnan", "\"Quoted\"", "", "van der Berg", "Nakamura", "Ng"}
)

// generateInput writes a CSV export of rows data rows to path: a BOM, CRLF
// line ends, a header with the columns in an unusual order, nulls written
// as -1 and as empty, parents that point at themselves or at ids not
// loaded, names with commas, quotes and (rarely) line breaks, about 3%
// duplicate ids with new content (the later row must win) and about 2% bad
// rows of the kinds badRow makes. The same seed gives the same file.
func generateInput(path string, rows int, seed uint64) (*input, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<16)
	bw.WriteString("\xef\xbb\xbf")
	w := csv.NewWriter(bw)
	w.UseCRLF = true
	header := []string{"id", "email_address", "first_name", "last_name", "created_at", "deleted_at", "merged_at", "parent_user_id"}
	if err := w.Write(header); err != nil {
		return nil, err
	}

	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	in := &input{path: path, rows: rows, want: make(map[int64]wantUser, rows)}
	seen := make(map[int64]int, rows) // id → valid rows with it
	var ids []int64                   // ids of valid rows so far, for duplicates
	nextID := int64(1)
	nullable := func(p *int64) string {
		if p != nil {
			return strconv.FormatInt(*p, 10)
		}
		if rng.IntN(3) == 0 {
			return "-1"
		}
		return ""
	}
	optTime := func(percent int) *int64 {
		if rng.IntN(100) >= percent {
			return nil
		}
		v := rng.Int64N(1_900_000_000_000)
		return &v
	}

	for line := 1; line <= rows; line++ {
		if rng.IntN(100) < 2 {
			in.rejected++
			if err := w.Write(badRow(rng, nextID+int64(rng.IntN(1000)))); err != nil {
				return nil, err
			}
			continue
		}
		var u wantUser
		if len(ids) > 0 && rng.IntN(100) < 3 {
			u.ID = ids[rng.IntN(len(ids))]
		} else {
			u.ID = nextID
			nextID++
			ids = append(ids, u.ID)
		}
		u.First = firstNames[rng.IntN(len(firstNames))]
		u.Last = lastNames[rng.IntN(len(lastNames))]
		if rng.IntN(5000) == 0 {
			u.Last += "\nsecond line"
		}
		u.Email = fmt.Sprintf("user.%d.%d@example.com", u.ID, line)
		if rng.IntN(50) == 0 {
			u.Email = fmt.Sprintf("zoë+%d@exämple.org", line)
		}
		u.Created = rng.Int64N(1_900_000_000_000)
		if rng.IntN(1000) == 0 {
			u.Created = 0
		}
		u.Deleted, u.Merged = optTime(20), optTime(10)
		switch r := rng.IntN(10); {
		case r < 2:
			p := rng.Int64N(int64(rows)*3/2) + 1 // may be unknown, or not loaded yet
			u.Parent = &p
		case r < 3:
			p := u.ID
			u.Parent = &p
		}
		rec := []string{strconv.FormatInt(u.ID, 10), u.Email, u.First, u.Last,
			strconv.FormatInt(u.Created, 10), nullable(u.Deleted), nullable(u.Merged), nullable(u.Parent)}
		if err := w.Write(rec); err != nil {
			return nil, err
		}
		in.want[u.ID] = u
		seen[u.ID]++
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	in.size = st.Size()
	for _, id := range ids {
		if seen[id] == 1 {
			in.stable = append(in.stable, id)
		}
	}
	return in, f.Close()
}

// badRow returns a row the producer must reject, with one fault picked at
// random: a bad id, email or timestamp, or too few or too many fields.
func badRow(rng *rand.Rand, id int64) []string {
	good := []string{strconv.FormatInt(id, 10), fmt.Sprintf("bad.%d@example.com", id), "Bad", "Row", "1700000000000", "", "", ""}
	switch rng.IntN(11) {
	case 0:
		good[0] = "abc"
	case 1:
		good[0] = "0"
	case 2:
		good[0] = "-7"
	case 3:
		good[1] = ""
	case 4:
		good[1] = "no-at-sign.example.com"
	case 5:
		good[1] = "two@at@example.com"
	case 6:
		good[4] = "yesterday"
	case 7:
		good[4] = ""
	case 8:
		good[5] = "soon"
	case 9:
		return good[:5] // too few fields
	default:
		return append(good, "extra") // too many fields
	}
	return good
}

// String summarises the input for logs.
func (in *input) String() string {
	return fmt.Sprintf("%s: %d rows, %d rejected, %d users, %.1f MB", in.path, in.rows, in.rejected, len(in.want), float64(in.size)/1e6)
}

// wantWith returns the expected table: the input's users plus extra.
func (in *input) wantWith(extra map[int64]wantUser) map[int64]wantUser {
	want := make(map[int64]wantUser, len(in.want)+len(extra))
	for id, u := range in.want {
		want[id] = u
	}
	for id, u := range extra {
		want[id] = u
	}
	return want
}

// summary parses the producer's final summary line: read, published,
// rejected.
func summary(stdout string) (read, published, rejected int, ok bool) {
	for _, line := range strings.Split(stdout, "\n") {
		if !strings.HasPrefix(line, "read=") {
			continue
		}
		_, err := fmt.Sscanf(line, "read=%d published=%d rejected=%d", &read, &published, &rejected)
		return read, published, rejected, err == nil
	}
	return 0, 0, 0, false
}
