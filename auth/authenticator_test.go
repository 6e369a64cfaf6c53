package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/fakeclock"
)

// authFixture is an Authenticator with one API key and an in-process issuer.
type authFixture struct {
	a        *Authenticator
	keys     *keysFile
	key      string // an admin API key, named "ops"
	jwt      string // a reader JWT
	line     string // the key's line in the keys file
	clock    *fakeclock.Clock
	issuer   *issuer
	keyFile  *KeyFile
	verifier *OIDC
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	testKeys(t)
	f := &authFixture{clock: fakeclock.New(time.Unix(1_800_000_000, 0))}
	var err error
	f.key, f.line, err = GenerateKey("ops", RoleAdmin)
	require.NoError(t, err)
	f.keys = newKeysFile(t, f.line+"\n")
	f.keyFile, err = OpenKeyFile(f.keys.path, KeyFileOptions{CheckEvery: -1})
	require.NoError(t, err)
	f.issuer = newIssuer(t, pub("rsa1", jose.RS256, &rsaKey.PublicKey))
	f.verifier = newOIDC(t, f.issuer, f.clock, nil)
	f.jwt = sign(t, jose.RS256, "rsa1", rsaKey, map[string]any{
		"iss": f.issuer.url, "aud": testAudience, "sub": "user-7", "exp": f.clock.Now().Add(time.Hour).Unix(), "role": "reader",
	})
	f.a = NewAuthenticator(f.keyFile, f.verifier)
	return f
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		token string
		want  Principal
		code  string
	}{
		{name: "API key", token: f.key, want: Principal{Name: "ops", Role: RoleAdmin, Kind: KindAPIKey}},
		{name: "JWT", token: f.jwt, want: Principal{Name: "user-7", Role: RoleReader, Kind: KindOIDC, Expires: f.clock.Now().Add(time.Hour)}},
		{name: "empty", token: "", code: viswals.EUNAUTHENTICATED},
		{name: "API key with a space", token: f.key + " ", code: viswals.EUNAUTHENTICATED},
		{name: "API key upper case", token: strings.ToUpper(f.key), code: viswals.EUNAUTHENTICATED},
		{name: "unknown API key", token: KeyPrefix + strings.Repeat("x", 43), code: viswals.EUNAUTHENTICATED},
		{name: "JWT truncated", token: f.jwt[:len(f.jwt)/2], code: viswals.EUNAUTHENTICATED},
		{name: "JWT of 100 kB", token: f.jwt + strings.Repeat("A", 100<<10), code: viswals.EUNAUTHENTICATED},
		{name: "API key of 100 kB", token: f.key + strings.Repeat("A", 100<<10), code: viswals.EUNAUTHENTICATED},
		{name: "dots of 100 kB", token: strings.Repeat(".", 100<<10), code: viswals.EUNAUTHENTICATED},
		{name: "just over the bound", token: strings.Repeat("a", MaxTokenBytes+1), code: viswals.EUNAUTHENTICATED},
		{name: "neither kind", token: "hello", code: viswals.EUNAUTHENTICATED},
		{name: "three dots of junk", token: "a.b.c", code: viswals.EUNAUTHENTICATED},
		{name: "session token as bearer", token: "vss1.e30.AAAA", code: viswals.EUNAUTHENTICATED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := f.a.Authenticate(ctx, tt.token)
			if tt.code == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.want.Name, p.Name)
				assert.Equal(t, tt.want.Role, p.Role)
				assert.Equal(t, tt.want.Kind, p.Kind)
				assert.True(t, tt.want.Expires.Equal(p.Expires), "expires %v, want %v", p.Expires, tt.want.Expires)
				return
			}
			assert.Equal(t, tt.code, viswals.ErrorCode(err), "%v", err)
			assert.Less(t, len(err.Error()), 300, "errors stay short")
			assertNoToken(t, err, tt.token)
		})
	}
}

// Oversized and malformed tokens are refused without reaching the issuer.
func TestAuthenticateRefusesJunkOffline(t *testing.T) {
	t.Parallel()
	testKeys(t)
	is := newIssuer(t)
	a := NewAuthenticator(nil, newOIDC(t, is, fakeclock.New(time.Unix(1_800_000_000, 0)), nil))
	for _, token := range []string{
		strings.Repeat("A", 100<<10),
		"eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
		"a.b.c",
		"...",
	} {
		_, err := a.Authenticate(context.Background(), token)
		assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
	}
	assert.Equal(t, int64(0), is.discovery.Load()+is.jwksHits.Load())
}

func TestAuthenticateKindsNotConfigured(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	ctx := context.Background()
	_, err := NewAuthenticator(nil, f.verifier).Authenticate(ctx, f.key)
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
	_, err = NewAuthenticator(f.keyFile, nil).Authenticate(ctx, f.jwt)
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
	_, err = NewAuthenticator(nil, nil).Recheck(Principal{Name: "ops", Role: RoleAdmin, Kind: KindAPIKey})
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
}

