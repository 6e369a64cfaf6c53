package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
)

// config says what to generate.
type config struct {
	Rows  int    // data rows to write, header excluded
	Dirty bool   // add bad rows, duplicate ids, a BOM and CRLF line ends
	Seed  uint64 // same seed, same bytes
}

// stats counts what was generated, so a test or a harness knows what a
// correct load of the file gives.
type stats struct {
	Rows       int // data rows written
	Bad        int // rows a reader must reject
	Duplicates int // good rows repeating an earlier id: they update it
	Users      int // distinct ids among the good rows (1..Users)
}

// In a dirty file, the share of rows that are bad and of rows that repeat
// an earlier id.
const (
	badRate = 0.02
	dupRate = 0.02
)

const header = "id,first_name,last_name,email_address,created_at,deleted_at,merged_at,parent_user_id"

// Times are drawn from 2015-01-01 to 2025-12-31, in unix milliseconds.
const (
	minTime int64 = 1420070400000
	endTime int64 = 1767225600000
)

// name is a name as shown and as it goes into an email address.
type name struct{ text, ascii string }

var firstNames = []name{
	{"Ann", "ann"}, {"Zoë", "zoe"}, {"José", "jose"}, {"Øyvind", "oyvind"}, {"Ünal", "unal"},
	{"Olivia", "olivia"}, {"Liam", "liam"}, {"Emma", "emma"}, {"Noah", "noah"}, {"Mary-Jane", "mary-jane"},
	{"Chloé", "chloe"}, {"Björn", "bjorn"}, {"Siobhán", "siobhan"}, {"François", "francois"},
	{"Łukasz", "lukasz"}, {"Mohammed", "mohammed"}, {"Wei", "wei"}, {"Aiko", "aiko"}, {"Sofía", "sofia"},
	{"Mateo", "mateo"}, {"Ingrid", "ingrid"}, {"Dmitri", "dmitri"}, {"Priya", "priya"}, {"Kwame", "kwame"},
	{"Zoltán", "zoltan"}, {"Renée", "renee"}, {"Jürgen", "jurgen"}, {"Ana María", "anamaria"},
	{"伟", "wei"}, {`Dwayne "The Rock"`, "dwayne"}, {"Lucas", "lucas"}, {"Ava", "ava"},
}

var lastNames = []name{
	{"Smith", "smith"}, {"Smith, Jr.", "smith"}, {"O'Brien", "obrien"}, {"García", "garcia"},
	{"Müller", "muller"}, {"Nguyễn", "nguyen"}, {"Østergård", "ostergard"}, {"Öztürk", "ozturk"},
	{"Kowalski", "kowalski"}, {"Johnson", "johnson"}, {"Brown", "brown"}, {"Williams", "williams"},
	{"Dubois", "dubois"}, {"Rossi", "rossi"}, {"Yılmaz", "yilmaz"}, {"Ivanova", "ivanova"},
	{"Sato", "sato"}, {"陈", "chen"}, {"van der Berg", "vanderberg"}, {"Díaz, PhD", "diaz"},
	{"Anderson", "anderson"}, {"Taylor", "taylor"}, {"Okafor", "okafor"}, {"Schmidt", "schmidt"},
}

// user is one generated user; the nullable fields hold -1 for null.
type user struct {
	id                      int64
	first, last             name
	email                   string
	created                 int64
	deleted, merged, parent int64
	emptyNull               bool // spell null as "" rather than "-1"
}

// generator writes a CSV export. A user is drawn from a generator seeded by
// (seed, id) alone, so a later duplicate row can rebuild the user it
// updates without keeping any users in memory.
type generator struct {
	cfg   config
	rows  *rand.Rand // decides what each row is
	pcg   *rand.PCG  // reseeded for each user
	users *rand.Rand // draws from pcg
	st    stats
	line  []byte
}

func newGenerator(cfg config) *generator {
	// The row stream and the user streams use different PCG sequences of
	// the one seed, so they do not repeat each other.
	g := &generator{cfg: cfg, rows: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)), pcg: rand.NewPCG(0, 0)}
	g.users = rand.New(g.pcg)
	return g
}

