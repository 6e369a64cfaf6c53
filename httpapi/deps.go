package httpapi

import (
	"context"
	"slices"

	"github.com/viswals/viswals"
)

// The handlers depend on these small interfaces, not on the concrete stores,
// so that they can be tested with in-memory fakes and so that httpapi does
// not import any infrastructure package. cmd/consumer passes a
// *usercache.Store (Postgres with the Redis cache in front),
// *emailcrypt.Keyring and the changefeed (through the adapter in
// httpapi/pgfeed).

// UserReader is where GET /users and GET /users/{id} read users from,
// emails opened.
type UserReader interface {
	// Get returns one user, with an ENOTFOUND error when there is none.
	Get(ctx context.Context, id int64) (viswals.User, error)
	// List calls fn for up to limit users with id > afterID that match f,
	// in ascending id order, as they are read.
	List(ctx context.Context, f viswals.Filter, afterID int64, limit int, fn func(viswals.User) error) error
}

// Opener decrypts the email of a sealed user.
type Opener interface {
	Open(viswals.SealedUser) (viswals.User, error)
}

// Feed is the changefeed behind GET /users/sse: a snapshot of the table,
// then every change after it, ordered by the Pos of the transaction that
// wrote it. See sse.go for how the two halves meet without gaps.
type Feed interface {
	// CurrentSnapshot returns the transaction snapshot of "now".
	CurrentSnapshot(ctx context.Context) (Snapshot, error)
	// ListVisible is List restricted to rows whose last change is visible
	// in snap.
	ListVisible(ctx context.Context, f viswals.Filter, afterID int64, limit int, snap Snapshot, fn func(viswals.SealedUser) error) error
	// Changes calls fn, in Pos order, for up to limit rows matching f whose
	// Pos is greater than after and whose transaction is older than every
	// transaction still running (the horizon it returns). Everything below
	// the horizon is final, so a reader that has seen all rows below it can
	// move to Pos{Xid: horizon} and never miss a late commit.
	Changes(ctx context.Context, f viswals.Filter, after Pos, limit int, fn func(Pos, viswals.SealedUser) error) (horizon uint64, err error)
	// Listen calls fn on each change notification until ctx ends or the
	// connection fails.
	Listen(ctx context.Context, fn func()) error
}

// Snapshot is a Postgres transaction snapshot (pg_current_snapshot): every
// transaction below Xmin had finished, none from Xmax on had started, and
// those in Xip (sorted) were running.
type Snapshot struct {
	Xmin, Xmax uint64
	Xip        []uint64
}

// Visible reports whether the changes of transaction xid are visible in s.
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
// and the row's id. Pos{Xid: x} is before every change of transaction x.
type Pos struct {
	Xid uint64
	ID  int64
}

// Less orders positions by transaction, then id.
func (p Pos) Less(q Pos) bool {
	return p.Xid < q.Xid || (p.Xid == q.Xid && p.ID < q.ID)
}
