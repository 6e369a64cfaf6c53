package auth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/auth"
)

type principalKey struct{}

// requireRole is the shape of the HTTP middleware: the header to a token,
// the token to a principal, the principal's role to the route's rule, and
// the error codes to statuses.
func requireRole(a *auth.Authenticator, allowed func(auth.Role) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := auth.BearerToken(r.Header.Get("Authorization"))
		var p auth.Principal
		if err == nil {
			p, err = a.Authenticate(r.Context(), token)
		}
		if err == nil && !allowed(p.Role) {
			err = auth.Forbidden(p, r.URL.Path)
		}
		switch viswals.ErrorCode(err) {
		case "":
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		case viswals.EUNAUTHENTICATED:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, viswals.ErrorMessage(err), http.StatusUnauthorized)
		case viswals.EFORBIDDEN:
			http.Error(w, viswals.ErrorMessage(err), http.StatusForbidden)
		default:
			http.Error(w, viswals.ErrorMessage(err), http.StatusServiceUnavailable)
		}
	})
}

func Example() {
	dir, err := os.MkdirTemp("", "keys")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	readerKey, readerLine, err := auth.GenerateKey("dashboard", auth.RoleReader)
	if err != nil {
		panic(err)
	}
	adminKey, adminLine, err := auth.GenerateKey("ops", auth.RoleAdmin)
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(path, []byte(readerLine+"\n"+adminLine+"\n"), 0o600); err != nil {
		panic(err)
	}
	keys, err := auth.OpenKeyFile(path, auth.KeyFileOptions{})
	if err != nil {
		panic(err)
	}
	a := auth.NewAuthenticator(keys, nil) // nil: no OIDC issuer configured

	users := requireRole(a, auth.Role.MayRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.Context().Value(principalKey{}).(auth.Principal)
		fmt.Fprintf(w, "%s sees %s", p.Name, p.Role.ShowEmail("ada@example.com"))
	}))
	metrics := requireRole(a, auth.Role.MayOperate, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "metrics")
	}))

	for _, c := range []struct {
		h           http.Handler
		path, authz string
	}{
		{users, "/users/1", "Bearer " + readerKey},
		{users, "/users/1", "Bearer " + adminKey},
		{metrics, "/metrics", "Bearer " + readerKey},
		{metrics, "/metrics", "Bearer " + adminKey},
		{users, "/users/1", ""},
		{users, "/users/1", "Bearer  " + readerKey},
	} {
		req := httptest.NewRequest(http.MethodGet, c.path, nil)
		if c.authz != "" {
			req.Header.Set("Authorization", c.authz)
		}
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, req)
		fmt.Printf("%s %d %s\n", c.path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	// Output:
	// /users/1 200 dashboard sees a***@example.com
	// /users/1 200 ops sees ada@example.com
	// /metrics 403 role reader may not see /metrics
	// /metrics 200 metrics
	// /users/1 401 missing Authorization header
	// /users/1 401 malformed bearer token
}
