package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen calls fn whenever a transaction that changed users commits, in
// any process writing to this database, until ctx is done; it then returns
// ctx.Err(). It holds one dedicated connection (outside the pool) and
// reconnects with backoff when the connection is lost. fn is also called
// each time listening (re)starts, since notifications sent while not
// listening are lost; so fn means "look for changes", not "one change".
// fn runs on Listen's goroutine and should not block (signal a channel).
//
// Notifications are a wake-up only: they can be missed, so a reader should
// also poll Changes now and then.
func (s *Store) Listen(ctx context.Context, fn func()) error {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		listening := s.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if listening {
			backoff = minBackoff
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// listenOnce listens on one connection until it fails or ctx is done. It
// reports whether it got as far as listening.
func (s *Store) listenOnce(ctx context.Context, fn func()) (listening bool) {
	conn, err := pgx.ConnectConfig(ctx, s.listenConfig)
	if err != nil {
		return false
	}
	defer func() {
		// ctx may be done already; still say goodbye, briefly.
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return false
	}
	fn()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true
		}
		fn()
	}
}
