package httpapi

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/auth"
)

// SessionCookie is the cookie holding the page's session token.
const SessionCookie = "viswals_session"

// access is what a route asks of its caller.
type access uint8

const (
	public  access = iota // anyone: health checks, the page's shell, signing in
	readers               // a principal whose role may read users
	admins                // a principal whose role may operate (metrics, operators' views)
)

// anonymous is the principal of every request when authentication is off.
var anonymous = auth.Principal{Name: "anonymous", Role: auth.RoleAdmin, Kind: "none"}

// caller is what guard learns of a request: who makes it, and the id the
// audit log knows it by. One value in the context, one allocation.
type caller struct {
	principal auth.Principal
	requestID string
}

type callerKey struct{}

// withPrincipal returns ctx carrying the request's principal and id.
func withPrincipal(ctx context.Context, p auth.Principal, requestID string) context.Context {
	return context.WithValue(ctx, callerKey{}, &caller{principal: p, requestID: requestID})
}

// principalOf returns the principal guard put in ctx.
func principalOf(ctx context.Context) (auth.Principal, bool) {
	c, ok := ctx.Value(callerKey{}).(*caller)
	if !ok {
		return auth.Principal{}, false
	}
	return c.principal, true
}

// guard lets a request through to next only when its principal may use a
// route of level: with a bearer token, or the page's session cookie. The
// principal and the request's id (see observe) go into the request's
// context, for the audit log.
func (a *API) guard(level access, next http.Handler) http.Handler {
	if level == public {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r)
		if err == nil && !allows(level, p.Role) {
			err = auth.Forbidden(p, r.Pattern)
		}
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		var id string
		if v := w.Header()["X-Request-Id"]; len(v) > 0 { // set by observe
			id = v[0]
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p, id)))
	})
}

func allows(level access, r auth.Role) bool {
	switch level {
	case readers:
		return r.MayRead()
	case admins:
		return r.MayOperate()
	}
	return true
}

// authenticate finds the request's principal: the bearer token's when
// the request has an Authorization header, else the session cookie's.
func (a *API) authenticate(r *http.Request) (auth.Principal, error) {
	if a.cfg.AuthOff {
		return anonymous, nil
	}
	if h := r.Header.Get("Authorization"); h != "" || a.cfg.Sessions == nil {
		token, err := auth.BearerToken(h)
		if err != nil {
			return auth.Principal{}, err
		}
		return a.cfg.Auth.Authenticate(r.Context(), token)
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return auth.Principal{}, viswals.Errorf(viswals.EUNAUTHENTICATED, "missing Authorization header")
	}
	p, err := a.cfg.Sessions.Verify(c.Value)
	if err != nil {
		return auth.Principal{}, err
	}
	// A session outlives nothing it came from: a revoked key or a
	// changed role takes effect at once.
	return a.cfg.Auth.Recheck(p)
}

func newRequestID() string {
	var b [8]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// principalRole is the role of the request's principal; none masks.
func principalRole(ctx context.Context) auth.Role {
	p, _ := principalOf(ctx)
	return p.Role
}

// showEmail is what the request's principal may see of email.
func showEmail(ctx context.Context, email string) string {
	p, _ := principalOf(ctx) // none: the zero role, which masks
	return p.Role.ShowEmail(email)
}

// audit writes the audit line of a reply that revealed n decrypted emails:
// who, with which role, on which route, how many, and the request id;
// never an email.
func (a *API) audit(r *http.Request, n int) {
	ctx := r.Context()
	c, _ := ctx.Value(callerKey{}).(*caller)
	if n == 0 || c == nil || !c.principal.Role.SeesEmails() {
		return
	}
	// The record is built here rather than by Logger.LogAttrs, which would
	// walk the stack for a caller that is always this function: this runs
	// on the hot path of every read that shows emails.
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "emails revealed", 0)
	rec.AddAttrs(slog.String("principal", c.principal.Name), slog.String("kind", string(c.principal.Kind)),
		slog.String("role", c.principal.Role.String()), slog.String("route", r.Pattern),
		slog.Int("emails", n), slog.String("request_id", c.requestID))
	a.auditLog.Handle(ctx, rec) //nolint:errcheck // nowhere to report a failing log
}
