package postgres_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/postgres/pgtest"
)

// newStore returns a Store on a fresh migrated database, and its URL.
func newStore(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	return newStoreWith(t, postgres.PoolConfig{MaxConns: 4})
}

func newStoreWith(t testing.TB, cfg postgres.PoolConfig) (*postgres.Store, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(context.Background(), url, cfg)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s, url
}

// forEachUpsert runs test as a parallel subtest once per upsert strategy,
// each with its own database: both must give the same results.
func forEachUpsert(t *testing.T, test func(t *testing.T, s *postgres.Store, url string)) {
	t.Parallel()
	for _, strategy := range []string{postgres.UpsertCopyFirst, postgres.UpsertUnnest} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			s, url := newStoreWith(t, postgres.PoolConfig{MaxConns: 4, Upsert: strategy})
			test(t, s, url)
		})
	}
}

// connect opens a plain connection for assertions on raw columns.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

var epoch = time.Date(2024, 1, 2, 3, 4, 5, 6000000, time.UTC)

// user builds a sealed user the way the consumer would: a fresh sealing
// (random bytes) of the email on every call, and its hash.
func user(id int64, first, last, email string, load, line int64) viswals.SealedUser {
	hash := sha256.Sum256([]byte(email))
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	return viswals.SealedUser{
		ID:          id,
		FirstName:   first,
		LastName:    last,
		EmailSealed: "k1:" + base64.StdEncoding.EncodeToString(append(nonce, hash[:]...)),
		EmailHash:   hash[:],
		CreatedAt:   epoch.Add(time.Duration(id) * time.Minute),
		Version:     viswals.Version{Load: load, Line: line},
	}
}

func ptr[T any](v T) *T { return &v }

func ids(users []viswals.SealedUser) []int64 {
	out := make([]int64, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

// listAll walks every page of List and returns the ids in order.
func listAll(t *testing.T, s *postgres.Store, f viswals.Filter, pageSize int) []int64 {
	t.Helper()
	var all []int64
	var after int64
	for {
		n := 0
		err := s.List(context.Background(), f, after, pageSize, func(u viswals.SealedUser) error {
			all = append(all, u.ID)
			after = u.ID
			n++
			return nil
		})
		require.NoError(t, err)
		if n < pageSize {
			return all
		}
	}
}

func upsert(t testing.TB, s *postgres.Store, users ...viswals.SealedUser) []viswals.SealedUser {
	t.Helper()
	changed, _, err := s.UpsertBatch(context.Background(), users)
	require.NoError(t, err)
	return changed
}

// changedXID reads a row's changefeed position.
func changedXID(t testing.TB, conn *pgx.Conn, id int64) uint64 {
	t.Helper()
	var xid uint64
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT changed_xid FROM users WHERE id = $1", id).Scan(&xid))
	return xid
}
