package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/internal/fakeclock"
)

// testKeys are API keys of each role, granted by the env's keys file.
type testKeys struct {
	reader, pii, admin string
}

// withKeys turns authentication on with a keys file granting keys, and
// sessions lasting ttl on clock.
func withKeys(t testing.TB, keys *testKeys, clock *fakeclock.Clock, ttl time.Duration) envOption {
	t.Helper()
	var lines []string
	for _, k := range []struct {
		key  *string
		name string
		role auth.Role
	}{{&keys.reader, "dash", auth.RoleReader}, {&keys.pii, "support", auth.RolePII}, {&keys.admin, "ops", auth.RoleAdmin}} {
		key, line, err := auth.GenerateKey(k.name, k.role)
		if err != nil {
			t.Fatal(err)
		}
		*k.key = key
		lines = append(lines, line)
	}
	path := filepath.Join(t.TempDir(), "api-keys")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kf, err := auth.OpenKeyFile(path, auth.KeyFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := auth.NewSessions(bytes.Repeat([]byte("s"), 32), auth.SessionOptions{TTL: ttl, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return func(s *envSettings) {
		s.cfg.AuthOff = false
		s.cfg.Auth = auth.NewAuthenticator(kf, nil)
		s.cfg.Sessions = sessions
	}
}

// sessionBody is a reply of the session routes.
type sessionBody struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   *struct {
		Name    string     `json:"name"`
		Role    string     `json:"role"`
		Kind    string     `json:"kind"`
		Expires *time.Time `json:"expires"`
	} `json:"data"`
}

// do sends a request with headers (name, value pairs) and returns the
// response, its raw body and its decoded envelope.
func do(t testing.TB, c *http.Client, method, u, body string, headers ...string) (*http.Response, string, sessionBody) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(buf.Bytes()) {
		t.Fatalf("%s %s: body is not JSON: %s", method, u, buf.String())
	}
	var sb sessionBody
	json.Unmarshal(buf.Bytes(), &sb) //nolint:errcheck // other routes' data is not a principal

	return resp, buf.String(), sb
}

func tokenJSON(token string) string {
	b, _ := json.Marshal(map[string]string{"token": token})
	return string(b)
}

const jsonCT = "application/json"

func jarClient(t testing.TB, c *http.Client) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := *c
	cc.Jar = jar
	return &cc
}

func TestSessionSignIn(t *testing.T) {
	t.Parallel()
	var keys testKeys
	clock := fakeclock.New(time.Now().Truncate(time.Second))
	e := newEnv(t, withKeys(t, &keys, clock, time.Hour))
	wantExpires := clock.Now().Add(time.Hour)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	for _, tc := range []struct {
		name, key, role, body string
		headers               []string
	}{
		{"JSON", keys.reader, "reader", tokenJSON(keys.reader), []string{"Content-Type", jsonCT}},
		{"JSON with a charset and the page's Origin", keys.pii, "pii", tokenJSON(keys.pii),
			[]string{"Content-Type", "application/json; charset=utf-8", "Origin", e.srv.URL}},
		{"form from the page", keys.admin, "admin", "token=" + url.QueryEscape(keys.admin),
			[]string{"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://" + host}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw, body := do(t, http.DefaultClient, "POST", e.srv.URL+"/session", tc.body, tc.headers...)
			if resp.StatusCode != 200 || body.Status != "success" || body.Data == nil {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			if d := body.Data; d.Role != tc.role || d.Kind != "apikey" || d.Name == "" || d.Expires == nil || !d.Expires.Equal(wantExpires) {
				t.Errorf("data %s, want role %s, kind apikey, expires %v", raw, tc.role, wantExpires)
			}
			if strings.Contains(raw, tc.key) {
				t.Error("the reply repeats the key")
			}
			cookies := resp.Cookies()
			if len(cookies) != 1 {
				t.Fatalf("Set-Cookie %q, want one cookie", resp.Header.Values("Set-Cookie"))
			}
			c := cookies[0]
			if c.Name != "viswals_session" || c.Value == "" || strings.Contains(c.Value, tc.key) ||
				!c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure ||
				c.MaxAge < 3590 || c.MaxAge > 3600 || !c.Expires.Equal(wantExpires) {
				t.Errorf("cookie %q, want viswals_session; HttpOnly; SameSite=Strict; Path=/; not Secure over plain HTTP; an hour",
					resp.Header.Get("Set-Cookie"))
			}
			// The cookie is a session of this principal.
			p, err := e.api.cfg.Sessions.Verify(c.Value)
			if err != nil || p.Role.String() != tc.role {
				t.Errorf("cookie verifies as %v, %v", p, err)
			}
		})
	}
}

