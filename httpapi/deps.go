package httpapi

import (
	"context"

	"github.com/viswals/viswals"
)

// The handlers depend on these small interfaces, not on the concrete stores,
// so that they can be tested with in-memory fakes and so that httpapi does
// not import any infrastructure package. cmd/consumer passes a
// *usercache.Store (Postgres with the Redis cache in front),
// *emailcrypt.Keyring and *postgres.Store as the changefeed.

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
// then every change after it, ordered by the position of the transaction
// that wrote it. See sse.go for how the two halves meet without gaps.
type Feed interface {
	// CurrentSnapshot returns the transaction snapshot of "now".
	CurrentSnapshot(ctx context.Context) (viswals.Snapshot, error)
	// ListVisible is List restricted to rows whose last change is visible
	// in snap.
	ListVisible(ctx context.Context, f viswals.Filter, afterID int64, limit int, snap viswals.Snapshot, fn func(viswals.SealedUser) error) error
	// Changes calls fn, in position order, for up to limit rows matching f
	// whose position is after `after` and whose transaction is older than every
	// transaction still running (the horizon it returns). Everything below
	// the horizon is final, so a reader that has seen all rows below it can
	// move to viswals.Pos{Xid: horizon} and never miss a late commit.
	Changes(ctx context.Context, f viswals.Filter, after viswals.Pos, limit int, fn func(viswals.Pos, viswals.SealedUser) error) (horizon uint64, err error)
	// Listen calls fn on each change notification until ctx ends or the
	// connection fails.
	Listen(ctx context.Context, fn func()) error
}
