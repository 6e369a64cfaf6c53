package viswals

import "slices"

// The changefeed orders the changes of users by the Postgres transaction
// that wrote them; these are its positions and snapshots, shared by the
// store that reads it and the streams that follow it.

// Snapshot is a Postgres transaction snapshot (pg_current_snapshot): every
// transaction below Xmin had finished, none from Xmax on had started, and
// those in Xip (sorted, within [Xmin, Xmax)) were running.
type Snapshot struct {
	Xmin, Xmax uint64
	Xip        []uint64
}

// Visible reports whether the changes of transaction xid are visible in s
// (assuming xid committed: aborted writes are never in the table).
func (s Snapshot) Visible(xid uint64) bool {
	if xid < s.Xmin {
		return true
	}
	if xid >= s.Xmax {
		return false
	}
	_, running := slices.BinarySearch(s.Xip, xid)
	return !running
}

// Pos is a position in the changefeed: the transaction that changed a row
// and the row's id. Pos{Xid: x} is before every change of transaction x
// (ids start at 1).
type Pos struct {
	Xid uint64
	ID  int64
}

// Less orders positions by transaction, then id.
func (p Pos) Less(q Pos) bool {
	return p.Xid < q.Xid || (p.Xid == q.Xid && p.ID < q.ID)
}

// A Change is one entry of the changefeed: the user as a transaction left
// it, at its position, and what the row held before that transaction.
type Change struct {
	Pos    Pos
	User   SealedUser
	Before Before
}

// Before is a user's state before a change, as far as the changefeed
// needs it to tell that a user left a filter: its folded names and the
// transaction of the change before (Exists false for a new user). Only
// the last change of a row is kept, so a reader that missed the change at
// Xid cannot know what it last saw of the user.
type Before struct {
	Exists                  bool
	FirstFolded, LastFolded string
	Xid                     uint64
}
