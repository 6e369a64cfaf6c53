package auth

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/internal/fakeclock"
)

func newSessions(t *testing.T, key []byte, clock *fakeclock.Clock, ttl time.Duration) *Sessions {
	t.Helper()
	s, err := NewSessions(key, SessionOptions{TTL: ttl, Now: clock.Now})
	require.NoError(t, err)
	return s
}

func sessionKey(t *testing.T, fill byte) []byte {
	t.Helper()
	ring, err := emailcrypt.New(bytes.Repeat([]byte{fill}, emailcrypt.KeySize))
	require.NoError(t, err)
	return ring.SessionKey()
}

func TestSessions(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	s := newSessions(t, sessionKey(t, 1), clock, 0)
	ops := Principal{Name: "ops", Role: RoleAdmin, Kind: KindAPIKey}

	token, expires, err := s.Issue(ops)
	require.NoError(t, err)
	assert.Equal(t, clock.Now().Add(DefaultSessionTTL), expires)
	assert.True(t, strings.HasPrefix(token, sessionPrefix))
	assert.NotContains(t, token, "=", "cookie-safe: base64url without padding")
	p, err := s.Verify(token)
	require.NoError(t, err)
	assert.Equal(t, ops.Name, p.Name)
	assert.Equal(t, ops.Role, p.Role)
	assert.Equal(t, ops.Kind, p.Kind)
	assert.True(t, expires.Equal(p.Expires))

	// Another process with the same key accepts it; another key does not.
	_, err = newSessions(t, sessionKey(t, 1), clock, 0).Verify(token)
	require.NoError(t, err)
	_, err = newSessions(t, sessionKey(t, 2), clock, 0).Verify(token)
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))

	// Expiry.
	clock.Advance(DefaultSessionTTL - time.Second)
	_, err = s.Verify(token)
	require.NoError(t, err)
	clock.Advance(time.Second)
	_, err = s.Verify(token)
	assert.Equal(t, "session expired", viswals.ErrorMessage(err))
}

func TestSessionNeverOutlivesItsCredential(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	s := newSessions(t, sessionKey(t, 1), clock, time.Hour)
	jwtExp := clock.Now().Add(10 * time.Minute)
	token, expires, err := s.Issue(Principal{Name: "u", Role: RoleReader, Kind: KindOIDC, Expires: jwtExp})
	require.NoError(t, err)
	assert.Equal(t, jwtExp, expires)
	clock.Advance(10 * time.Minute)
	_, err = s.Verify(token)
	assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))

	_, expires, err = s.Issue(Principal{Name: "u", Role: RoleReader, Kind: KindOIDC, Expires: clock.Now().Add(time.Hour * 5)})
	require.NoError(t, err)
	assert.Equal(t, clock.Now().Add(time.Hour), expires, "the TTL caps a long-lived credential")
}

func TestSessionTampering(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	s := newSessions(t, sessionKey(t, 1), clock, 0)
	token, _, err := s.Issue(Principal{Name: "r", Role: RoleReader, Kind: KindAPIKey})
	require.NoError(t, err)
	dot := strings.LastIndexByte(token, '.')
	forged := func(payload string) string {
		return sessionPrefix + base64.RawURLEncoding.EncodeToString([]byte(payload)) + token[dot:]
	}
	tests := map[string]string{
		"empty":                "",
		"prefix only":          sessionPrefix,
		"no signature":         token[:dot],
		"empty signature":      token[:dot+1],
		"truncated":            token[:len(token)-3],
		"signature changed":    token[:dot+1] + otherChar(token[dot+1]) + token[dot+2:],
		"role raised":          forged(`{"n":"r","r":"admin","k":"apikey","e":1900000000}`),
		"expiry extended":      forged(`{"n":"r","r":"reader","k":"apikey","e":9900000000}`),
		"other version":        "vss2." + token[len(sessionPrefix):],
		"oversized":            token + strings.Repeat("A", maxSessionBytes),
		"API key as session":   KeyPrefix + strings.Repeat("A", 43),
		"padding added":        token + "=",
		"spaces":               " " + token,
		"signature duplicated": token + token[dot:],
	}
	for name, bad := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if bad == token {
				t.Skip("the change gave the same token")
			}
			_, err := s.Verify(bad)
			assert.Equal(t, viswals.EUNAUTHENTICATED, viswals.ErrorCode(err))
		})
	}
}

func TestSessionsErrors(t *testing.T) {
	t.Parallel()
	_, err := NewSessions(make([]byte, 16), SessionOptions{})
	assert.Error(t, err)
	s, err := NewSessions(make([]byte, 32), SessionOptions{})
	require.NoError(t, err)
	for _, p := range []Principal{
		{Role: RoleReader, Kind: KindAPIKey},
		{Name: "x", Kind: KindAPIKey},
		{Name: "x", Role: RoleReader},
		{Name: "x", Role: RoleReader, Kind: "none"},
	} {
		_, _, err := s.Issue(p)
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%+v", p)
	}
}

// otherChar returns a base64url character other than c.
func otherChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}
