package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/viswals/viswals"
)

// Get returns the user with id, or an ENOTFOUND error.
func (s *Store) Get(ctx context.Context, id int64) (viswals.SealedUser, error) {
	var u viswals.SealedUser
	err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", id), &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return viswals.SealedUser{}, viswals.Errorf(viswals.ENOTFOUND, "user %d not found", id)
	}
	if err != nil {
		return viswals.SealedUser{}, classify(fmt.Sprintf("get user %d", id), err)
	}
	return u, nil
}

// GetMany returns the stored users among ids, in id order; ids that are
// not stored are left out.
func (s *Store) GetMany(ctx context.Context, ids []int64) ([]viswals.SealedUser, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT "+userColumns+" FROM users WHERE id = ANY($1) ORDER BY id", ids)
	if err != nil {
		return nil, classify("get users", err)
	}
	defer rows.Close()
	users := make([]viswals.SealedUser, 0, len(ids))
	for rows.Next() {
		var u viswals.SealedUser
		if err := scanUser(rows, &u); err != nil {
			return nil, classify("get users", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("get users", err)
	}
	return users, nil
}

// List calls fn for each user with an id greater than afterID that matches
// f, in id order, at most limit users. Rows are streamed as they arrive,
// so memory does not grow with limit. An error from fn stops the walk and
// is returned as it is. The caller pages by passing the last id it got as
// the next afterID; fewer than limit calls means the walk is complete.
//
// Filters are case-insensitive prefixes (see Filter) combined with AND;
// every character in them is literal, '%', '_' and '\' included.
func (s *Store) List(ctx context.Context, f viswals.Filter, afterID int64, limit int, fn func(viswals.SealedUser) error) error {
	return s.list(ctx, f, afterID, limit, nil, fn)
}

// ListVisible is List restricted to the users whose last content change
// is visible in snap: the snapshot phase of a changefeed stream opened at
// snap. The others changed after snap was taken (or were in flight), and
// the live phase, reading Changes from viswals.Pos{Xid: snap.Xmin},
// delivers them.
func (s *Store) ListVisible(ctx context.Context, f viswals.Filter, afterID int64, limit int, snap viswals.Snapshot, fn func(viswals.SealedUser) error) error {
	return s.list(ctx, f, afterID, limit, &snap, fn)
}

func (s *Store) list(ctx context.Context, f viswals.Filter, afterID int64, limit int, snap *viswals.Snapshot, fn func(viswals.SealedUser) error) error {
	if limit < 1 {
		return invalidf("list users: limit must be >= 1, got %d", limit)
	}
	if err := f.Validate(); err != nil {
		return err
	}
	sql, args := listQuery(f, afterID, limit, snap)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return classify("list users", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u viswals.SealedUser
		if err := scanUser(rows, &u); err != nil {
			return classify("list users", err)
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return classify("list users", rows.Err())
}

// listQuery builds the page query from fixed fragments; the values are
// always parameters.
//
// A name filter is a prefix match (^@) on the folded column (viswals.Fold), which
// Postgres 15 turns into a range scan of the COLLATE "C" btree index when
// the prefix is known at planning time (hence plan_cache_mode =
// force_custom_plan). With a filter the ids of the page are found first,
// in a subquery that a rare prefix answers from the name index alone
// (an index-only scan of (name_lc, id), then a top-N sort) and a common
// prefix from the primary key in id order; only the page's rows are then
// read from the table. PLANS.md shows the plans on 10M rows.
func listQuery(f viswals.Filter, afterID int64, limit int, snap *viswals.Snapshot) (string, []any) {
	names, args := nameConditions(f, []any{afterID, limit})
	where := "id > $1" + names
	if snap != nil {
		args = append(args, snapshotText(*snap))
		where += fmt.Sprintf(" AND pg_visible_in_snapshot(changed_xid, $%d::text::pg_snapshot)", len(args))
	}
	if names == "" {
		return "SELECT " + userColumns + " FROM users WHERE " + where + " ORDER BY id LIMIT $2", args
	}
	return "SELECT " + userColumns + " FROM users WHERE id IN (SELECT id FROM users WHERE " + where +
		" ORDER BY id LIMIT $2) ORDER BY id", args
}

// nameConditions returns the conditions (" AND ...") for the name filters
// of f, and args with the folded prefixes appended as their parameters. A prefix match with ^@ has no wildcards: every character is
// literal.
func nameConditions(f viswals.Filter, args []any) (string, []any) {
	var conds string
	for _, c := range []struct{ column, prefix string }{
		{"first_name_lc", f.FirstName},
		{"last_name_lc", f.LastName},
	} {
		if c.prefix != "" {
			args = append(args, viswals.Fold(c.prefix))
			conds += fmt.Sprintf(" AND %s ^@ $%d", c.column, len(args))
		}
	}
	return conds, args
}

// CountVisible returns how many users ListVisible would call fn for from
// afterID on, with no limit: the size of a changefeed stream's snapshot
// phase, announced before it. A user changed while the snapshot is sent
// moves to the live phase, so the phase may send fewer.
func (s *Store) CountVisible(ctx context.Context, f viswals.Filter, afterID int64, snap viswals.Snapshot) (int64, error) {
	if err := f.Validate(); err != nil {
		return 0, err
	}
	names, args := nameConditions(f, []any{afterID, snapshotText(snap)})
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE id > $1 AND pg_visible_in_snapshot(changed_xid, $2::text::pg_snapshot)"+names, args...).Scan(&n)
	if err != nil {
		return 0, classify("count users", err)
	}
	return n, nil
}
