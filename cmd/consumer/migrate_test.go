package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/postgres/pgtest"
)

// A schema that migrations cannot bring up to date stops the consumer
// with what to do; it does not wait for it as for an outage.
func TestDirtySchemaStopsTheConsumer(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, postgres.Migrate(ctx, url))
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "UPDATE schema_migrations SET dirty = true")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	vars := map[string]string{
		"ENCRYPTION_KEY":    base64.StdEncoding.EncodeToString(key),
		"CONSUMER_PORT":     "127.0.0.1:0",
		"POSTGRES_CONN_URL": url,
	}
	err = run(ctx, nil, func(k string) string { return vars[k] }, strings.NewReader(""), io.Discard, io.Discard)
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "the consumer waited instead of stopping")
	assert.Contains(t, err.Error(), "marked dirty at version 3")
	assert.Contains(t, err.Error(), "UPDATE schema_migrations")
}
