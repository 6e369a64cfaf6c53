package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/fakeclock"
)

const testAudience = "viswals-api"

// Keys are costly to make: every test shares these.
var (
	keysOnce                    sync.Once
	rsaKey, rsaKey2, rsaKeyWeak *rsa.PrivateKey
	ecKey, ecKeyP384            *ecdsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err == nil {
			rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048)
		}
		if err == nil {
			rsaKeyWeak, err = rsa.GenerateKey(rand.Reader, 1024)
		}
		if err == nil {
			ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err == nil {
			ecKeyP384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		}
		if err != nil {
			panic(err)
		}
	})
}

// issuer is an in-process OIDC provider: discovery document and JWKS.
type issuer struct {
	srv        *httptest.Server
	url        string
	mu         sync.Mutex
	jwks       []jose.JSONWebKey
	discovery  atomic.Int64 // requests for the discovery document
	jwksHits   atomic.Int64 // requests for the key set
	failDiscov atomic.Bool
	issuerName string // the issuer the document claims (default: its URL)
}

func newIssuer(t *testing.T, keys ...jose.JSONWebKey) *issuer {
	t.Helper()
	is := &issuer{jwks: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.discovery.Add(1)
		if is.failDiscov.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		name := is.issuerName
		if name == "" {
			name = is.url
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                name,
			"jwks_uri":                              is.url + "/jwks",
			"authorization_endpoint":                is.url + "/authorize",
			"token_endpoint":                        is.url + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.jwksHits.Add(1)
		is.mu.Lock()
		set := jose.JSONWebKeySet{Keys: is.jwks}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewServer(mux)
	is.url = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) publish(keys ...jose.JSONWebKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.jwks = append(is.jwks, keys...)
}

func pub(kid string, alg jose.SignatureAlgorithm, key any) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(alg), Use: "sig"}
}

// sign returns a compact JWS of claims signed with key under kid.
func sign(t testing.TB, alg jose.SignatureAlgorithm, kid string, key any, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	s, err := jws.CompactSerialize()
	require.NoError(t, err)
	return s
}

// handMade builds a token with any header and signature function, for the
// attacks a signing library refuses to produce.
func handMade(t testing.TB, header map[string]any, claims map[string]any, sig func(signingInput string) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	c, err := json.Marshal(claims)
	require.NoError(t, err)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return in + "." + base64.RawURLEncoding.EncodeToString(sig(in))
}

func newOIDC(t *testing.T, is *issuer, clock *fakeclock.Clock, change func(*OIDCConfig)) *OIDC {
	t.Helper()
	cfg := OIDCConfig{Issuer: is.url, Audience: testAudience, Now: clock.Now, Client: is.srv.Client()}
	if change != nil {
		change(&cfg)
	}
	o, err := NewOIDC(cfg)
	require.NoError(t, err)
	return o
}

