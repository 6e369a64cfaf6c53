package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

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

// Changes calls fn for the changes whose position is after `after` and
// below the horizon, in position order, at most limit changes. With a
// filter f it returns at least those a stream of f needs: the users that
// match f now, and those that may have matched it before the change (their
// names before matched, or the state before is one the reader never saw,
// being after `after`); the stream decides which of these leave it.
// The horizon is the xmin of the current snapshot: every change below it
// is committed and none can appear there later, so a page of fewer than
// limit changes means every wanted change before the horizon was
// delivered, and the caller may wait for more (see Listen). Such a caller
// should then move its position up to viswals.Pos{Xid: horizon} if that
// is further: with a filter, changes that do not match are otherwise scanned
// again by every call. An error from fn stops the walk and is returned as
// it is.
func (s *Store) Changes(ctx context.Context, f viswals.Filter, after viswals.Pos, limit int, fn func(viswals.Change) error) (horizon uint64, err error) {
	if limit < 1 {
		return 0, invalidf("changes: limit must be >= 1, got %d", limit)
	}
	if err := f.Validate(); err != nil {
		return 0, err
	}
	// One snapshot for the whole read (REPEATABLE READ): its xmin is the
	// horizon, and every transaction below it is visible in it.
	//
	// A row's older version is gone once a newer one is written, so a
	// reader moving past the older position while the newer version is
	// still above the horizon would never see that state, and could not
	// tell (from the row's before_ columns) whether it showed the user.
	// The horizon is therefore lowered to the before_changed_xid of any
	// such row: the reader waits there until the newer version is
	// readable. See changefeed's leave events.
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT least(h.xmin, (SELECT min(before_changed_xid) FROM users
	WHERE changed_xid >= h.xmin AND before_changed_xid >= $1::xid8 AND before_changed_xid < h.xmin))
FROM h`, after.Xid).Scan(&horizon); err != nil {
			return fmt.Errorf("horizon: %w", err)
		}
		names, args := changeConditions(f, []any{after.Xid, after.ID, horizon, limit})
		sql := "SELECT changed_xid, before_changed_xid, before_first_name_lc, before_last_name_lc, " + userColumns + ` FROM users
WHERE (changed_xid, id) > ($1::xid8, $2) AND changed_xid < $3::xid8` + names + `
ORDER BY changed_xid, id LIMIT $4`
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c viswals.Change
			var beforeXid *uint64
			var beforeFirst, beforeLast *string
			if err := scanUser(rows, &c.User, &c.Pos.Xid, &beforeXid, &beforeFirst, &beforeLast); err != nil {
				return err
			}
			c.Pos.ID = c.User.ID
			if beforeXid != nil && beforeFirst != nil && beforeLast != nil {
				c.Before = viswals.Before{Exists: true, Xid: *beforeXid, FirstFolded: *beforeFirst, LastFolded: *beforeLast}
			}
			if err := fn(c); err != nil {
				return errStop{err}
			}
		}
		return rows.Err()
	})
	var stop errStop
	if errors.As(err, &stop) {
		return 0, stop.err
	}
	if err != nil {
		return 0, classify("changes", err)
	}
	return horizon, nil
}

// errStop carries fn's error out of the transaction unclassified.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// changeConditions returns the condition (" AND ...") of the changes a
// stream of f needs (see Changes), and args with the folded prefixes
// appended; $1 and $2 must be the position after which it reads.
func changeConditions(f viswals.Filter, args []any) (string, []any) {
	var now, before []string
	for _, c := range []struct{ column, prefix string }{
		{"first_name_lc", f.FirstName},
		{"last_name_lc", f.LastName},
	} {
		if c.prefix != "" {
			args = append(args, viswals.Fold(c.prefix))
			now = append(now, fmt.Sprintf("%s ^@ $%d", c.column, len(args)))
			before = append(before, fmt.Sprintf("before_%s ^@ $%d", c.column, len(args)))
		}
	}
	if len(now) == 0 {
		return "", args
	}
	return " AND ((" + strings.Join(now, " AND ") + ") OR (before_changed_xid IS NOT NULL AND ((" +
		strings.Join(before, " AND ") + ") OR (before_changed_xid, id) > ($1::xid8, $2))))", args
}
