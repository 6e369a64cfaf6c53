package auth

import (
	"context"
	"strings"

	"github.com/viswals/viswals"
)

// MaxTokenBytes bounds a bearer token. Longer ones are refused before any
// parsing: real API keys and JWTs are far shorter.
const MaxTokenBytes = 8 << 10

// Authenticator tells who presents a bearer token. It is safe for
// concurrent use.
type Authenticator struct {
	keys *KeyFile
	oidc *OIDC
}

// NewAuthenticator returns an Authenticator that takes API keys from keys
// and JWTs verified by oidc. Either may be nil: that kind of token is then
// refused.
func NewAuthenticator(keys *KeyFile, oidc *OIDC) *Authenticator {
	return &Authenticator{keys: keys, oidc: oidc}
}

// Authenticate returns the principal presenting token, the part of an
// "Authorization: Bearer" header after the scheme (see BearerToken). A
// missing, malformed, unknown, revoked or expired token gives
// EUNAUTHENTICATED; a valid JWT without a known role gives EFORBIDDEN; an
// OIDC issuer that cannot be reached gives EUNAVAILABLE. No error repeats
// the token.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	switch {
	case token == "":
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "missing bearer token")
	case len(token) > MaxTokenBytes:
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "bearer token longer than %d bytes", MaxTokenBytes)
	case strings.HasPrefix(token, KeyPrefix):
		if a.keys == nil {
			return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "API keys are not accepted here")
		}
		return a.keys.Lookup(token)
	case strings.Count(token, ".") == 2:
		if a.oidc == nil {
			return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "JWTs are not accepted here")
		}
		return a.oidc.Verify(ctx, token)
	default:
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "bearer token is neither an API key nor a JWT")
	}
}

// Recheck returns p as its credential stands now, for a principal that
// was authenticated earlier (from a session): an API key deleted from the
// keys file gives EUNAUTHENTICATED, one whose line now has another role
// gives p with that role. A JWT's principal is returned as it is: its
// session ends when the JWT would have expired.
func (a *Authenticator) Recheck(p Principal) (Principal, error) {
	if p.Kind != KindAPIKey {
		return p, nil
	}
	if a.keys == nil {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "API keys are not accepted here")
	}
	role, ok := a.keys.Role(p.Name)
	if !ok {
		return Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "API key %q was revoked", p.Name)
	}
	p.Role = role
	return p, nil
}

// BearerToken returns the token of an Authorization header value
// "Bearer <token>" (the scheme in any case, one space). The token must be
// non-empty token68 characters (RFC 6750): surrounding or inner
// whitespace, or any other character, makes it malformed rather than
// trimmed. Errors are EUNAUTHENTICATED and never repeat the header.
func BearerToken(authorization string) (string, error) {
	if authorization == "" {
		return "", viswals.Errorf(viswals.EUNAUTHENTICATED, "missing Authorization header")
	}
	if len(authorization) > len("Bearer ")+MaxTokenBytes {
		return "", viswals.Errorf(viswals.EUNAUTHENTICATED, "bearer token longer than %d bytes", MaxTokenBytes)
	}
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", viswals.Errorf(viswals.EUNAUTHENTICATED, "Authorization scheme must be Bearer")
	}
	if !isToken68(token) {
		return "", viswals.Errorf(viswals.EUNAUTHENTICATED, "malformed bearer token")
	}
	return token, nil
}

// isToken68 reports whether s is 1*( ALPHA / DIGIT / "-" / "." / "_" /
// "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range []byte(body) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}
