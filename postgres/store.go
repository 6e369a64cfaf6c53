// Package postgres is the system of record: a connection pool, the embedded
// schema migrations, the versioned batch upsert the consumer writes with,
// and the reads the API serves (get by id, keyset-paged filtered lists and
// the changefeed behind the SSE stream).
//
// Every error a Store method returns carries a viswals error code:
// EUNAVAILABLE when retrying may help (Postgres down, restarting, timed
// out, a deadlock), EINVALID when the data itself was refused, ENOTFOUND
// for an unknown id, and EINTERNAL otherwise. Callers branch on
// viswals.ErrorCode; the driver error stays in the chain for errors.Is/As.
package postgres

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/viswals/viswals"
)

// PoolConfig tunes a Store; zero values take the defaults.
type PoolConfig struct {
	// MaxConns bounds the pool (default: the URL's pool_max_conns, else
	// pgxpool's max(4, CPUs)). The consumer's workers, the API handlers
	// and one Listen connection (held outside the pool) share the server's
	// max_connections.
	MaxConns int32
	// ConnectTimeout bounds establishing one connection (default: the
	// URL's connect_timeout, else 5s), so a dead server is reported as
	// unavailable quickly instead of hanging.
	ConnectTimeout time.Duration
	// Upsert picks how UpsertBatch writes: "copy-first" (the default; ""
	// means it too) tries COPY for batches of new ids and falls back to the
	// upsert, "unnest" always upserts. Both give the same result; they
	// differ in speed only (numbers in bench_test.go).
	Upsert string
	// AppName is the application_name of every connection, so that
	// pg_stat_activity tells the process's pools apart ("": the URL's).
	AppName string
}

// Upsert strategies (PoolConfig.Upsert).
const (
	UpsertCopyFirst = "copy-first"
	UpsertUnnest    = "unnest"
)

const defaultConnectTimeout = 5 * time.Second

// Store is the users table. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// listenConfig is how Listen opens its dedicated connection.
	listenConfig *pgx.ConnConfig
	// copyPause counts down the batches that skip the COPY attempt, and
	// copyPauseLen is the length of the last pause (see pauseCopy).
	copyPause, copyPauseLen atomic.Int64
	// upsertOnly disables the COPY path (PoolConfig.Upsert "unnest").
	upsertOnly bool
}

// Open returns a Store on the database at connURL (a postgres:// URL or a
// key=value DSN). It does not connect: connections are made on first use,
// so a consumer can start while Postgres is still coming up; use Ping to
// check that the server answers.
func Open(ctx context.Context, connURL string, cfg PoolConfig) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(connURL)
	if err != nil {
		// The parse error may echo the URL, password included.
		return nil, invalidf("open postgres: cannot parse the connection URL")
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	if cfg.ConnectTimeout > 0 {
		pcfg.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	}
	if pcfg.ConnConfig.ConnectTimeout <= 0 {
		pcfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	// Prefix filters are planned per execution: whether the name index or
	// the primary key is the cheaper path depends on how common the prefix
	// is, and a generic plan cannot know that (see PLANS.md).
	pcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	if cfg.AppName != "" {
		pcfg.ConnConfig.RuntimeParams["application_name"] = cfg.AppName
	}

	var upsertOnly bool
	switch cfg.Upsert {
	case "", UpsertCopyFirst:
	case UpsertUnnest:
		upsertOnly = true
	default:
		return nil, invalidf("open postgres: unknown upsert strategy %q (want %s or %s)", cfg.Upsert, UpsertCopyFirst, UpsertUnnest)
	}

	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, classify("open postgres", err)
	}
	return &Store{pool: pool, listenConfig: pcfg.ConnConfig.Copy(), upsertOnly: upsertOnly}, nil
}

// Close closes every connection. It waits for connections in use to be
// returned.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the server answers, with EUNAVAILABLE when it does not.
func (s *Store) Ping(ctx context.Context) error {
	return classify("ping postgres", s.pool.Ping(ctx))
}

// userColumns is the column list every read selects, in the order scanUser
// expects.
const userColumns = `id, first_name, last_name, email_address, email_hash,
	created_at, deleted_at, merged_at, parent_user_id, version_load, version_line`

// scanUser reads one row selected with userColumns (optionally preceded by
// extra destinations). Times are returned in UTC so that values read back
// compare equal to what was written, whatever the server's time zone.
func scanUser(row pgx.Row, u *viswals.SealedUser, extra ...any) error {
	dest := append(extra,
		&u.ID, &u.FirstName, &u.LastName, &u.EmailSealed, &u.EmailHash,
		&u.CreatedAt, &u.DeletedAt, &u.MergedAt, &u.ParentUserID, &u.Version.Load, &u.Version.Line)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	u.CreatedAt = u.CreatedAt.UTC()
	if u.DeletedAt != nil {
		t := u.DeletedAt.UTC()
		u.DeletedAt = &t
	}
	if u.MergedAt != nil {
		t := u.MergedAt.UTC()
		u.MergedAt = &t
	}
	return nil
}

// Empty reports whether the users table holds no rows.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var empty bool
	if err := s.pool.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM users)").Scan(&empty); err != nil {
		return false, classify("check users table", err)
	}
	return empty, nil
}
