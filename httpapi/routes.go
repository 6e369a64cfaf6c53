package httpapi

import (
	"net/http"
)

// route is one entry of the API's surface: its pattern, who may use it,
// and its handler.
type route struct {
	pattern string
	access  access
	handler http.Handler
}

// routes lists every route the API serves, in one place. The OpenAPI
// document must describe exactly these (TestOpenAPIMatchesRoutes).
// With OpsOnly it serves the operational routes alone.
func (a *API) routes() []route {
	ops := []route{
		{"GET /healthz", public, handleHealthz()},
		{"GET /readyz", public, handleReadyz(a.readiness(), a.cfg.ReadyTimeout, a.log)},
		{"GET /metrics", admins, handleMetrics(a.cfg.Registry)},
	}
	if a.cfg.OpsOnly {
		return ops
	}
	return append([]route{
		{"GET /users", readers, handleListUsers(a.deps.Users, a.cfg.CursorKey, a.log, a.audit)},
		{"GET /users/{id}", readers, handleGetUser(a.deps.Users, a.log, a.audit)},
		// Loads hold counts and times, no personal data: readers may see them.
		{"GET /loads", readers, handleListLoads(a.deps.Loads, a.log)},
		{"GET /loads/{id}", readers, handleGetLoad(a.deps.Loads, a.log)},
		{"GET /users/sse", readers, a.capStreams(handleSSE(a.deps.Feed, a.deps.Keys, a.cfg.CursorKey, a.cfg.SSE, a.log, a.metrics, a.audit))},
		// The page's shell holds no data; it signs in before it streams.
		{"GET /{$}", public, handlePage()},
		// Signing in and out needs no session; asking who is signed in does.
		{"POST /session", public, handleSessionCreate(a.cfg.Auth, a.cfg.Sessions, a.cfg.AuthOff, a.log)},
		{"GET /session", readers, handleSessionGet()},
		{"DELETE /session", public, handleSessionDelete(a.log)},
		{"GET /openapi.yaml", readers, handleOpenAPI()},
	}, ops...)
}

// newRouter registers the routes and wraps them in the per-request
// logging and metrics, which also answer unknown routes (404) and wrong
// methods (405) with the JSON error envelope. Every route but the health
// checks answers only for the allowed hosts and within its caller's
// request rate; the health checks stay open to probes, which address the
// server by whatever name or IP they have, and hold no data.
func (a *API) newRouter() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		h := a.guard(rt.access, rt.handler)
		if !healthRoute(rt.pattern) {
			// The Host check comes first, so that a rebinding page learns
			// nothing, not even whether its token is good; the rate limit
			// (and the stream caps) after authentication, which names
			// whose budget a request spends.
			h = a.checkHost(a.guard(rt.access, a.rateLimit(rt.handler)))
		}
		mux.Handle(rt.pattern, h)
	}
	return observe(mux, a.log, a.metrics, a.cfg.SlowRequest)
}

// readiness is what /readyz checks and reports.
func (a *API) readiness() readiness {
	r := readiness{checks: a.deps.Checks, degradable: a.deps.Degradable, roles: a.deps.Roles}
	if a.cfg.AuthOff {
		r.notes = map[string]string{"auth": "off"}
	}
	return r
}

func healthRoute(pattern string) bool {
	return pattern == "GET /healthz" || pattern == "GET /readyz"
}
