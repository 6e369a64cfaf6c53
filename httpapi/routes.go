package httpapi

import (
	"net/http"
)

// route is one entry of the API's surface.
type route struct {
	pattern string
	handler http.Handler
}

// routes lists every route the API serves, in one place. The OpenAPI
// document must describe exactly these (TestOpenAPIMatchesRoutes).
func (a *API) routes() []route {
	return []route{
		{"GET /users", handleListUsers(a.deps.Users, a.cfg.CursorKey, a.log)},
		{"GET /users/{id}", handleGetUser(a.deps.Users, a.log)},
		{"GET /users/sse", handleSSE(a.deps.Feed, a.deps.Keys, a.cfg.CursorKey, a.cfg.SSE, a.log, a.metrics)},
		{"GET /{$}", handlePage()},
		{"GET /healthz", handleHealthz()},
		{"GET /readyz", handleReadyz(a.deps.Checks, a.cfg.ReadyTimeout, a.log)},
		{"GET /metrics", handleMetrics(a.cfg.Registry)},
		{"GET /openapi.yaml", handleOpenAPI()},
	}
}

// newRouter registers the routes and wraps them in the per-request
// logging and metrics, which also answer unknown routes (404) and wrong
// methods (405) with the JSON error envelope.
func (a *API) newRouter() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	return observe(mux, a.log, a.metrics)
}
