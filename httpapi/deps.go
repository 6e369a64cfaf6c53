package httpapi

import (
	"context"

	"github.com/viswals/viswals"
)

// The handlers depend on these small interfaces, not on the concrete stores,
// so that they can be tested with in-memory fakes and so that httpapi does
// not import any infrastructure package. cmd/consumer passes a
// *usercache.Store (Postgres with the Redis cache in front),
// *emailcrypt.Keyring and a *changefeed.Hub over *postgres.Store.

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