func TestSessionCookieSecureUnderTLS(t *testing.T) {
	t.Parallel()
	var keys testKeys
	e := newEnv(t, withKeys(t, &keys, fakeclock.New(time.Now()), 0))
	srv := httptest.NewTLSServer(e.api)
	defer srv.Close()
	resp, raw, _ := do(t, srv.Client(), "POST", srv.URL+"/session", tokenJSON(keys.reader), "Content-Type", jsonCT)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	set := resp.Header.Get("Set-Cookie")
	if c := resp.Cookies(); len(c) != 1 || !c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("Set-Cookie %q, want Secure, HttpOnly, SameSite=Strict", set)
	}
	// Sessions are short: the default lifetime, not a long-lived cookie.
	if c := resp.Cookies(); len(c) == 1 && time.Duration(c[0].MaxAge)*time.Second > auth.DefaultSessionTTL {
		t.Errorf("Max-Age %d outlives the session", c[0].MaxAge)
	}
	resp, raw, _ = do(t, srv.Client(), "DELETE", srv.URL+"/session", "")
	if c := resp.Cookies(); resp.StatusCode != 200 || len(c) != 1 || !c[0].Secure || c[0].MaxAge >= 0 {
		t.Errorf("sign-out under TLS: %d %q %s", resp.StatusCode, resp.Header.Get("Set-Cookie"), raw)
	}
}

