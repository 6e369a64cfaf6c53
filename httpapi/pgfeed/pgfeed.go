// Package pgfeed adapts the Postgres store's changefeed to httpapi.Feed.
// It is the only part of httpapi that knows the postgres package: the
// snapshot and position types are converted here so that httpapi itself
// depends on interfaces only.
package pgfeed

import (
	"context"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/httpapi"
	"github.com/viswals/viswals/postgres"
)

// Feed is an httpapi.Feed over a *postgres.Store.
type Feed struct {
	store *postgres.Store
}

// New returns the changefeed of store.
func New(store *postgres.Store) *Feed { return &Feed{store: store} }

var _ httpapi.Feed = (*Feed)(nil)

// CurrentSnapshot implements httpapi.Feed.
func (f *Feed) CurrentSnapshot(ctx context.Context) (httpapi.Snapshot, error) {
	s, err := f.store.CurrentSnapshot(ctx)
	if err != nil {
		return httpapi.Snapshot{}, err
	}
	return httpapi.Snapshot{Xmin: s.Xmin, Xmax: s.Xmax, Xip: s.Xip}, nil
}

// ListVisible implements httpapi.Feed.
func (f *Feed) ListVisible(ctx context.Context, filter viswals.Filter, afterID int64, limit int, snap httpapi.Snapshot, fn func(viswals.SealedUser) error) error {
	return f.store.ListVisible(ctx, filter, afterID, limit, postgres.Snapshot{Xmin: snap.Xmin, Xmax: snap.Xmax, Xip: snap.Xip}, fn)
}

// Changes implements httpapi.Feed.
func (f *Feed) Changes(ctx context.Context, filter viswals.Filter, after httpapi.Pos, limit int, fn func(httpapi.Pos, viswals.SealedUser) error) (uint64, error) {
	return f.store.Changes(ctx, filter, postgres.ChangePos{XID: after.Xid, ID: after.ID}, limit, func(p postgres.ChangePos, u viswals.SealedUser) error {
		return fn(httpapi.Pos{Xid: p.XID, ID: p.ID}, u)
	})
}

// Listen implements httpapi.Feed.
func (f *Feed) Listen(ctx context.Context, fn func()) error {
	return f.store.Listen(ctx, fn)
}
