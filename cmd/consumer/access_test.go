package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/internal/wait"
)

// createKey runs `consumer apikey create` and returns the key and the
// line for the keys file.
func createKey(t *testing.T, name, role string) (key, line string) {
	t.Helper()
	var stdout bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"apikey", "create", "--name", name, "--role", role}, noEnv, strings.NewReader(""), &stdout, io.Discard))
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Len(t, lines, 2)
	return lines[0], lines[1]
}

func getAs(t *testing.T, url, key string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

// The consumer as an operator runs it: keys made by `consumer apikey
// create`, their lines in API_KEYS_FILE. Each role sees what it may, the
// rest is refused, a revoked key stops working, and every reply that
// reveals emails is audited without the email.
func TestAccessWithAPIKeys(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	reader, readerLine := createKey(t, "dashboard", "reader")
	pii, piiLine := createKey(t, "support", "pii")
	admin, adminLine := createKey(t, "ops", "admin")
	keysFile := filepath.Join(t.TempDir(), "api-keys")
	require.NoError(t, os.WriteFile(keysFile, []byte(readerLine+"\n"+piiLine+"\n"+adminLine+"\n"), 0o600))
	delete(e.vars, "AUTH_MODE")
	e.vars["API_KEYS_FILE"] = keysFile
	e.vars["LOG_LEVEL"] = "error" // the audit log is written whatever the level
	base := e.startConsumer(t)
	logs := &e.logs

	path := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(path, []byte("id,first_name,last_name,email_address,created_at\n1,Ada,Lovelace,ada@example.com,1600000000000\n"), 0o600))
	e.produce(t, path)
	wait.For(t, 30*time.Second, "the user ingested", func() (bool, string) {
		status, _, body := getAs(t, base+"/users/1", admin)
		return status == http.StatusOK, body
	})

	tests := []struct {
		name, path, key string
		status          int
		contains        string
	}{
		{"no credentials", "/users/1", "", http.StatusUnauthorized, "Authorization"},
		{"unknown key", "/users/1", "vsk_nottherightkeyatallnottherightkeyatall000", http.StatusUnauthorized, ""},
		{"key with a changed case", "/users/1", strings.ToUpper(reader), http.StatusUnauthorized, ""},
		{"reader sees the email masked", "/users/1", reader, http.StatusOK, `"email_address":"a***@example.com"`},
		{"reader lists masked", "/users?limit=5", reader, http.StatusOK, `"email_address":"a***@example.com"`},
		{"pii sees the email", "/users/1", pii, http.StatusOK, `"email_address":"ada@example.com"`},
		{"reader may not read metrics", "/metrics", reader, http.StatusForbidden, "reader"},
		{"pii may not read metrics", "/metrics", pii, http.StatusForbidden, ""},
		{"admin reads metrics", "/metrics", admin, http.StatusOK, "viswals_rows_ingested_total"},
		{"health needs nothing", "/healthz", "", http.StatusOK, ""},
	}
	for _, tt := range tests {
		status, h, body := getAs(t, base+tt.path, tt.key)
		assert.Equal(t, tt.status, status, "%s: %s", tt.name, body)
		assert.Contains(t, body, tt.contains, tt.name)
		if status == http.StatusUnauthorized {
			assert.Contains(t, h.Get("WWW-Authenticate"), "Bearer", tt.name)
		}
	}

	// Deleting a key's line revokes it.
	require.NoError(t, os.WriteFile(keysFile, []byte(readerLine+"\n"+adminLine+"\n"), 0o600))
	wait.For(t, 30*time.Second, "the revoked key to be refused", func() (bool, string) {
		status, _, _ := getAs(t, base+"/users/1", pii)
		return status == http.StatusUnauthorized, http.StatusText(status)
	})

	// The audit log: a line per reply that revealed emails (the admin's and
	// pii's reads), none for the masked ones, and never an email or a key.
	var audited []map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, `"logger":"audit"`) {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		audited = append(audited, m)
	}
	byPrincipal := map[string]int{}
	for _, m := range audited {
		byPrincipal[m["principal"].(string)]++
		assert.Equal(t, "GET /users/{id}", m["route"])
		assert.EqualValues(t, 1, m["emails"])
		assert.NotEmpty(t, m["request_id"])
		assert.Contains(t, []any{"pii", "admin"}, m["role"])
	}
	assert.Positive(t, byPrincipal["support"], "the pii reads are audited")
	assert.Positive(t, byPrincipal["ops"], "the admin's reads are audited")
	assert.Zero(t, byPrincipal["dashboard"], "masked replies reveal nothing")
	for _, secret := range []string{"ada@example.com", reader, pii, admin} {
		assert.NotContains(t, logs.String(), secret, "the logs hold no email and no key")
	}
}
