package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/auth"
)

// maxSessionBody bounds the body of POST /session: a token is at most
// auth.MaxTokenBytes, and the JSON or form around it is small.
const maxSessionBody = 16 << 10

// sessionData is what the session routes say about the principal.
type sessionData struct {
	Name    string     `json:"name"`
	Role    auth.Role  `json:"role"`
	Kind    auth.Kind  `json:"kind"`
	Expires *time.Time `json:"expires"` // null: lasts until revoked
}

type sessionReply struct {
	Status string       `json:"status"`
	Data   *sessionData `json:"data"` // null once signed out
}

func writeSession(w http.ResponseWriter, p auth.Principal) {
	d := &sessionData{Name: p.Name, Role: p.Role, Kind: p.Kind}
	if !p.Expires.IsZero() {
		t := p.Expires.UTC()
		d.Expires = &t
	}
	writeJSON(w, http.StatusOK, sessionReply{Status: "success", Data: d})
}

// handleSessionCreate signs in: the body's token (an API key or an OIDC
// JWT) is authenticated and exchanged for a session cookie, so that the
// page's stream is authenticated without the page's scripts holding a
// token that an injected script could steal. The token is never repeated, in the reply or the log.
func handleSessionCreate(authn *auth.Authenticator, sessions *auth.Sessions, authOff bool, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkSameOrigin(r); err != nil {
			writeError(w, r, log, err)
			return
		}
		if authOff {
			// Nothing to sign in to: everyone is the anonymous admin.
			writeSession(w, anonymous)
			return
		}
		if sessions == nil {
			writeError(w, r, log, viswals.Errorf(viswals.ENOTFOUND, "sessions are not enabled: send a bearer token"))
			return
		}
		token, err := readSessionToken(w, r)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeErrorStatus(w, http.StatusRequestEntityTooLarge, "body larger than 16 KiB")
				return
			}
			writeError(w, r, log, err)
			return
		}
		p, err := authn.Authenticate(r.Context(), token)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		value, expires, err := sessions.Issue(p)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		http.SetCookie(w, sessionCookieFor(r, value, expires))
		p.Expires = expires
		writeSession(w, p)
	})
}

// sessionCookieFor is the cookie holding a session: out of the page's
// scripts' reach (HttpOnly), never sent by another site's requests
// (SameSite=Strict), and only over TLS when the page came over TLS.
func sessionCookieFor(r *http.Request, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{
		Name: SessionCookie, Value: value, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
	if value == "" {
		c.MaxAge = -1 // Max-Age=0 on the wire: delete it now
		return c
	}
	c.Expires = expires
	c.MaxAge = max(1, int(time.Until(expires).Seconds()))
	return c
}

// handleSessionGet tells who is signed in, by the session cookie or a
// bearer token: the guard in front of it answers 401 for nobody.
func handleSessionGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principalOf(r.Context())
		writeSession(w, p)
	})
}

// handleSessionDelete signs out: the cookie is deleted. It needs no
// session, so that an expired one can be cleared too.
func handleSessionDelete(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkSameOrigin(r); err != nil {
			writeError(w, r, log, err)
			return
		}
		http.SetCookie(w, sessionCookieFor(r, "", time.Time{}))
		writeJSON(w, http.StatusOK, sessionReply{Status: "success"})
	})
}

// readSessionToken reads the token from a JSON body {"token": "..."} or a
// form field token.
func readSessionToken(w http.ResponseWriter, r *http.Request) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxSessionBody)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var token string
	switch mt {
	case "application/json":
		var body struct {
			Token string `json:"token"`
		}
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&body); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return "", err
			}
			return "", viswals.Errorf(viswals.EINVALID, "body must be JSON {\"token\": \"...\"}")
		}
		token = body.Token
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return "", err
			}
			return "", viswals.Errorf(viswals.EINVALID, "malformed form")
		}
		token = r.PostFormValue("token")
	default:
		return "", viswals.Errorf(viswals.EINVALID, "body must be JSON {\"token\": \"...\"} or a form with the field token")
	}
	if token == "" {
		return "", viswals.Errorf(viswals.EUNAUTHENTICATED, "missing token")
	}
	return token, nil
}

// checkSameOrigin guards the session routes that change state against
// cross-site requests. SameSite=Strict keeps the cookie off another
// site's requests, which protects sign-out but not sign-in: a page
// elsewhere could post its own key and sign the victim in as someone else
// (login CSRF). So a request is taken only if a browser would not have
// sent it for another site without asking: its Origin, when present, must
// be this host; without Origin it must be JSON, which a cross-site form
// cannot send and a cross-site fetch may send only after a preflight this
// API never grants. Origin is compared by host only, since behind a proxy
// that ends TLS the scheme the server sees is not the browser's.
func checkSameOrigin(r *http.Request) error {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return viswals.Errorf(viswals.EFORBIDDEN, "cross-origin request refused")
		}
		return nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" && r.Method != http.MethodDelete {
		return viswals.Errorf(viswals.EFORBIDDEN, "a request without Origin must be application/json")
	}
	return nil
}
