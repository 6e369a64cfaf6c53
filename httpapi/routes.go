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
func (a *API) routes() []route {
	return []route{
		{"GET /users", readers, handleListUsers(a.deps.Users, a.cfg.CursorKey, a.log, a.audit)},
		{"GET /users/{id}", readers, handleGetUser(a.deps.Users, a.log, a.audit)},
		{"GET /users/sse", readers, handleSSE(a.deps.Feed, a.deps.Keys, a.cfg.CursorKey, a.cfg.SSE, a.log, a.metrics, a.audit)},
		// The page's shell holds no data; it signs in before it streams.
		{"GET /{$}", public, handlePage()},
		{"GET /healthz", public, handleHealthz()},
		{"GET /readyz", public, handleReadyz(a.deps.Checks, a.readyNotes(), a.cfg.ReadyTimeout, a.log)},
		{"GET /metrics", admins, handleMetrics(a.cfg.Registry)},
		{"GET /openapi.yaml", readers, handleOpenAPI()},
	}
}

// newRouter registers the routes and wraps them in the per-request
// logging and metrics, which also answer unknown routes (404) and wrong
// methods (405) with the JSON error envelope.
func (a *API) newRouter() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		mux.Handle(rt.pattern, a.guard(rt.access, rt.handler))
	}
	return observe(mux, a.log, a.metrics)
}

// readyNotes are facts /readyz reports beside its checks.
func (a *API) readyNotes() map[string]string {
	if a.cfg.AuthOff {
		return map[string]string{"auth": "off"}
	}
	return nil
}