// generate writes cfg.Rows rows of CSV to w, streaming, and returns what it
// wrote.
func generate(ctx context.Context, w io.Writer, cfg config) (stats, error) {
	g := newGenerator(cfg)
	bw := bufio.NewWriterSize(w, 256<<10)
	eol := "\n"
	if cfg.Dirty {
		eol = "\r\n"
		bw.WriteString("\xef\xbb\xbf")
	}
	bw.WriteString(header + eol)
	for i := range cfg.Rows {
		if i%65536 == 0 && ctx.Err() != nil {
			return g.st, ctx.Err()
		}
		g.line = append(g.nextRow(g.line[:0]), eol...)
		if _, err := bw.Write(g.line); err != nil {
			return g.st, fmt.Errorf("writing row %d: %w", i+1, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return g.st, fmt.Errorf("writing: %w", err)
	}
	return g.st, nil
}

// nextRow appends the next data row, without its line end, to b.
func (g *generator) nextRow(b []byte) []byte {
	g.st.Rows++
	switch {
	case g.cfg.Dirty && g.rows.Float64() < badRate:
		// Cycle through the kinds so that every kind shows in a small file.
		kind := badKinds[g.st.Bad%len(badKinds)]
		g.st.Bad++
		// The id is the one the next new user gets: the rejected row must
		// not make a user, whatever it holds.
		fields := g.fields(g.user(int64(g.st.Users + 1)))
		return appendRaw(b, kind.spoil(fields))
	case g.cfg.Dirty && g.st.Users > 0 && g.rows.Float64() < dupRate:
		g.st.Duplicates++
		u := g.user(1 + g.rows.Int64N(int64(g.st.Users)))
		g.change(&u)
		return g.appendUser(b, u)
	default:
		g.st.Users++
		return g.appendUser(b, g.user(int64(g.st.Users)))
	}
}

// user draws the user with the given id; the same id gives the same user.
func (g *generator) user(id int64) user {
	g.pcg.Seed(g.cfg.Seed, uint64(id))
	r := g.users
	u := user{
		id:        id,
		first:     firstNames[r.IntN(len(firstNames))],
		last:      lastNames[r.IntN(len(lastNames))],
		created:   minTime + r.Int64N(endTime-minTime),
		deleted:   -1,
		merged:    -1,
		parent:    -1,
		emptyNull: r.IntN(4) == 0,
	}
	u.email = u.first.ascii + "." + u.last.ascii + "." + strconv.FormatInt(id, 10) + "@example.com"
	if r.IntN(200) == 0 {
		u.last = name{} // names may be empty
	}
	if r.IntN(10) == 0 {
		u.deleted = u.created + r.Int64N(endTime-u.created)
	}
	if r.IntN(20) == 0 {
		u.merged = u.created + r.Int64N(endTime-u.created)
		// Any id of the file: itself now and then, often one not loaded yet.
		u.parent = 1 + r.Int64N(int64(max(g.cfg.Rows, 1)))
	}
	return u
}

// change makes a later version of u, as a second export row would.
func (g *generator) change(u *user) {
	switch g.rows.IntN(3) {
	case 0: // a new last name
		i := indexOf(lastNames, u.last)
		u.last = lastNames[(i+1+g.rows.IntN(len(lastNames)-1))%len(lastNames)]
	case 1: // a new email
		u.email = strings.Replace(u.email, "@example.com", "@example.org", 1)
	default: // deleted, or undeleted
		if u.deleted < 0 {
			u.deleted = u.created + g.rows.Int64N(endTime-u.created)
		} else {
			u.deleted = -1
		}
	}
}

func indexOf(names []name, n name) int {
	for i, m := range names {
		if m == n {
			return i
		}
	}
	return -1
}

// appendUser appends u as one CSV row. It appends rather than builds
// strings because it runs for every row of files of millions.
func (g *generator) appendUser(b []byte, u user) []byte {
	b = strconv.AppendInt(b, u.id, 10)
	b = append(b, ',')
	b = appendField(b, u.first.text)
	b = append(b, ',')
	b = appendField(b, u.last.text)
	b = append(b, ',')
	b = appendField(b, u.email)
	b = append(b, ',')
	b = strconv.AppendInt(b, u.created, 10)
	for _, v := range []int64{u.deleted, u.merged, u.parent} {
		b = append(b, ',')
		b = appendNullable(b, v, u.emptyNull)
	}
	return b
}

// fields returns u's row as CSV field texts (quoted where needed), for the
// bad-row kinds to spoil.
func (g *generator) fields(u user) []string {
	f := make([]string, colParent+1)
	f[colID] = strconv.FormatInt(u.id, 10)
	f[colFirst] = string(appendField(nil, u.first.text))
	f[colLast] = string(appendField(nil, u.last.text))
	f[colEmail] = string(appendField(nil, u.email))
	f[colCreated] = strconv.FormatInt(u.created, 10)
	f[colDeleted] = string(appendNullable(nil, u.deleted, u.emptyNull))
	f[colMerged] = string(appendNullable(nil, u.merged, u.emptyNull))
	f[colParent] = string(appendNullable(nil, u.parent, u.emptyNull))
	return f
}

// appendNullable appends v, or null (v < 0) spelled "-1" or "".
func appendNullable(b []byte, v int64, emptyNull bool) []byte {
	switch {
	case v >= 0:
		return strconv.AppendInt(b, v, 10)
	case emptyNull:
		return b
	default:
		return append(b, "-1"...)
	}
}

// appendField appends s as a CSV field, quoted when it must be.
func appendField(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return append(b, s...)
	}
	b = append(b, '"')
	b = append(b, strings.ReplaceAll(s, `"`, `""`)...)
	return append(b, '"')
}

// appendRaw appends field texts joined by commas, unquoted: a bad row's
// fields are written exactly as its kind made them.
func appendRaw(b []byte, fields []string) []byte {
	return append(b, strings.Join(fields, ",")...)
}

// Field positions in a generated row.
const (
	colID = iota
	colFirst
	colLast
	colEmail
	colCreated
	colDeleted
	colMerged
	colParent
)

// badKinds are the ways a dirty file's bad rows are bad: a wrong field
// count, and each rule of each column (csvin and viswals.User.Validate).
// Each spoils a good row.
var badKinds = []struct {
	name  string
	spoil func(f []string) []string
}{
	{"too few fields", func(f []string) []string { return f[:colDeleted] }},
	{"too many fields", func(f []string) []string { return append(f, "extra") }},
	{"non-numeric id", func(f []string) []string { f[colID] = "ID-" + f[colID]; return f }},
	{"id zero", func(f []string) []string { f[colID] = "0"; return f }},
	{"negative id", func(f []string) []string { f[colID] = "-" + f[colID]; return f }},
	{"id with spaces", func(f []string) []string { f[colID] = " " + f[colID]; return f }},
	{"non-numeric created_at", func(f []string) []string { f[colCreated] = "2019-05-04T10:00:00Z"; return f }},
	{"negative created_at", func(f []string) []string { f[colCreated] = "-86400000"; return f }},
	{"missing created_at", func(f []string) []string { f[colCreated] = ""; return f }},
	{"created_at after year 9999", func(f []string) []string { f[colCreated] = "99999999999999999"; return f }},
	{"missing email", func(f []string) []string { f[colEmail] = ""; return f }},
	{"email without @", func(f []string) []string { f[colEmail] = strings.Replace(f[colEmail], "@", ".at.", 1); return f }},
	{"email with two @", func(f []string) []string { f[colEmail] = strings.Replace(f[colEmail], "@", "@@", 1); return f }},
	{"email without local part", func(f []string) []string { f[colEmail] = "@example.com"; return f }},
	{"email without domain", func(f []string) []string { f[colEmail] = f[colEmail][:strings.IndexByte(f[colEmail], '@')+1]; return f }},
	{"non-numeric deleted_at", func(f []string) []string { f[colDeleted] = "yesterday"; return f }},
	{"negative merged_at", func(f []string) []string { f[colMerged] = "-2"; return f }},
	{"parent_user_id zero", func(f []string) []string { f[colParent] = "0"; return f }},
	{"non-numeric parent_user_id", func(f []string) []string { f[colParent] = "none"; return f }},
	{"invalid UTF-8 (Latin-1 name)", func(f []string) []string { f[colFirst] = "Zo\xeb"; return f }},
	{"NUL byte", func(f []string) []string { f[colLast] = "Smith\x00"; return f }},
	{"bare quote", func(f []string) []string { f[colFirst] = `Dwayne "The Rock"`; return f }},
}