func TestOIDCVerify(t *testing.T) {
	t.Parallel()
	testKeys(t)
	is := newIssuer(t,
		pub("rsa1", jose.RS256, &rsaKey.PublicKey),
		pub("ec1", jose.ES256, &ecKey.PublicKey),
		pub("weak", jose.RS256, &rsaKeyWeak.PublicKey),
		pub("p384", "", &ecKeyP384.PublicKey),
	)
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	o := newOIDC(t, is, clock, nil)
	now := clock.Now()
	claims := func(change func(c map[string]any)) map[string]any {
		c := map[string]any{
			"iss": is.url, "aud": testAudience, "sub": "user-42",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "role": "reader",
		}
		if change != nil {
			change(c)
		}
		return c
	}
	rs := func(change func(c map[string]any)) string { return sign(t, jose.RS256, "rsa1", rsaKey, claims(change)) }
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs256With := func(key []byte) string {
		return handMade(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, claims(nil), func(in string) []byte {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(in))
			return m.Sum(nil)
		})
	}
	valid := rs(nil)

	tests := []struct {
		name  string
		token string
		code  string // "" for success
		role  Role
	}{
		{name: "RS256", token: valid, role: RoleReader},
		{name: "ES256", token: sign(t, jose.ES256, "ec1", ecKey, claims(func(c map[string]any) { c["role"] = "admin" })), role: RoleAdmin},
		{name: "role array takes the highest", token: rs(func(c map[string]any) { c["role"] = []any{"reader", "boss", 7, "pii"} }), role: RolePII},
		{name: "audience array", token: rs(func(c map[string]any) { c["aud"] = []string{"other", testAudience} }), role: RoleReader},
		{name: "expired within leeway", token: rs(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() }), role: RoleReader},
		{name: "nbf within leeway", token: rs(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Second).Unix() }), role: RoleReader},
		{name: "nbf past", token: rs(func(c map[string]any) { c["nbf"] = now.Add(-time.Hour).Unix() }), role: RoleReader},
		{name: "no kid tries every key", token: sign(t, jose.RS256, "", rsaKey, claims(nil)), role: RoleReader},

		{name: "expired", token: rs(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), code: viswals.EUNAUTHENTICATED},
		{name: "no exp", token: rs(func(c map[string]any) { delete(c, "exp") }), code: viswals.EUNAUTHENTICATED},
		{name: "exp not a number", token: rs(func(c map[string]any) { c["exp"] = "tomorrow" }), code: viswals.EUNAUTHENTICATED},
		{name: "nbf in the future", token: rs(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }), code: viswals.EUNAUTHENTICATED},
		{name: "wrong audience", token: rs(func(c map[string]any) { c["aud"] = "someone-else" }), code: viswals.EUNAUTHENTICATED},
		{name: "no audience", token: rs(func(c map[string]any) { delete(c, "aud") }), code: viswals.EUNAUTHENTICATED},
		{name: "wrong issuer", token: rs(func(c map[string]any) { c["iss"] = "https://evil.example" }), code: viswals.EUNAUTHENTICATED},
		{name: "issuer with trailing slash", token: rs(func(c map[string]any) { c["iss"] = is.url + "/" }), code: viswals.EUNAUTHENTICATED},
		{name: "no subject", token: rs(func(c map[string]any) { delete(c, "sub") }), code: viswals.EUNAUTHENTICATED},
		{name: "alg none", token: handMade(t, map[string]any{"alg": "none", "typ": "JWT"}, claims(nil), func(string) []byte { return nil }), code: viswals.EUNAUTHENTICATED},
		{name: "alg none with kid", token: handMade(t, map[string]any{"alg": "none", "kid": "rsa1"}, claims(nil), func(string) []byte { return nil }), code: viswals.EUNAUTHENTICATED},
		{name: "HS256 keyed with the public key PEM", token: hs256With(pubPEM), code: viswals.EUNAUTHENTICATED},
		{name: "HS256 keyed with the public key DER", token: hs256With(pubDER), code: viswals.EUNAUTHENTICATED},
		{name: "RS512", token: sign(t, jose.RS512, "rsa1", rsaKey, claims(nil)), code: viswals.EUNAUTHENTICATED},
		{name: "PS256", token: sign(t, jose.PS256, "rsa1", rsaKey, claims(nil)), code: viswals.EUNAUTHENTICATED},
		{name: "ES256 header on the RSA key id", token: sign(t, jose.ES256, "rsa1", ecKey, claims(nil)), code: viswals.EUNAUTHENTICATED},
		{name: "unknown kid", token: sign(t, jose.RS256, "nope", rsaKey, claims(nil)), code: viswals.EUNAUTHENTICATED},
		{name: "known kid, another key", token: sign(t, jose.RS256, "rsa1", rsaKey2, claims(nil)), code: viswals.EUNAUTHENTICATED},
		{name: "RSA key under 2048 bits is not trusted", token: sign(t, jose.RS256, "weak", rsaKeyWeak, claims(nil)), code: viswals.EUNAUTHENTICATED},
		{name: "P-384 key is not trusted for ES256", token: sign(t, jose.ES384, "p384", ecKeyP384, claims(nil)), code: viswals.EUNAUTHENTICATED},
		{name: "truncated signature", token: valid[:len(valid)-10], code: viswals.EUNAUTHENTICATED},
		{name: "truncated at a dot", token: valid[:strings.LastIndexByte(valid, '.')+1], code: viswals.EUNAUTHENTICATED},
		{name: "two parts", token: valid[:strings.LastIndexByte(valid, '.')], code: viswals.EUNAUTHENTICATED},
		{name: "payload swapped", token: swapPayload(valid, claims(func(c map[string]any) { c["role"] = "admin" })), code: viswals.EUNAUTHENTICATED},
		{name: "JSON serialization", token: `{"payload":"e30","protected":"eyJhbGciOiJSUzI1NiJ9","signature":"AA"}`, code: viswals.EUNAUTHENTICATED},
		{name: "empty", token: "", code: viswals.EUNAUTHENTICATED},
		{name: "role missing", token: rs(func(c map[string]any) { delete(c, "role") }), code: viswals.EFORBIDDEN},
		{name: "role unknown", token: rs(func(c map[string]any) { c["role"] = "superuser" }), code: viswals.EFORBIDDEN},
		{name: "role wrong case", token: rs(func(c map[string]any) { c["role"] = "Admin" }), code: viswals.EFORBIDDEN},
		{name: "role not a string", token: rs(func(c map[string]any) { c["role"] = map[string]any{"admin": true} }), code: viswals.EFORBIDDEN},
		{name: "role array without a known role", token: rs(func(c map[string]any) { c["role"] = []string{"x", "y"} }), code: viswals.EFORBIDDEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := o.Verify(context.Background(), tt.token)
			if tt.code == "" {
				require.NoError(t, err)
				assert.Equal(t, "user-42", p.Name)
				assert.Equal(t, tt.role, p.Role)
				assert.Equal(t, KindOIDC, p.Kind)
				assert.False(t, p.Expires.IsZero())
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.code, viswals.ErrorCode(err), "%v", err)
			assertNoToken(t, err, tt.token)
		})
	}
}

