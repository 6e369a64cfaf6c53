package httpapi

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/internal/wait"
)

// accessEnv is an API with authentication on: one key per role in its
// keys file, and sessions.
type accessEnv struct {
	*testEnv
	keys     map[string]string // role name → key
	keysFile string
	sessions *auth.Sessions
}

func newAccessEnv(t *testing.T) *accessEnv {
	t.Helper()
	a := &accessEnv{keys: map[string]string{}, keysFile: filepath.Join(t.TempDir(), "api-keys")}
	var lines []string
	for _, role := range []auth.Role{auth.RoleReader, auth.RolePII, auth.RoleAdmin} {
		key, line, err := auth.GenerateKey("key-"+role.String(), role)
		require.NoError(t, err)
		a.keys[role.String()] = key
		lines = append(lines, line)
	}
	require.NoError(t, os.WriteFile(a.keysFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	keys, err := auth.OpenKeyFile(a.keysFile, auth.KeyFileOptions{CheckEvery: time.Millisecond})
	require.NoError(t, err)
	a.sessions, err = auth.NewSessions(bytes.Repeat([]byte("s"), 32), auth.SessionOptions{})
	require.NoError(t, err)
	a.testEnv = newEnv(t, func(s *envSettings) {
		s.cfg.AuthOff = false
		s.cfg.Auth = auth.NewAuthenticator(keys, nil)
		s.cfg.Sessions = a.sessions
	})
	a.db.insert(testUser(1, "Ada", "Lovelace"))
	return a
}

// do sends a GET with the given Authorization header ("" for none) and
// cookie value, and returns the response with its body read.
func (a *accessEnv) do(t *testing.T, path, authorization, cookie string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.srv.URL+path, nil)
	require.NoError(t, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func TestAccess(t *testing.T) {
	t.Parallel()
	a := newAccessEnv(t)
	bearer := func(role string) string { return "Bearer " + a.keys[role] }
	jwtNone := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIn0."
	tests := []struct {
		name, path, authz string
		status            int
		contains          string
	}{
		{"no credentials", "/users/1", "", http.StatusUnauthorized, "Authorization"},
		{"not a bearer token", "/users/1", "Basic dXNlcjpwYXNz", http.StatusUnauthorized, ""},
		{"unknown key", "/users/1", "Bearer vsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusUnauthorized, ""},
		{"key in upper case", "/users/1", "Bearer " + strings.ToUpper(a.keys["reader"]), http.StatusUnauthorized, ""},
		// (Whitespace around a header's value is not part of it in HTTP.)
		{"key after two spaces", "/users/1", "Bearer  " + a.keys["reader"], http.StatusUnauthorized, ""},
		{"key with a space inside", "/users/1", bearer("reader")[:20] + " " + bearer("reader")[20:], http.StatusUnauthorized, ""},
		{"truncated key", "/users/1", bearer("reader")[:20], http.StatusUnauthorized, ""},
		{"100 kB token", "/users/1", "Bearer " + strings.Repeat("a", 100<<10), http.StatusUnauthorized, ""},
		{"alg=none JWT", "/users/1", "Bearer " + jwtNone, http.StatusUnauthorized, ""},
		{"reader: email masked", "/users/1", bearer("reader"), http.StatusOK, `"email_address":"u***@example.com"`},
		{"reader lists masked", "/users", bearer("reader"), http.StatusOK, `"email_address":"u***@example.com"`},
		{"pii: email shown", "/users/1", bearer("pii"), http.StatusOK, `"email_address":"user1@example.com"`},
		{"admin: email shown", "/users", bearer("admin"), http.StatusOK, `"email_address":"user1@example.com"`},
		{"reader may not read metrics", "/metrics", bearer("reader"), http.StatusForbidden, "reader may not"},
		{"pii may not read metrics", "/metrics", bearer("pii"), http.StatusForbidden, ""},
		{"admin reads metrics", "/metrics", bearer("admin"), http.StatusOK, "viswals_http_request"},
		{"openapi needs a role", "/openapi.yaml", "", http.StatusUnauthorized, ""},
		{"health needs nothing", "/healthz", "", http.StatusOK, ""},
		{"readiness needs nothing", "/readyz", "", http.StatusOK, ""},
		{"the page's shell needs nothing", "/", "", http.StatusOK, "<html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := a.do(t, tt.path, tt.authz, "")
			assert.Equal(t, tt.status, resp.StatusCode, body)
			assert.Contains(t, body, tt.contains)
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
				assert.Contains(t, body, `"status":"error"`)
			case http.StatusOK:
				if tt.authz != "" {
					assert.Len(t, resp.Header.Get("X-Request-Id"), 16)
				}
			}
			for _, key := range a.keys {
				assert.NotContains(t, body, key, "no reply holds a key")
			}
		})
	}
	for _, key := range a.keys {
		assert.NotContains(t, a.logs.String(), key, "no log line holds a key")
	}
}

// Each reply that reveals decrypted emails writes one audit line with the
// principal, role, route, count and request id; masked replies write none.
func TestAccessAudit(t *testing.T) {
	t.Parallel()
	a := newAccessEnv(t)
	a.db.insert(testUser(2, "Bo", "Ng"))
	resp, _ := a.do(t, "/users", "Bearer "+a.keys["pii"], "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, _ = a.do(t, "/users", "Bearer "+a.keys["reader"], "")
	var audit []string
	for _, line := range strings.Split(a.logs.String(), "\n") {
		if strings.Contains(line, `"logger":"audit"`) {
			audit = append(audit, line)
		}
	}
	require.Len(t, audit, 1, a.logs.String())
	for _, want := range []string{`"principal":"key-pii"`, `"role":"pii"`, `"route":"GET /users"`, `"emails":2`, `"request_id":"` + resp.Header.Get("X-Request-Id") + `"`} {
		assert.Contains(t, audit[0], want)
	}
	assert.NotContains(t, a.logs.String(), "@example.com", "no email in any log line")
}

// The changefeed shows each stream's principal what its role may see; the
// ring's renderings are shared only between streams of one view.
func TestAccessSSE(t *testing.T) {
	t.Parallel()
	a := newAccessEnv(t)
	read := func(role string) string {
		resp, body := a.do(t, "/users/sse?limit=1", "Bearer "+a.keys[role], "")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(data, "email_address") {
				return data
			}
		}
		t.Fatalf("no event in %q", body)
		return ""
	}
	assert.Contains(t, read("reader"), `"email_address":"u***@example.com"`)
	assert.Contains(t, read("pii"), `"email_address":"user1@example.com"`)
}

// The page's session cookie stands for its principal until it expires,
// and no longer than the key it came from.
func TestAccessSessionCookie(t *testing.T) {
	t.Parallel()
	a := newAccessEnv(t)
	p, err := auth.NewAuthenticator(mustKeys(t, a.keysFile), nil).Authenticate(t.Context(), a.keys["pii"])
	require.NoError(t, err)
	cookie, _, err := a.sessions.Issue(p)
	require.NoError(t, err)

	resp, body := a.do(t, "/users/1", "", cookie)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, "user1@example.com")

	resp, _ = a.do(t, "/users/1", "", cookie[:len(cookie)-2]+"xx")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an altered cookie")

	// Revoking the key ends its sessions.
	require.NoError(t, os.WriteFile(a.keysFile, []byte("# no keys\n"), 0o600))
	wait.Until(t, time.Minute, "the revoked key's session to be refused", func() bool {
		resp, _ := a.do(t, "/users/1", "", cookie)
		return resp.StatusCode == http.StatusUnauthorized
	})
}

func mustKeys(t *testing.T, path string) *auth.KeyFile {
	t.Helper()
	k, err := auth.OpenKeyFile(path, auth.KeyFileOptions{})
	require.NoError(t, err)
	return k
}

// With authentication off every caller is an admin, and /readyz says so.
func TestAccessOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.db.insert(testUser(1, "Ada", "Lovelace"))
	status, body := e.get(t, "/users/1")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "user1@example.com", body["data"].(map[string]any)["email_address"])
	status, body = e.get(t, "/readyz")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "off", body["data"].(map[string]any)["auth"])
}
