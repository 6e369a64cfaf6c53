package faults_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viswals/viswals/emailcrypt"
)

// readTable reads the whole users table, decrypting the emails.
func readTable(ctx context.Context, url string, ring *emailcrypt.Keyring) (map[int64]wantUser, error) {
	conn, err := pgConnect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT id, first_name, last_name, email_address, created_at, deleted_at, merged_at, parent_user_id FROM users`)
	if err != nil {
		return nil, err
	}
	got := make(map[int64]wantUser, 100_000)
	var (
		u               wantUser
		sealed          string
		created         time.Time
		deleted, merged *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&u.ID, &u.First, &u.Last, &sealed, &created, &deleted, &merged, &u.Parent}, func() error {
		if strings.Contains(sealed, "@") {
			return fmt.Errorf("user %d: email_address holds plaintext", u.ID)
		}
		email, err := ring.Decrypt(u.ID, sealed)
		if err != nil {
			return fmt.Errorf("user %d: decrypt email_address: %w", u.ID, err)
		}
		v := u
		v.Email = email
		v.Created = created.UnixMilli()
		v.Deleted, v.Merged = millis(deleted), millis(merged)
		if u.Parent != nil {
			p := *u.Parent
			v.Parent = &p
		}
		got[u.ID] = v
		return nil
	})
	return got, err
}

func millis(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	ms := t.UnixMilli()
	return &ms
}

// diffTable compares the table with the expected users and describes the
// differences (nil when there are none): counts of missing, unexpected and
// different users, and the first few of each.
func diffTable(want, got map[int64]wantUser) []string {
	var missing, extra, differ []int64
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			missing = append(missing, id)
		case !sameUser(w, g):
			differ = append(differ, id)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(extra)+len(differ) == 0 {
		return nil
	}
	slices.Sort(missing)
	slices.Sort(extra)
	slices.Sort(differ)
	out := []string{fmt.Sprintf("table has %d users, want %d: %d missing, %d unexpected, %d different", len(got), len(want), len(missing), len(extra), len(differ))}
	const show = 5
	for _, id := range missing[:min(show, len(missing))] {
		out = append(out, fmt.Sprintf("missing: %v", want[id]))
	}
	for _, id := range extra[:min(show, len(extra))] {
		out = append(out, fmt.Sprintf("unexpected: %v", got[id]))
	}
	for _, id := range differ[:min(show, len(differ))] {
		out = append(out, fmt.Sprintf("different:\n      got  %v\n      want %v", got[id], want[id]))
	}
	return out
}

func sameUser(a, b wantUser) bool {
	eq := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.ID == b.ID && a.First == b.First && a.Last == b.Last && a.Email == b.Email &&
		a.Created == b.Created && eq(a.Deleted, b.Deleted) && eq(a.Merged, b.Merged) && eq(a.Parent, b.Parent)
}