// assertNoToken fails if err shows the token or any of its parts.
func assertNoToken(t *testing.T, err error, token string) {
	t.Helper()
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 {
			assert.NotContains(t, err.Error(), part, "an error repeats part of the token")
		}
	}
}

func swapPayload(token string, claims map[string]any) string {
	parts := strings.Split(token, ".")
	c, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(c)
	return strings.Join(parts, ".")
}

func TestOIDCRoleClaim(t *testing.T) {
	t.Parallel()
	testKeys(t)
	is := newIssuer(t, pub("rsa1", jose.RS256, &rsaKey.PublicKey))
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	tests := []struct {
		claim  string
		claims map[string]any
		want   Role
	}{
		{"groups", map[string]any{"groups": []string{"admin"}}, RoleAdmin},
		{"realm_access.roles", map[string]any{"realm_access": map[string]any{"roles": []string{"offline", "pii"}}}, RolePII},
		{"https://viswals.example/role", map[string]any{"https://viswals.example/role": "reader"}, RoleReader},
		{"a.b.c", map[string]any{"a": map[string]any{"b": map[string]any{"c": "admin"}}}, RoleAdmin},
		{"a.b", map[string]any{"a": "not an object"}, RoleNone},
		{"a.b", map[string]any{"a.b": "pii", "a": map[string]any{"b": "admin"}}, RolePII}, // the exact name first
		{"role", map[string]any{"groups": "admin"}, RoleNone},
	}
	for _, tt := range tests {
		t.Run(tt.claim, func(t *testing.T) {
			t.Parallel()
			o := newOIDC(t, is, clock, func(c *OIDCConfig) { c.RoleClaim = tt.claim })
			c := map[string]any{"iss": is.url, "aud": testAudience, "sub": "s", "exp": clock.Now().Add(time.Hour).Unix()}
			for k, v := range tt.claims {
				c[k] = v
			}
			p, err := o.Verify(context.Background(), sign(t, jose.RS256, "rsa1", rsaKey, c))
			if tt.want == RoleNone {
				assert.Equal(t, viswals.EFORBIDDEN, viswals.ErrorCode(err), "%v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.Role)
		})
	}
}

// A key the issuer rotates in is fetched when a token first names it; a
// flood of made-up key ids costs at most one fetch per MinRefresh.
func TestOIDCKeyRotation(t *testing.T) {
	t.Parallel()
	testKeys(t)
	is := newIssuer(t, pub("rsa1", jose.RS256, &rsaKey.PublicKey))
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	o := newOIDC(t, is, clock, func(c *OIDCConfig) { c.MinRefresh = time.Minute })
	ctx := context.Background()
	claims := map[string]any{"iss": is.url, "aud": testAudience, "sub": "s", "exp": clock.Now().Add(time.Hour).Unix(), "role": "pii"}

	_, err := o.Verify(ctx, sign(t, jose.RS256, "rsa1", rsaKey, claims))
	require.NoError(t, err)
	assert.Equal(t, int64(1), is.discovery.Load())
	assert.Equal(t, int64(1), is.jwksHits.Load(), "discovery fetches the key set once")

	// Within MinRefresh of the last fetch, unknown key ids are refused
	// without asking the issuer.
	rotated := sign(t, jose.ES256, "ec2", ecKey, claims)
	for range 20 {
		_, err = o.Verify(ctx, rotated)
		assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
	}
	assert.Equal(t, int64(1), is.jwksHits.Load())

	// After it, one unknown key id triggers one fetch; the key is not
	// there yet, so the token is still refused.
	clock.Advance(time.Minute)
	_, err = o.Verify(ctx, rotated)
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
	assert.Equal(t, int64(2), is.jwksHits.Load())

	// The issuer publishes the key; the next fetch allowed picks it up.
	is.publish(pub("ec2", jose.ES256, &ecKey.PublicKey))
	clock.Advance(time.Minute)
	p, err := o.Verify(ctx, rotated)
	require.NoError(t, err)
	assert.Equal(t, RolePII, p.Role)
	assert.Equal(t, int64(3), is.jwksHits.Load())

	// Both keys are now cached: no more fetches; a known key id with a
	// bad signature does not trigger one either.
	_, err = o.Verify(ctx, sign(t, jose.RS256, "rsa1", rsaKey, claims))
	require.NoError(t, err)
	clock.Advance(time.Minute)
	_, err = o.Verify(ctx, sign(t, jose.RS256, "rsa1", rsaKey2, claims))
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
	assert.Equal(t, int64(3), is.jwksHits.Load())
	assert.Equal(t, int64(1), is.discovery.Load())
}

func TestOIDCDiscovery(t *testing.T) {
	t.Parallel()
	testKeys(t)
	ctx := context.Background()
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))

	t.Run("issuer down, then back", func(t *testing.T) {
		t.Parallel()
		is := newIssuer(t, pub("rsa1", jose.RS256, &rsaKey.PublicKey))
		is.failDiscov.Store(true)
		o := newOIDC(t, is, clock, func(c *OIDCConfig) { c.MinRefresh = -1 })
		token := sign(t, jose.RS256, "rsa1", rsaKey, map[string]any{"iss": is.url, "aud": testAudience, "sub": "s", "exp": clock.Now().Add(time.Hour).Unix(), "role": "reader"})

		// Junk never reaches the issuer.
		_, err := o.Verify(ctx, "a.b.c")
		assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
		assert.Equal(t, int64(0), is.discovery.Load())

		_, err = o.Verify(ctx, token)
		assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "%v", err)
		assert.Error(t, o.Discover(ctx))

		is.failDiscov.Store(false)
		require.NoError(t, o.Discover(ctx))
		_, err = o.Verify(ctx, token)
		assert.NoError(t, err)
	})

	t.Run("retries are spaced", func(t *testing.T) {
		t.Parallel()
		is := newIssuer(t)
		is.failDiscov.Store(true)
		clock := fakeclock.New(clock.Now())
		o := newOIDC(t, is, clock, func(c *OIDCConfig) { c.MinRefresh = time.Minute })
		for range 5 {
			assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(o.Discover(ctx)))
		}
		assert.Equal(t, int64(1), is.discovery.Load())
		clock.Advance(time.Minute)
		assert.Error(t, o.Discover(ctx))
		assert.Equal(t, int64(2), is.discovery.Load())
	})

	t.Run("document for another issuer", func(t *testing.T) {
		t.Parallel()
		is := newIssuer(t, pub("rsa1", jose.RS256, &rsaKey.PublicKey))
		is.issuerName = "https://evil.example"
		o := newOIDC(t, is, clock, nil)
		assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(o.Discover(ctx)))
	})

	t.Run("config", func(t *testing.T) {
		t.Parallel()
		_, err := NewOIDC(OIDCConfig{Audience: "a"})
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
		_, err = NewOIDC(OIDCConfig{Issuer: "https://issuer.example"})
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
	})
}
