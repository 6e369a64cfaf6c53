// Package pgtest gives each test its own migrated Postgres database.
//
//	url := pgtest.NewDatabase(t)
//	store, err := postgres.Open(ctx, url, postgres.PoolConfig{})
//
// The server is POSTGRES_TEST_URL, or postgres://postgres@127.0.0.1:5432/postgres
// by default; the URL must name a role allowed to create databases. A test
// whose server does not answer is skipped under -short and fails otherwise
// (see internal/testenv): a skipped integration test in the full suite
// would pass without testing anything.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/postgres"
)

// HorizonWait bounds a test's wait for committed changes to reach the
// changefeed. The changefeed reads only below the oldest write transaction
// running on the whole server (see postgres.Store.Changes), so another
// test's or another package's long transaction, in any database, holds
// the changes back until it ends; on a loaded machine that can be a
// minute.
const HorizonWait = 2 * time.Minute

// DefaultURL is the server used when POSTGRES_TEST_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the URL of the test server's maintenance database.
func ServerURL() string {
	if u := os.Getenv("POSTGRES_TEST_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabase creates an empty database with a unique name (test_<hex>),
// runs the migrations on it and returns its connection URL. The database is
// dropped, with any connections still open, when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	dbURL := NewEmptyDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := postgres.Migrate(ctx, dbURL); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return dbURL
}

// NewEmptyDatabase is NewDatabase without the migrations.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	server := ServerURL()
	cfg, err := pgx.ParseConfig(server)
	if err != nil {
		t.Fatalf("pgtest: POSTGRES_TEST_URL: %v", err)
	}
	testenv.Service(t, "PostgreSQL", address(cfg.Host, cfg.Port))
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: Postgres is not reachable at %s (set POSTGRES_TEST_URL, or run make test, which starts it with Docker Compose): %v", redact(server), err)
	}
	defer conn.Close(ctx)

	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	// Identifiers cannot be parameters; name is made of [a-z0-9_] only.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(server, name)
}

// address is where a server of host and port listens: host:port, or the
// socket in a directory host.
func address(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("%s/.s.PGSQL.%d", host, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// withDatabase returns server with its database replaced by name.
func withDatabase(server, name string) string {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// A key=value DSN: the last dbname wins.
		return server + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

// redact hides a password in a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}
