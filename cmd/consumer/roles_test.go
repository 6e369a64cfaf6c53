package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/internal/logbuf"
	"github.com/viswals/viswals/internal/wait"
)

// readyz returns the status and data of GET /readyz.
func readyz(t *testing.T, base string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Data map[string]any `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body.Data
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// An ingest process and an API process, started apart against the same
// services: the API one has no RabbitMQ to reach (its URL names a dead
// port) and still serves, and its stream, opened before the load, gets
// every user the ingest process stores (through Postgres's NOTIFY).
func TestRolesIngestAndAPIApart(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	var ingestLogs, apiLogs logbuf.Buffer
	ingest := e.startProcess(t, http.DefaultClient, []string{"serve", "--roles", "ingest"}, nil, &ingestLogs)
	api := e.startProcess(t, http.DefaultClient, nil, map[string]string{
		"CONSUMER_ROLES":    "api",
		"RABBITMQ_CONN_URL": "amqp://guest:guest@127.0.0.1:1/",
	}, &apiLogs)

	// Readiness names each role's dependencies; the API process has no
	// RabbitMQ check at all.
	status, data := readyz(t, api)
	assert.Equal(t, http.StatusOK, status, "%v", data)
	assert.Equal(t, map[string]any{"api": []any{"postgres", "redis"}}, data["roles"])
	assert.Equal(t, "ok", data["postgres"])
	assert.NotContains(t, data, "rabbitmq")
	wait.For(t, 30*time.Second, "the ingest process to be ready", func() (bool, string) {
		status, data = readyz(t, ingest)
		return status == http.StatusOK, fmt.Sprintf("%d %v", status, data)
	})
	assert.Equal(t, map[string]any{"ingest": []any{"postgres", "rabbitmq", "redis"}}, data["roles"])
	assert.Equal(t, "ok", data["rabbitmq"])

	// The ingest process serves its probes and metrics, not the API.
	assert.Equal(t, http.StatusNotFound, getStatus(t, ingest+"/users/1"))
	assert.Equal(t, http.StatusNotFound, getStatus(t, ingest+"/users/sse"))
	assert.Equal(t, http.StatusOK, getStatus(t, ingest+"/metrics"))

	// A stream on the API process, opened on the empty table.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/users/sse?limit=5", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	path := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(path, []byte(input), 0o600))
	assert.Contains(t, e.produce(t, path), "read=11 published=6 rejected=5")

	var streamed []string
	event := ""
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		// Only user events: the stream also announces the snapshot's size
		// and the end of the snapshot.
		if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			event = name
			continue
		}
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && event == "user" {
			var u struct {
				ID        int64  `json:"id"`
				FirstName string `json:"first_name"`
			}
			require.NoError(t, json.Unmarshal([]byte(data), &u))
			streamed = append(streamed, fmt.Sprintf("%d %s", u.ID, u.FirstName))
		}
	}
	require.NoError(t, sc.Err(), "the stream ends after limit=5 users")
	assert.Equal(t, []string{"1 Ann", "2 Bobby", "3 Zoë", "4 Multi\nLine", "10 "}, streamed)

	assert.Equal(t, http.StatusOK, getStatus(t, api+"/users/2"))
	waitIngested(t, ingest, "6 rows ingested by the ingest process", 6)
	assert.NotContains(t, strings.ToLower(apiLogs.String()), "rabbitmq", "the API process never tried RabbitMQ")
}

func TestRolesBadSetting(t *testing.T) {
	t.Parallel()
	var stderr strings.Builder
	err := run(context.Background(), []string{"serve", "--roles", "ingest,reader"}, func(string) string { return "" }, strings.NewReader(""), &stderr, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown role "reader"`)
}
