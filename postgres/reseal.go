package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SealedEmail is one row's sealed email, as rekeying reads it.
type SealedEmail struct {
	ID     int64
	Sealed string
}

// Reseal is a new sealing of one row's email: it applies only while the
// row still holds Old.
type Reseal struct {
	ID   int64
	Old  string
	New  string
	Hash []byte // the email's hash under the new primary key
}

// SealedEmails returns up to limit rows with id > afterID, in id order:
// the keyset walk of a rekey.
func (s *Store) SealedEmails(ctx context.Context, afterID int64, limit int) ([]SealedEmail, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, email_address FROM users WHERE id > $1 ORDER BY id LIMIT $2", afterID, limit)
	if err != nil {
		return nil, classify("read sealed emails", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SealedEmail])
	if err != nil {
		return nil, classify("read sealed emails", err)
	}
	return out, nil
}

// resealSQL rewrites each email only where the row still holds the
// sealing it was read with: a write that landed since (a newer load,
// sealed with the primary key already) is never overwritten with stale
// data. The version and changefeed position stay: the content is the
// same email.
const resealSQL = `UPDATE users AS u SET email_address = v.new, email_hash = v.hash
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[]) AS v(id, old, new, hash)
WHERE u.id = v.id AND u.email_address = v.old
RETURNING u.id`

// Reseal applies the new sealings in one transaction and returns the ids
// it rewrote; the others changed since they were read.
func (s *Store) Reseal(ctx context.Context, batch []Reseal) ([]int64, error) {
	ids := make([]int64, len(batch))
	olds := make([]string, len(batch))
	news := make([]string, len(batch))
	hashes := make([][]byte, len(batch))
	for i, r := range batch {
		ids[i], olds[i], news[i], hashes[i] = r.ID, r.Old, r.New, r.Hash
	}
	rows, err := s.pool.Query(ctx, resealSQL, ids, olds, news, hashes)
	if err != nil {
		return nil, classify("reseal emails", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, classify("reseal emails", err)
	}
	return done, nil
}

// CountRows returns the number of users, for a progress bar.
func (s *Store) CountRows(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		return 0, classify("count users", err)
	}
	return n, nil
}
