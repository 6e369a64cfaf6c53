package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/viswals/viswals"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate brings the schema at connURL up to date with the migrations
// embedded in the binary. It is idempotent, and safe when several
// processes start at once: golang-migrate holds a Postgres advisory lock
// while it reads and applies versions, so the others wait and then find
// nothing to do. Each migration file runs as one implicit transaction.
func Migrate(ctx context.Context, connURL string) error {
	connCfg, err := pgx.ParseConfig(connURL)
	if err != nil {
		return invalidf("migrate: cannot parse the connection URL")
	}
	if connCfg.ConnectTimeout <= 0 {
		connCfg.ConnectTimeout = defaultConnectTimeout
	}
	db := stdlib.OpenDB(*connCfg)
	defer db.Close()
	// golang-migrate takes no context; bound at least the first contact.
	if err := db.PingContext(ctx); err != nil {
		return classify("migrate: connect", err)
	}

	src, err := iofs.New(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: embedded migrations: %w", err)
	}
	driver, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		return classify("migrate: open", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// Closing m closes src and driver, and with it db (the deferred
	// db.Close covers the early returns).
	defer m.Close()

	// Stop between migrations when ctx is done.
	upDone := make(chan struct{})
	defer close(upDone)
	go func() {
		select {
		case <-ctx.Done():
			m.GracefulStop <- true // buffered
		case <-upDone:
		}
	}()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		var dirty migrate.ErrDirty
		if errors.As(err, &dirty) {
			// golang-migrate marks a version dirty before applying it and
			// leaves the mark when it fails; it then refuses to go on, and
			// only a person can tell what the failed migration left.
			return viswals.Errorf(viswals.EINVALID, "migrate: the schema is marked dirty at version %d: that migration failed part-way in an "+
				"earlier run (its error was logged then); repair the schema, then record the last fully applied version: "+
				"UPDATE schema_migrations SET version = <that version>, dirty = false", dirty.Version)
		}
		return classify("migrate: up", err)
	}
	return classify("migrate: up", ctx.Err())
}
