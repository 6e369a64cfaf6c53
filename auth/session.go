package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/viswals/viswals"
)

// DefaultSessionTTL is how long a session lasts by default.
const DefaultSessionTTL = 12 * time.Hour

// sessionPrefix starts every session token and names its format, so a
// later format can be told apart.
const sessionPrefix = "vss1."

// maxSessionBytes bounds a session token: a browser keeps cookies up to
// about 4 KiB, and a real session is far shorter.
const maxSessionBytes = 4 << 10

// sessionKeyBytes is the least key length Sessions accepts.
const sessionKeyBytes = 32

// sessionPayload is what a session token carries, signed.
type sessionPayload struct {
	Name    string `json:"n"`
	Role    string `json:"r"`
	Kind    Kind   `json:"k"`
	Expires int64  `json:"e"` // unix seconds
}

// SessionOptions tunes Sessions. The zero value is ready to use.
type SessionOptions struct {
	TTL time.Duration    // lifetime of a session (default DefaultSessionTTL)
	Now func() time.Time // the clock (default time.Now)
}

// Sessions issues and verifies session tokens: a Principal and an expiry,
// signed with HMAC-SHA256. The token is made of base64url and dots, so it
// fits a cookie as it is. It is safe for concurrent use.
type Sessions struct {
	key  []byte
	opts SessionOptions
}

// NewSessions returns Sessions signing with key: at least 32 secret bytes,
// such as emailcrypt's Keyring.SessionKey(). Every process given the same key
// accepts the others' sessions.
func NewSessions(key []byte, opts SessionOptions) (*Sessions, error) {
	if len(key) < sessionKeyBytes {
		return nil, fmt.Errorf("auth: session key is %d bytes, want at least %d", len(key), sessionKeyBytes)
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultSessionTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sessions{key: append([]byte(nil), key...), opts: opts}, nil
}

// Issue returns a session token for p and when it expires: after the TTL,
// or when p's credential expires if that is sooner (Principal.Expires).
func (s *Sessions) Issue(p Principal) (token string, expires time.Time, err error) {
	if p.Name == "" || !p.Role.Valid() || (p.Kind != KindAPIKey && p.Kind != KindOIDC) {
		return "", time.Time{}, viswals.Errorf(viswals.EINVALID, "a session needs a principal with a name, a role and a kind")
	}
	expires = s.opts.Now().Add(s.opts.TTL)
	if !p.Expires.IsZero() && p.Expires.Before(expires) {
		expires = p.Expires
	}
	expires = expires.Truncate(time.Second)
	payload, err := json.Marshal(sessionPayload{Name: p.Name, Role: p.Role.String(), Kind: p.Kind, Expires: expires.Unix()})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: encode session: %w", err)
	}
	signed := sessionPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(s.mac(signed)), expires, nil
}

// Verify returns the principal of a token made by Issue, with Expires set
// to the session's expiry. A token that is malformed, altered, signed with
// another key or expired gives EUNAUTHENTICATED, without repeating it.
func (s *Sessions) Verify(token string) (Principal, error) {
	if len(token) > maxSessionBytes || !strings.HasPrefix(token, sessionPrefix) {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "malformed session")
	}
	dot := strings.LastIndexByte(token, '.')
	signed, sig := token[:dot], token[dot+1:]
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(signed)) {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "invalid session")
	}
	// Signed by us, so the payload was made by Issue: still, check it.
	payload, err := base64.RawURLEncoding.Strict().DecodeString(signed[len(sessionPrefix):])
	if err != nil {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "malformed session")
	}
	var sp sessionPayload
	if err := json.Unmarshal(payload, &sp); err != nil {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "malformed session")
	}
	role, err := ParseRole(sp.Role)
	if err != nil || sp.Name == "" || (sp.Kind != KindAPIKey && sp.Kind != KindOIDC) {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "malformed session")
	}
	expires := time.Unix(sp.Expires, 0)
	if !s.opts.Now().Before(expires) {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "session expired")
	}
	return Principal{Name: sp.Name, Role: role, Kind: sp.Kind, Expires: expires}, nil
}

func (s *Sessions) mac(signed string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}