func TestRecheck(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t)
	p, err := f.a.Authenticate(context.Background(), f.key)
	require.NoError(t, err)

	got, err := f.a.Recheck(p)
	require.NoError(t, err)
	assert.Equal(t, p, got)

	f.keys.write(strings.Replace(f.line, " admin ", " reader ", 1) + "\n")
	got, err = f.a.Recheck(p)
	require.NoError(t, err)
	assert.Equal(t, RoleReader, got.Role, "a changed role applies to existing sessions")

	f.keys.write("# revoked\n")
	_, err = f.a.Recheck(p)
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
	_, err = f.a.Authenticate(context.Background(), f.key)
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))

	jwtP := Principal{Name: "user-7", Role: RoleReader, Kind: KindOIDC}
	got, err = f.a.Recheck(jwtP)
	require.NoError(t, err)
	assert.Equal(t, jwtP, got)
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer vsk_abc", "vsk_abc", true},
		{"bearer vsk_abc", "vsk_abc", true},
		{"BEARER a.b.c", "a.b.c", true},
		{"Bearer abc==", "abc==", true},
		{"Bearer a-._~+/9", "a-._~+/9", true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer  vsk_abc", "", false}, // two spaces: the token would start with one
		{"Bearer vsk_abc ", "", false},
		{"Bearer vsk_abc\t", "", false},
		{"Bearer vsk abc", "", false},
		{"Bearer ==", "", false},
		{"Bearer a=b", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Token vsk_abc", "", false},
		{"vsk_abc", "", false},
		{"Bearer vsk_ä", "", false},
		{"Bearer " + strings.Repeat("a", MaxTokenBytes), strings.Repeat("a", MaxTokenBytes), true},
		{"Bearer " + strings.Repeat("a", MaxTokenBytes+1), "", false},
	}
	for _, tt := range tests {
		t.Run(truncate(tt.header, 40), func(t *testing.T) {
			t.Parallel()
			got, err := BearerToken(tt.header)
			if !tt.ok {
				assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
				if len(tt.header) > len("Bearer ")+3 {
					assert.NotContains(t, err.Error(), tt.header[len("Bearer "):])
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// FuzzBearerToken: whatever the header, BearerToken either refuses it or
// returns a bounded token68 string taken as it is from the header.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer vsk_abc", "bearer a.b.c", "Bearer  x", "Basic x", "", "Bearer ==", "Bearer a=b="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, err := BearerToken(header)
		if err != nil {
			if viswals.ErrorCode(err) != viswals.EUNAUTHENTICATED {
				t.Fatalf("code %q for %q", viswals.ErrorCode(err), header)
			}
			if len(header) > 16 && strings.Contains(err.Error(), header[7:]) {
				t.Fatalf("error repeats the header: %v", err)
			}
			return
		}
		if token == "" || len(token) > MaxTokenBytes || !isToken68(token) || !strings.HasSuffix(header, " "+token) {
			t.Fatalf("BearerToken(%q) = %q", header, token)
		}
		if strings.ContainsAny(token, " \t\r\n") {
			t.Fatalf("token %q holds whitespace", token)
		}
	})
}

// FuzzAuthenticate: any token is refused (EUNAUTHENTICATED) unless it is
// the one valid key, and no error repeats it.
func FuzzAuthenticate(f *testing.F) {
	key, line, err := GenerateKey("ops", RoleAdmin)
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	path := dir + "/keys"
	if err := writeFile(path, line+"\n"); err != nil {
		f.Fatal(err)
	}
	kf, err := OpenKeyFile(path, KeyFileOptions{})
	if err != nil {
		f.Fatal(err)
	}
	// An issuer nobody answers at: the fuzzer must never get past the
	// parse to a network call it would wait on.
	o, err := NewOIDC(OIDCConfig{Issuer: "http://127.0.0.1:1", Audience: "a", MinRefresh: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	a := NewAuthenticator(kf, o)
	for _, s := range []string{key, " " + key, strings.ToUpper(key), "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "vsk_", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := a.Authenticate(context.Background(), token)
		if token == key {
			if err != nil || p.Name != "ops" {
				t.Fatalf("the valid key was refused: %v", err)
			}
			return
		}
		switch viswals.ErrorCode(err) {
		case viswals.EUNAUTHENTICATED:
		case viswals.EUNAVAILABLE:
			// A well-formed RS256/ES256 JWS reaches discovery, which fails here.
		default:
			t.Fatalf("Authenticate(%q) = %+v, %v", token, p, err)
		}
		if len(token) >= 8 && strings.Contains(err.Error(), token) {
			t.Fatalf("error repeats the token: %v", err)
		}
	})
}

func BenchmarkAuthenticateAPIKey(b *testing.B) {
	key, line, err := GenerateKey("ops", RoleAdmin)
	require.NoError(b, err)
	path := b.TempDir() + "/keys"
	require.NoError(b, writeFile(path, line+"\n"))
	kf, err := OpenKeyFile(path, KeyFileOptions{})
	require.NoError(b, err)
	a := NewAuthenticator(kf, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}