// TestSessionFlow signs in, asks who is signed in, signs out, and checks
// that the session ends when it expires.
func TestSessionFlow(t *testing.T) {
	t.Parallel()
	var keys testKeys
	clock := fakeclock.New(time.Now())
	e := newEnv(t, withKeys(t, &keys, clock, time.Hour))
	c := jarClient(t, http.DefaultClient)
	u := e.srv.URL + "/session"

	if resp, raw, _ := do(t, c, "GET", u, ""); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("GET /session before signing in: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), raw)
	}
	if resp, raw, _ := do(t, c, "POST", u, tokenJSON(keys.pii), "Content-Type", jsonCT); resp.StatusCode != 200 {
		t.Fatalf("sign in: %d %s", resp.StatusCode, raw)
	}
	resp, raw, body := do(t, c, "GET", u, "")
	if resp.StatusCode != 200 || body.Data == nil || body.Data.Name != "support" || body.Data.Role != "pii" || body.Data.Kind != "apikey" || body.Data.Expires == nil {
		t.Fatalf("GET /session signed in: %d %s", resp.StatusCode, raw)
	}
	// The cookie opens the API, as the page's EventSource needs.
	if resp, raw, _ := do(t, c, "GET", e.srv.URL+"/users?limit=1", ""); resp.StatusCode != 200 {
		t.Errorf("GET /users with the session cookie: %d %s", resp.StatusCode, raw)
	}
	// A bearer token is answered too, with the key's own (lack of) expiry.
	resp, raw, body = do(t, http.DefaultClient, "GET", u, "", "Authorization", "Bearer "+keys.admin)
	if resp.StatusCode != 200 || body.Data == nil || body.Data.Role != "admin" || body.Data.Expires != nil {
		t.Errorf("GET /session with a bearer key: %d %s", resp.StatusCode, raw)
	}

	// Sign out: the cookie is deleted and nobody is signed in.
	resp, raw, _ = do(t, c, "DELETE", u, "")
	if cs := resp.Cookies(); resp.StatusCode != 200 || len(cs) != 1 || cs[0].Name != "viswals_session" || cs[0].MaxAge >= 0 || !cs[0].HttpOnly {
		t.Fatalf("sign out: %d %q %s", resp.StatusCode, resp.Header.Get("Set-Cookie"), raw)
	}
	if resp, raw, _ := do(t, c, "GET", u, ""); resp.StatusCode != 401 {
		t.Errorf("GET /session after signing out: %d %s", resp.StatusCode, raw)
	}

	// A session ends when it expires, though the browser may still send it.
	if resp, raw, _ := do(t, c, "POST", u, tokenJSON(keys.reader), "Content-Type", jsonCT); resp.StatusCode != 200 {
		t.Fatalf("sign in again: %d %s", resp.StatusCode, raw)
	}
	cookie := c.Jar.Cookies(mustURL(t, u))
	clock.Advance(time.Hour)
	req, _ := http.NewRequest("GET", u, nil)
	for _, ck := range cookie {
		req.AddCookie(ck)
	}
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if len(cookie) != 1 || resp2.StatusCode != 401 {
		t.Errorf("an expired session: %d cookies, GET /session %d", len(cookie), resp2.StatusCode)
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSessionRefused: bad tokens are a 401 that never repeats them, in the
// reply or the log; bad bodies a 400 or 413; requests that may come from
// another site a 403, with no cookie set in any case.
func TestSessionRefused(t *testing.T) {
	t.Parallel()
	var keys testKeys
	e := newEnv(t, withKeys(t, &keys, fakeclock.New(time.Now()), 0))
	host := strings.TrimPrefix(e.srv.URL, "http://")
	big := auth.KeyPrefix + strings.Repeat("A", 9<<10)
	for _, tc := range []struct {
		name, body, secret string
		headers            []string
		status             int
		msg                string
	}{
		{"unknown key", tokenJSON(auth.KeyPrefix + strings.Repeat("x", 43)), "", []string{"Content-Type", jsonCT}, 401, ""},
		{"key with a trailing newline", tokenJSON(keys.admin + "\n"), keys.admin, []string{"Content-Type", jsonCT}, 401, ""},
		{"key in upper case", tokenJSON(strings.ToUpper(keys.admin)), strings.ToUpper(keys.admin), []string{"Content-Type", jsonCT}, 401, ""},
		{"truncated key", tokenJSON(keys.admin[:20]), keys.admin[:20], []string{"Content-Type", jsonCT}, 401, ""},
		{"not a JWT", tokenJSON("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), "eyJzdWIiOiJ4In0", []string{"Content-Type", jsonCT}, 401, ""},
		{"token over the limit", tokenJSON(big), big[:40], []string{"Content-Type", jsonCT}, 401, ""},
		{"empty token", tokenJSON(""), "", []string{"Content-Type", jsonCT}, 401, "missing token"},
		{"no token field", `{}`, "", []string{"Content-Type", jsonCT}, 401, "missing token"},
		{"malformed JSON", `{"token":`, "", []string{"Content-Type", jsonCT}, 400, "JSON"},
		{"body over 16 KiB", tokenJSON(strings.Repeat("A", 17<<10)), "", []string{"Content-Type", jsonCT}, 413, "16 KiB"},
		{"form over 16 KiB", "token=" + strings.Repeat("A", 17<<10), "", []string{"Content-Type", "application/x-www-form-urlencoded", "Origin", e.srv.URL}, 413, "16 KiB"},
		{"form without Origin", "token=" + keys.admin, keys.admin, []string{"Content-Type", "application/x-www-form-urlencoded"}, 403, "Origin"},
		{"text/plain without Origin", tokenJSON(keys.admin), keys.admin, []string{"Content-Type", "text/plain"}, 403, "Origin"},
		{"form from another site", "token=" + keys.admin, keys.admin, []string{"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example"}, 403, "cross-origin"},
		{"JSON from another site", tokenJSON(keys.admin), keys.admin, []string{"Content-Type", jsonCT, "Origin", "http://evil.example"}, 403, "cross-origin"},
		{"opaque Origin", tokenJSON(keys.admin), keys.admin, []string{"Content-Type", jsonCT, "Origin", "null"}, 403, "cross-origin"},
		{"other port", tokenJSON(keys.admin), keys.admin, []string{"Content-Type", jsonCT, "Origin", "http://" + host + "1"}, 403, "cross-origin"},
		{"other content type with Origin", tokenJSON(keys.admin), keys.admin, []string{"Content-Type", "text/plain", "Origin", e.srv.URL}, 400, "JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw, body := do(t, http.DefaultClient, "POST", e.srv.URL+"/session", tc.body, tc.headers...)
			if resp.StatusCode != tc.status || body.Status != "error" || !strings.Contains(body.Error, tc.msg) {
				t.Errorf("status %d, body %.200s; want %d with %q", resp.StatusCode, raw, tc.status, tc.msg)
			}
			if tc.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("a cookie was set: %q", resp.Header.Get("Set-Cookie"))
			}
			if tc.secret != "" && (strings.Contains(raw, tc.secret) || strings.Contains(e.logs.String(), tc.secret)) {
				t.Error("the token was repeated in the reply or the log")
			}
		})
	}
	// Sign-out from another site is refused too.
	resp, raw, _ := do(t, http.DefaultClient, "DELETE", e.srv.URL+"/session", "", "Origin", "https://evil.example")
	if resp.StatusCode != 403 || len(resp.Cookies()) != 0 {
		t.Errorf("DELETE /session from another site: %d %s", resp.StatusCode, raw)
	}
}

// TestSessionAuthOff: with authentication off, everyone is the anonymous
// admin; there is nothing to sign in to and no cookie.
func TestSessionAuthOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *envSettings) { s.cfg.AuthOff = true })
	for _, method := range []string{"GET", "POST"} {
		resp, raw, body := do(t, http.DefaultClient, method, e.srv.URL+"/session", tokenJSON("whatever"), "Content-Type", jsonCT)
		if resp.StatusCode != 200 || body.Data == nil || body.Data.Role != "admin" || body.Data.Kind != "none" || len(resp.Cookies()) != 0 {
			t.Errorf("%s /session: %d %q %s", method, resp.StatusCode, resp.Header.Get("Set-Cookie"), raw)
		}
	}
}

