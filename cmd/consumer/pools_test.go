package main

import (
	"bufio"
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// The API reads through its own pool, bounded by API_PG_MAX_CONNS, apart
// from ingestion's: however many reads run at once, the API holds no more
// connections than its pool (and its changefeed's LISTEN connection), and
// none of ingestion's.
func TestAPIReadsThroughItsOwnPool(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.vars["API_PG_MAX_CONNS"] = "2"
	e.vars["API_RATE_LIMIT"] = "0"
	base := e.startConsumer(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Streams (each reads its snapshot from the API's pool) and lists at once.
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			path := "/users?limit=10"
			if i%2 == 0 {
				path = "/users/sse"
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			// A stream of the empty table never ends: read its first
			// line (the snapshot is taken by then) and leave.
			bufio.NewReader(resp.Body).ReadString('\n')
			resp.Body.Close()
		})
	}
	wg.Wait()

	conn, err := pgx.Connect(ctx, e.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT application_name, count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1`)
	require.NoError(t, err)
	byApp := map[string]int{}
	for rows.Next() {
		var app string
		var n int
		require.NoError(t, rows.Scan(&app, &n))
		byApp[app] = n
	}
	require.NoError(t, rows.Err())
	require.Positive(t, byApp[apiAppName], "the API's reads are on its pool: %v", byApp)
	require.LessOrEqual(t, byApp[apiAppName], 2+1, "the API's pool and its LISTEN connection: %v", byApp)
	require.Positive(t, byApp[ingestAppName], "ingestion has its own: %v", byApp)
	for app := range byApp {
		require.Contains(t, []string{apiAppName, ingestAppName}, app, "every connection of the consumer is in one of its pools: %v", byApp)
	}
}
