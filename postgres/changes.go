package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/viswals/viswals"
)

// The changefeed. Every write that changes a user's content stamps the row
// with its transaction id (changed_xid), so (changed_xid, id) orders the
// changes. Transaction ids are assigned when a transaction starts writing
// but become visible when it commits, which can be in another order: a
// reader that just took the greatest position seen so far would skip a
// slow transaction that committed late with a smaller id. Changes therefore
// only returns positions below the snapshot's xmin, the oldest transaction
// still running: everything below it has committed (or aborted) and is
// visible, and no later commit can land there.
//
// A stream reads a snapshot phase then a live phase:
//
//	snap := CurrentSnapshot()
//	ListVisible(..., snap, ...) page by page      // the users as of snap
//	pos := viswals.Pos{Xid: snap.Xmin}
//	loop: Changes(..., pos, ...) skipping positions snap.Visible(pos.Xid),
//	      which the snapshot phase already had; pos = the last position
//
// A resumed stream continues from its last position. Positions are the
// same in every process, so any API process can resume any stream.
//
// The price: the horizon is the oldest transaction running on the whole
// server, so a long writing transaction anywhere (a session left idle in a
// transaction, say) delays the live phase until it ends. The consumer's
// transactions last one batch; on a shared server set
// idle_in_transaction_session_timeout.

// snapshotText formats s as Postgres does: "xmin:xmax:xip1,xip2".
func snapshotText(s viswals.Snapshot) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(s.Xmin, 10))
	b.WriteByte(':')
	b.WriteString(strconv.FormatUint(s.Xmax, 10))
	b.WriteByte(':')
	for i, x := range s.Xip {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(x, 10))
	}
	return b.String()
}

// parseSnapshot parses the text form of a pg_snapshot. It checks the
// invariants viswals.Snapshot promises (Xip sorted, within [Xmin, Xmax)).
func parseSnapshot(text string) (viswals.Snapshot, error) {
	bad := func(why string) (viswals.Snapshot, error) {
		return viswals.Snapshot{}, invalidf("snapshot %q: %s", text, why)
	}
	parts := strings.Split(text, ":")
	if len(parts) != 3 {
		return bad("want xmin:xmax:xip")
	}
	var s viswals.Snapshot
	var err error
	if s.Xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil || s.Xmin == 0 {
		return bad("bad xmin")
	}
	if s.Xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil || s.Xmax < s.Xmin {
		return bad("bad xmax")
	}
	if parts[2] == "" {
		return s, nil
	}
	for _, f := range strings.Split(parts[2], ",") {
		x, err := strconv.ParseUint(f, 10, 64)
		if err != nil || x < s.Xmin || x >= s.Xmax || (len(s.Xip) > 0 && x <= s.Xip[len(s.Xip)-1]) {
			return bad("xip must be increasing ids in [xmin, xmax)")
		}
		s.Xip = append(s.Xip, x)
	}
	return s, nil
}

// CurrentSnapshot returns the snapshot a statement starting now would see.
func (s *Store) CurrentSnapshot(ctx context.Context) (viswals.Snapshot, error) {
	var text string
	if err := s.pool.QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&text); err != nil {
		return viswals.Snapshot{}, classify("current snapshot", err)
	}
	snap, err := parseSnapshot(text)
	if err != nil {
		return viswals.Snapshot{}, fmt.Errorf("current snapshot: %w", err)
	}
	return snap, nil
}

// Changes calls fn for the users matching f whose position is after
// `after` and below the horizon, in position order, at most limit users.
// The horizon is the xmin of the current snapshot: every change below it
// is committed and none can appear there later, so a page of fewer than
// limit users means every matching change before the horizon was
// delivered, and the caller may wait for more (see Listen). Such a caller
// should then move its position up to viswals.Pos{Xid: horizon} if that
// is further: with a filter, changes that do not match are otherwise scanned
// again by every call. An error from fn stops the walk and is returned as
// it is.
func (s *Store) Changes(ctx context.Context, f viswals.Filter, after viswals.Pos, limit int, fn func(viswals.Pos, viswals.SealedUser) error) (horizon uint64, err error) {
	if limit < 1 {
		return 0, invalidf("changes: limit must be >= 1, got %d", limit)
	}
	if err := f.Validate(); err != nil {
		return 0, err
	}
	// The horizon is read in its own statement and passed to the next one:
	// every transaction below it finished before that statement starts, so
	// its snapshot sees all their rows; and the horizon is exact.
	if err := s.pool.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())").Scan(&horizon); err != nil {
		return 0, classify("changes: horizon", err)
	}
	names, args := nameConditions(f, []any{after.Xid, after.ID, horizon, limit})
	sql := "SELECT changed_xid, " + userColumns + ` FROM users
WHERE (changed_xid, id) > ($1::xid8, $2) AND changed_xid < $3::xid8` + names + `
ORDER BY changed_xid, id LIMIT $4`

	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return 0, classify("changes", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u viswals.SealedUser
		var xid uint64
		if err := scanUser(rows, &u, &xid); err != nil {
			return 0, classify("changes", err)
		}
		if err := fn(viswals.Pos{Xid: xid, ID: u.ID}, u); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, classify("changes", err)
	}
	return horizon, nil
}
