package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/changefeed"
)

// Config holds the API's settings.
type Config struct {
	// CursorKey signs cursors and SSE event ids; at least 32 bytes. Take
	// it from emailcrypt's Keyring.CursorKey so every API process shares it.
	CursorKey []byte
	// Registry receives the API's metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Logger gets one line per request, at debug unless it answered with
	// a server error or took SlowRequest or longer (then at info); nil
	// discards.
	Logger *slog.Logger
	// SlowRequest: requests that take this long are logged at info; 0:
	// only server errors are.
	SlowRequest time.Duration
	// ReadyTimeout bounds each readiness check (default 1s).
	ReadyTimeout time.Duration
	// OpsOnly serves only /healthz, /readyz and /metrics, for a process
	// that ingests without serving the API: its probes and scrapes work
	// as an API process's do. Deps need only Checks then, and CursorKey
	// may be empty.
	OpsOnly bool
	SSE     SSEOptions

	// Auth authenticates bearer tokens; required unless AuthOff.
	Auth *auth.Authenticator
	// Sessions signs the page's session cookies; nil: no sessions, bearer
	// tokens only.
	Sessions *auth.Sessions
	// AuthOff serves every route to anyone, as an admin. For development
	// only: the caller must say so loudly.
	AuthOff bool
	// Audit gets one line per reply that revealed decrypted emails; nil:
	// Logger with logger=audit.
	Audit *slog.Logger

	Limits Limits
}

// Deps are what the API reads from; Users, Keys and Feed are required.
type Deps struct {
	Users UserReader
	// Keys open the emails of the changefeed's users.
	Keys Opener
	// Feed serves GET /users/sse; its owner runs it (Hub.Run).
	Feed *changefeed.Hub
	// Loads serves GET /loads; nil: no loads are known.
	Loads LoadReader
	// Checks are the readiness checks by name, e.g. "postgres", "redis",
	// "rabbitmq".
	Checks map[string]Check
	// Degradable names the checks whose failure /readyz reports without
	// failing: a cache the process works on without (reads fall back to
	// the store). Taking every replica out of service because the cache
	// is down would turn a slower API into none.
	Degradable []string
	// Roles are the roles the process runs, each with the checks it
	// depends on; /readyz reports them as they are.
	Roles map[string][]string
}

// API is the HTTP API, an http.Handler.
type API struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics *metrics
	handler http.Handler

	hosts   []hostRule
	anyHost bool
	rate    *rateLimiter // nil: no rate limit
	streams *streamCaps  // nil: no stream caps
	// auditLog is cfg.Audit's handler, for audit's records.
	auditLog slog.Handler
}

// New returns the API. It registers its metrics on cfg.Registry, so call it
// once per registry.
func New(cfg Config, deps Deps) (*API, error) {
	switch {
	case len(cfg.CursorKey) < 32 && !cfg.OpsOnly:
		return nil, errors.New("httpapi: CursorKey must be at least 32 bytes")
	case cfg.Registry == nil:
		return nil, errors.New("httpapi: Registry is required")
	case (deps.Users == nil || deps.Keys == nil || deps.Feed == nil) && !cfg.OpsOnly:
		return nil, errors.New("httpapi: Users, Keys and Feed are required")
	case cfg.Auth == nil && !cfg.AuthOff:
		return nil, errors.New("httpapi: Auth is required unless AuthOff is set")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Loads == nil {
		deps.Loads = noLoads{}
	}
	if cfg.Audit == nil {
		cfg.Audit = cfg.Logger.With("logger", "audit")
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = time.Second
	}
	cfg.SSE.defaults()
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	if len(deps.Checks) > 0 {
		if err := cfg.Registry.Register(newReadyCollector(deps.Checks, cfg.ReadyTimeout)); err != nil {
			return nil, err
		}
	}
	a := &API{cfg: cfg, deps: deps, log: cfg.Logger, metrics: m, auditLog: cfg.Audit.Handler()}
	lim := cfg.Limits
	switch {
	case lim.Rate < 0 || lim.Burst < 0 || lim.MaxStreams < 0 || lim.MaxStreamsPerPrincipal < 0:
		return nil, errors.New("httpapi: Limits must not be negative")
	}
	a.hosts, a.anyHost = hostRules(lim.AllowedHosts)
	if lim.Rate > 0 {
		a.rate = newRateLimiter(lim.Rate, lim.Burst)
	}
	if lim.MaxStreams > 0 || lim.MaxStreamsPerPrincipal > 0 {
		a.streams = &streamCaps{max: lim.MaxStreams, perKey: lim.MaxStreamsPerPrincipal, byKey: map[clientKey]int{}}
	}
	a.handler = a.newRouter()
	return a, nil
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }
