package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/changefeed"
	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/httpapi"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/rediscache"
	"github.com/viswals/viswals/usercache"
)

// deps are the parts the HTTP API is built from.
type deps struct {
	store   *postgres.Store // the API's own pool; nil without the api role
	cache   *rediscache.Cache
	keyring *emailcrypt.Keyring
	audit   *slog.Logger
	checks  map[string]httpapi.Check // readiness, by dependency
	roles   map[string][]string      // role: the checks it depends on
}

// newAPI returns the API and the changefeed hub its streams follow, which
// the caller runs. Without the api role it returns the operational routes
// alone (probes and metrics) and no hub.
func newAPI(cfg config.Consumer, logger *slog.Logger, reg *prometheus.Registry, d deps) (*httpapi.API, *changefeed.Hub, error) {
	authn, sessions, err := newAuth(cfg, d.keyring, logger)
	if err != nil {
		return nil, nil, err
	}
	readiness := httpapi.Deps{
		Checks: d.checks,
		// A cache: reads fall back to Postgres and ingestion goes on.
		Degradable: []string{"redis"},
		Roles:      d.roles,
	}
	if !cfg.Roles.API {
		api, err := httpapi.New(httpapi.Config{Registry: reg, Logger: logger, Auth: authn, AuthOff: cfg.AuthOff(), OpsOnly: true}, readiness)
		return api, nil, err
	}
	feed := changefeed.New(d.store, changefeed.Options{Logger: logger, Metrics: changefeed.NewMetrics(reg)})
	deps := readiness
	deps.Users = usercache.NewStore(d.store, d.cache, d.keyring, usercache.Options{Logger: logger, Metrics: usercache.NewMetrics(reg)})
	deps.Keys = d.keyring
	deps.Feed = feed
	deps.Loads = d.store
	api, err := httpapi.New(httpapi.Config{
		CursorKey:   d.keyring.CursorKey(),
		Registry:    reg,
		Logger:      logger,
		SlowRequest: cfg.SlowRequest,
		SSE:         httpapi.SSEOptions{Heartbeat: cfg.Heartbeat, WriteTimeout: cfg.SSEWriteTimeout},
		Auth:        authn,
		Sessions:    sessions,
		AuthOff:     cfg.AuthOff(),
		Audit:       d.audit,
		Limits: httpapi.Limits{
			AllowedHosts:           cfg.AllowedHosts,
			Rate:                   cfg.RateLimit,
			Burst:                  cfg.RateBurst,
			MaxStreams:             cfg.SSEMaxStreams,
			MaxStreamsPerPrincipal: cfg.SSEMaxStreamsPerPrinc,
		},
	}, deps)
	return api, feed, err
}

// newAuth builds what authenticates the API's callers from the settings.
// With AUTH_MODE=none it returns nothing and says loudly that anyone may
// read every email. With authentication on and no way configured to
// authenticate, the API refuses every protected request (ingestion runs).
func newAuth(cfg config.Consumer, keyring *emailcrypt.Keyring, logger *slog.Logger) (*auth.Authenticator, *auth.Sessions, error) {
	if cfg.AuthOff() {
		logger.Warn("AUTHENTICATION IS OFF (AUTH_MODE=none): anyone who reaches the API reads every user's email; use this for development only")
		return nil, nil, nil
	}
	var keys *auth.KeyFile
	if cfg.APIKeysFile != "" {
		var err error
		if keys, err = auth.OpenKeyFile(cfg.APIKeysFile, auth.KeyFileOptions{Logger: logger}); err != nil {
			return nil, nil, fmt.Errorf("API_KEYS_FILE: %w", err)
		}
	}
	var oidc *auth.OIDC
	if cfg.OIDCIssuer != "" {
		var err error
		oidc, err = auth.NewOIDC(auth.OIDCConfig{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience, RoleClaim: cfg.OIDCRoleClaim, Logger: logger})
		if err != nil {
			return nil, nil, fmt.Errorf("OIDC_ISSUER: %w", err)
		}
		// Discovered now so the first token need not wait; an issuer out
		// of reach must not stop ingestion (tokens retry discovery).
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := oidc.Discover(ctx); err != nil {
				logger.Warn("OIDC issuer not reachable yet; tokens will be refused until it is", "issuer", cfg.OIDCIssuer, "err", err)
			}
		}()
	}
	if keys == nil && oidc == nil {
		logger.Warn("authentication is on but neither API_KEYS_FILE nor OIDC_ISSUER is set: the API refuses every request but /healthz and /readyz (make a key with: consumer apikey create)")
	}
	sessions, err := auth.NewSessions(keyring.SessionKey(), auth.SessionOptions{})
	if err != nil {
		return nil, nil, err
	}
	return auth.NewAuthenticator(keys, oidc), sessions, nil
}
