package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/viswals/viswals"
)

// Defaults of OIDCConfig.
const (
	DefaultRoleClaim  = "role"
	DefaultLeeway     = 30 * time.Second
	DefaultMinRefresh = 5 * time.Second
)

// fetchTimeout bounds one request to the issuer.
const fetchTimeout = 10 * time.Second

// maxJWKSBytes bounds the issuer's key set document.
const maxJWKSBytes = 1 << 20

// minRSABits refuses RSA keys too short to trust.
const minRSABits = 2048

// signingAlgs are the only signature algorithms accepted. A token's header
// names its algorithm; anything else (none, HS256 keyed with a public key,
// ...) is refused before any key is looked at.
var signingAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// OIDCConfig configures an OIDC verifier.
type OIDCConfig struct {
	Issuer    string // the issuer's URL, exactly as its tokens' iss claim
	Audience  string // required in the tokens' aud claim
	RoleClaim string // the claim holding the role (default DefaultRoleClaim)
	// Leeway allows for clock skew on exp and nbf (default DefaultLeeway;
	// negative: none).
	Leeway time.Duration
	// MinRefresh is the shortest time between two fetches of the issuer's
	// discovery document or key set (default DefaultMinRefresh; negative:
	// no limit).
	MinRefresh time.Duration
	Client     *http.Client     // for requests to the issuer (default: one with a timeout)
	Logger     *slog.Logger     // receives failures to reach the issuer (default: discarded)
	Now        func() time.Time // the clock (default time.Now)
}

// OIDC verifies JWTs from one OIDC issuer. It is safe for concurrent use.
// It reaches the issuer only when it needs to: on the first token, and
// when a token names a key it does not have.
type OIDC struct {
	cfg      OIDCConfig
	keys     *jwks
	verifier atomic.Pointer[oidc.IDTokenVerifier] // set once discovery succeeds

	mu    sync.Mutex // one discovery at a time; guards tried
	tried time.Time  // last discovery attempt
}

