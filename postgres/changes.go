package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
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
//	pos := snap.Start()
//	loop: Changes(..., pos, ...) skipping positions snap.Visible(pos.XID),
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

// ChangePos is a position in the changefeed: the transaction that made a
// change and the user's id.
type ChangePos struct {
	XID uint64
	ID  int64
}

// Less orders positions.
func (p ChangePos) Less(q ChangePos) bool {
	return p.XID < q.XID || (p.XID == q.XID && p.ID < q.ID)
}

// Snapshot is a Postgres snapshot (pg_snapshot): the transactions whose
// effects a reader sees.
type Snapshot struct {
	Xmin uint64   // every transaction before Xmin had finished
	Xmax uint64   // no transaction from Xmax on had finished
	Xip  []uint64 // transactions in [Xmin, Xmax) still running
}

// Visible reports whether the changes of transaction xid are in the
// snapshot (assuming xid committed: aborted writes are never in the table).
func (s Snapshot) Visible(xid uint64) bool {
	return xid < s.Xmin || (xid < s.Xmax && !slices.Contains(s.Xip, xid))
}

// Start is the changefeed position at which the live phase of a stream
// opened at s begins: just before the first transaction s may not see.
func (s Snapshot) Start() ChangePos { return HorizonPos(s.Xmin) }

// String formats s as Postgres does: "xmin:xmax:xip1,xip2".
func (s Snapshot) String() string {
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

// ParseSnapshot parses the text form of a pg_snapshot, for instance from a
// stream cursor. It checks the invariants Postgres relies on, so that a
// forged value cannot reach a query as something Postgres would reject.
func ParseSnapshot(text string) (Snapshot, error) {
	bad := func(why string) (Snapshot, error) {
		return Snapshot{}, invalidf("snapshot %q: %s", text, why)
	}
	parts := strings.Split(text, ":")
	if len(parts) != 3 {
		return bad("want xmin:xmax:xip")
	}
	var s Snapshot
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

// HorizonPos is the position just before horizon: a caller that got every
// change below the horizon (a page of fewer than limit users) can resume
// from there.
func HorizonPos(horizon uint64) ChangePos {
	return ChangePos{XID: horizon - 1, ID: math.MaxInt64}
}

// CurrentSnapshot returns the snapshot a statement starting now would see.
func (s *Store) CurrentSnapshot(ctx context.Context) (Snapshot, error) {
	var text string
	if err := s.pool.QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&text); err != nil {
		return Snapshot{}, classify("current snapshot", err)
	}
	snap, err := ParseSnapshot(text)
	if err != nil {
		return Snapshot{}, fmt.Errorf("current snapshot: %w", err)
	}
	return snap, nil
}

// Changes calls fn for the users matching f whose position is after
// `after` and below the horizon, in position order, at most limit users.
// The horizon is the xmin of the current snapshot: every change below it
// is committed and none can appear there later, so a page of fewer than
// limit users means every matching change before the horizon was
// delivered, and the caller may wait for more (see Listen). Such a caller
// should then move its position up to HorizonPos(horizon) if that is
// further: with a filter, changes that do not match are otherwise scanned
// again by every call. An error from fn stops the walk and is returned as
// it is.
func (s *Store) Changes(ctx context.Context, f viswals.Filter, after ChangePos, limit int, fn func(ChangePos, viswals.SealedUser) error) (horizon uint64, err error) {
	if limit < 1 {
		return 0, invalidf("changes: limit must be >= 1, got %d", limit)
	}
	if err := checkFilter(f); err != nil {
		return 0, err
	}
	// The horizon is read in its own statement and passed to the next one:
	// every transaction below it finished before that statement starts, so
	// its snapshot sees all their rows; and the horizon is exact.
	if err := s.pool.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())").Scan(&horizon); err != nil {
		return 0, classify("changes: horizon", err)
	}
	names, args := nameConditions(f, []any{after.XID, after.ID, horizon, limit})
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
		if err := fn(ChangePos{XID: xid, ID: u.ID}, u); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, classify("changes", err)
	}
	return horizon, nil
}