// TestSessionEndsItsStream: a stream opened with a session ends when the
// session does, and its reconnection is refused.
func TestSessionEndsItsStream(t *testing.T) {
	t.Parallel()
	var keys testKeys
	const ttl = time.Hour
	// Sessions issued now end in one to two seconds.
	clock := fakeclock.New(time.Now().Add(-ttl + 1500*time.Millisecond))
	e := newEnv(t, withKeys(t, &keys, clock, ttl))
	e.db.insert(testUser(1, "Ada", "Lovelace"))
	c := jarClient(t, http.DefaultClient)
	c.Timeout = time.Minute // bounds the wait for the server to end the stream
	if resp, raw, _ := do(t, c, "POST", e.srv.URL+"/session", tokenJSON(keys.pii), "Content-Type", jsonCT); resp.StatusCode != 200 {
		t.Fatalf("sign in: %d %s", resp.StatusCode, raw)
	}
	resp, err := c.Get(e.srv.URL + "/users/sse")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body) // returns when the server ends the stream
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), `"first_name":"Ada"`) {
		t.Fatalf("stream: %d, %v, %q", resp.StatusCode, err, body)
	}
	clock.Advance(ttl) // the sessions' clock catches up with the real one
	if resp, raw, _ := do(t, c, "GET", e.srv.URL+"/users/sse", ""); resp.StatusCode != 401 {
		t.Errorf("reconnecting with the ended session: %d %s", resp.StatusCode, raw)
	}
}

// HSTS is sent over TLS only, on every reply (an error and a probe too).
func TestHSTSOnlyOverTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tlsSrv := httptest.NewTLSServer(e.api)
	defer tlsSrv.Close()
	for _, path := range []string{"/healthz", "/users", "/users/x", "/no-such-route"} {
		resp, _, _ := do(t, tlsSrv.Client(), "GET", tlsSrv.URL+path, "")
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("GET %s over TLS: Strict-Transport-Security %q, want max-age=31536000", path, got)
		}
		resp, _, _ = do(t, http.DefaultClient, "GET", e.srv.URL+path, "")
		if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("GET %s over plain HTTP: Strict-Transport-Security %q, want none", path, got)
		}
	}
}