// NewOIDC returns a verifier for cfg's issuer. It does not reach the
// issuer: call Discover to do it at start and learn early whether it works.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" {
		return nil, viswals.Errorf(viswals.EINVALID, "OIDC issuer is required")
	}
	if cfg.Audience == "" {
		return nil, viswals.Errorf(viswals.EINVALID, "OIDC audience is required")
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = DefaultRoleClaim
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	cfg.Leeway = max(cfg.Leeway, 0)
	if cfg.MinRefresh == 0 {
		cfg.MinRefresh = DefaultMinRefresh
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: fetchTimeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &OIDC{cfg: cfg, keys: &jwks{client: cfg.Client, minRefresh: cfg.MinRefresh, now: cfg.Now, logger: cfg.Logger}}, nil
}

// Discover fetches the issuer's discovery document and key set, unless it
// has already been done. It fails with EUNAVAILABLE if the issuer cannot be
// reached or tried less than MinRefresh ago.
func (o *OIDC) Discover(ctx context.Context) error {
	_, err := o.discover(ctx)
	return err
}

func (o *OIDC) discover(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	if v := o.verifier.Load(); v != nil {
		return v, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if v := o.verifier.Load(); v != nil {
		return v, nil
	}
	now := o.cfg.Now()
	if o.cfg.MinRefresh > 0 && !o.tried.IsZero() && now.Sub(o.tried) < o.cfg.MinRefresh {
		return nil, viswals.Errorf(viswals.EUNAVAILABLE, "OIDC issuer could not be reached; retrying shortly")
	}
	o.tried = now
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, o.cfg.Client), o.cfg.Issuer)
	if err != nil {
		o.cfg.Logger.Warn("OIDC discovery failed", "issuer", o.cfg.Issuer, "err", err)
		return nil, viswals.Errorf(viswals.EUNAVAILABLE, "OIDC issuer could not be reached")
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURI == "" {
		o.cfg.Logger.Warn("OIDC discovery document names no jwks_uri", "issuer", o.cfg.Issuer)
		return nil, viswals.Errorf(viswals.EUNAVAILABLE, "OIDC issuer's discovery document names no key set")
	}
	o.keys.url = meta.JWKSURI
	if err := o.keys.fetch(ctx); err != nil {
		o.cfg.Logger.Warn("OIDC key set could not be fetched", "url", meta.JWKSURI, "err", err)
		return nil, viswals.Errorf(viswals.EUNAVAILABLE, "OIDC issuer's key set could not be fetched")
	}
	algs := make([]string, len(signingAlgs))
	for i, a := range signingAlgs {
		algs[i] = string(a)
	}
	v := oidc.NewVerifier(o.cfg.Issuer, o.keys, &oidc.Config{
		ClientID:             o.cfg.Audience,
		SupportedSigningAlgs: algs,
		// go-oidc checks exp without leeway and nbf with a fixed five
		// minutes; Verify checks both with the configured leeway.
		SkipExpiryCheck: true,
	})
	o.verifier.Store(v)
	return v, nil
}

// claims are the registered claims Verify checks itself.
type claims struct {
	Subject   string           `json:"sub"`
	Expiry    *jsonNumericDate `json:"exp"`
	NotBefore *jsonNumericDate `json:"nbf"`
}

// jsonNumericDate is a JWT NumericDate: seconds since the epoch, possibly
// with a fraction.
type jsonNumericDate float64

// time returns d as a time; dates beyond the year 5000 either way are
// clamped there, which keeps the conversion defined.
func (d jsonNumericDate) time() time.Time {
	const bound = 1e11
	sec := min(max(float64(d), -bound), bound)
	whole := math.Floor(sec)
	return time.Unix(int64(whole), int64((sec-whole)*1e9))
}

// Verify returns the principal of a JWT from the issuer. Every failure of
// the token is EUNAUTHENTICATED, a valid token without a known role is
// EFORBIDDEN, and an issuer that cannot be reached for discovery is
// EUNAVAILABLE. No error repeats the token.
func (o *OIDC) Verify(ctx context.Context, token string) (Principal, error) {
	// Parse and check the algorithm before anything reaches the network:
	// junk is refused at the cost of a parse.
	if _, err := jose.ParseSignedCompact(token, signingAlgs); err != nil {
		return Principal{}, invalidToken("not a JWT signed with RS256 or ES256")
	}
	verifier, err := o.discover(ctx)
	if err != nil {
		return Principal{}, err
	}
	idt, err := verifier.Verify(ctx, token)
	if err != nil {
		return Principal{}, invalidToken(truncate(err.Error(), 160))
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		return Principal{}, invalidToken("claims are not valid JSON")
	}
	now := o.cfg.Now()
	switch {
	case c.Expiry == nil:
		return Principal{}, invalidToken("no exp claim")
	case now.After(c.Expiry.time().Add(o.cfg.Leeway)):
		return Principal{}, invalidToken("expired")
	case c.NotBefore != nil && now.Add(o.cfg.Leeway).Before(c.NotBefore.time()):
		return Principal{}, invalidToken("not valid yet (nbf)")
	case c.Subject == "":
		return Principal{}, invalidToken("no sub claim")
	}
	var raw map[string]json.RawMessage
	if err := idt.Claims(&raw); err != nil {
		return Principal{}, invalidToken("claims are not a JSON object")
	}
	role := roleFromClaim(raw, o.cfg.RoleClaim)
	if !role.Valid() {
		return Principal{}, viswals.Errorf(viswals.EFORBIDDEN, "token carries no known role in claim %q", o.cfg.RoleClaim)
	}
	return Principal{Name: c.Subject, Role: role, Kind: KindOIDC, Expires: c.Expiry.time()}, nil
}

// invalidToken is the error for a JWT that fails a check; why is short and
// never holds the token.
func invalidToken(why string) error {
	return viswals.Errorf(viswals.EUNAUTHENTICATED, "invalid bearer token: %s", why)
}

// roleFromClaim returns the highest known role in the claim named name:
// looked up by exact name, else, for a dotted name, as a path into nested
// objects. The claim is a string or an array of strings; other values are
// no role.
func roleFromClaim(claims map[string]json.RawMessage, name string) Role {
	v, ok := claims[name]
	if !ok && strings.Contains(name, ".") {
		obj := claims
		parts := strings.Split(name, ".")
		for i, p := range parts {
			v, ok = obj[p]
			if !ok || i == len(parts)-1 {
				break
			}
			obj = nil
			if json.Unmarshal(v, &obj) != nil {
				ok = false
				break
			}
		}
	}
	if !ok {
		return RoleNone
	}
	var one string
	if json.Unmarshal(v, &one) == nil {
		r, _ := ParseRole(one)
		return r
	}
	var many []json.RawMessage
	if json.Unmarshal(v, &many) != nil {
		return RoleNone
	}
	best := RoleNone
	for _, m := range many {
		if json.Unmarshal(m, &one) != nil {
			continue
		}
		if r, err := ParseRole(one); err == nil && r > best {
			best = r
		}
	}
	return best
}

// jwks is the issuer's key set. It implements oidc.KeySet like go-oidc's
// RemoteKeySet, which fetches the set again on every failed verification;
// this one fetches only for a key id it does not hold, and at most once
// every minRefresh, so made-up key ids cost neither the issuer nor the
// caller a round trip.
type jwks struct {
	url        string // set once by discovery, before any use
	client     *http.Client
	minRefresh time.Duration
	now        func() time.Time
	logger     *slog.Logger

	mu   sync.RWMutex
	keys []jose.JSONWebKey

	fetchMu sync.Mutex // one fetch at a time; guards fetched
	fetched time.Time
}

var errNoKey = errors.New("no key of the issuer verifies the token")

// VerifySignature implements oidc.KeySet.
func (k *jwks) VerifySignature(ctx context.Context, token string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(token, signingAlgs)
	if err != nil {
		return nil, errors.New("malformed JWT")
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	h := jws.Signatures[0].Header
	payload, known, err := k.verify(jws, h.KeyID, h.Algorithm)
	if err == nil || known || h.KeyID == "" {
		return payload, err
	}
	if err := k.refresh(ctx, h.KeyID); err != nil {
		return nil, err
	}
	payload, known, err = k.verify(jws, h.KeyID, h.Algorithm)
	if !known {
		return nil, errors.New("unknown key id")
	}
	return payload, err
}

// verify tries the cached keys that match kid (any key when kid is empty)
// and alg. known reports whether any key has that id.
func (k *jwks) verify(jws *jose.JSONWebSignature, kid, alg string) (payload []byte, known bool, err error) {
	k.mu.RLock()
	keys := k.keys
	k.mu.RUnlock()
	for i := range keys {
		key := &keys[i]
		if kid != "" && key.KeyID != kid {
			continue
		}
		known = kid != ""
		if !keyFits(key, alg) {
			continue
		}
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, true, nil
		}
	}
	return nil, known, errNoKey
}

// keyFits reports whether key may verify a signature made with alg: its
// declared algorithm, if any, is alg and its type is the one alg needs.
func keyFits(key *jose.JSONWebKey, alg string) bool {
	if key.Algorithm != "" && key.Algorithm != alg {
		return false
	}
	switch pub := key.Key.(type) {
	case *rsa.PublicKey:
		return alg == string(jose.RS256)
	case *ecdsa.PublicKey:
		return alg == string(jose.ES256) && pub.Curve == elliptic.P256()
	}
	return false
}

// refresh fetches the key set for a token that names kid, unless another
// fetch has brought kid meanwhile or the last fetch was under minRefresh
// ago.
func (k *jwks) refresh(ctx context.Context, kid string) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.RLock()
	for _, key := range k.keys {
		if key.KeyID == kid {
			k.mu.RUnlock()
			return nil
		}
	}
	k.mu.RUnlock()
	if k.minRefresh > 0 && k.now().Sub(k.fetched) < k.minRefresh {
		return errors.New("unknown key id")
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	if err := k.fetchLocked(ctx); err != nil {
		k.logger.Warn("OIDC key set could not be fetched", "url", k.url, "err", err)
		return errors.New("unknown key id and the issuer's key set could not be fetched")
	}
	return nil
}

func (k *jwks) fetch(ctx context.Context) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	return k.fetchLocked(ctx)
}

// fetchLocked replaces the cached keys by the issuer's current set. Keys
// that are not public RSA (2048 bits or more) or P-256 keys for signing
// are left out.
func (k *jwks) fetchLocked(ctx context.Context) error {
	k.fetched = k.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return err
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("key set is not JSON: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if key.UnmarshalJSON(raw) != nil || !key.IsPublic() || (key.Use != "" && key.Use != "sig") {
			continue
		}
		switch pub := key.Key.(type) {
		case *rsa.PublicKey:
			if pub.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey:
			if pub.Curve != elliptic.P256() {
				continue
			}
		default:
			continue
		}
		keys = append(keys, key)
	}
	k.mu.Lock()
	k.keys = keys
	k.mu.Unlock()
	return nil
}
