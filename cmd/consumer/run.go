package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/changefeed"
	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/httpapi"
	"github.com/viswals/viswals/ingest"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rediscache"
	"github.com/viswals/viswals/tlsconfig"
)

// run is the whole program, callable from tests. args[0] may name a
// subcommand; without one it serves.
func run(ctx context.Context, args []string, getenv config.Getenv, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] == "apikey" {
		return runAPIKey(args[1:], stdout, stderr) // needs no configuration
	}
	if len(args) > 0 && (args[0] == "serve" || args[0] == "dlq" || args[0] == "queue" || args[0] == "loads" || args[0] == "healthcheck" || args[0] == "rekey") {
		cmd, args = args[0], args[1:]
	}
	var rk rekeyFlags
	if cmd == "rekey" {
		var err error
		if rk, args, err = splitRekeyArgs(args, stderr); err != nil {
			return err
		}
	}
	cfg, rest, err := config.ParseConsumer("consumer", args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := config.NewLogger(stderr, cfg.LogLevel)
	switch cmd {
	case "dlq":
		return runDLQ(ctx, cfg, rest, stdout)
	case "rekey":
		if len(rest) > 0 {
			return fmt.Errorf("%w: unexpected arguments %q", config.ErrUsage, rest)
		}
		return runRekey(ctx, cfg, rk, logger, stdout, stderr)
	case "queue":
		return runQueue(ctx, cfg, rest, stdout)
	case "loads":
		return runLoads(ctx, cfg, rest, stdout)
	case "healthcheck":
		return healthcheck(ctx, cfg.Addr, cfg.TLS())
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", config.ErrUsage, rest)
	}
	// The audit log is written whatever LOG_LEVEL says, apart from the
	// rest (its own logger name), so that it can be shipped apart.
	auditOut := newAuditWriter(stderr, 100*time.Millisecond)
	defer auditOut.Close()
	audit := config.NewLogger(auditOut, "info").With("logger", "audit")
	m := newMain(cfg, logger, audit)
	defer m.Close()
	if err := m.Run(ctx); err != nil {
		return err
	}
	return m.Wait()
}

// Main is the serve command: Run builds the parts and starts ingesting and
// serving, Wait blocks until they have stopped, and Close releases what Run
// opened.
type Main struct {
	cfg    config.Consumer
	logger *slog.Logger
	audit  *slog.Logger // replies that revealed emails

	// Built by Run; Close releases them.
	store      *postgres.Store
	apiStore   *postgres.Store // the API's reads, on their own pool
	redis      redis.UniversalClient
	ingester   *ingest.Ingester
	consumer   *rabbitmq.Consumer
	handler    rabbitmq.Handler
	loadEvents *rabbitmq.LoadEvents
	depths     *rabbitmq.DepthWatch
	feed       *changefeed.Hub
	ln         net.Listener
	srv        *http.Server
	certs      *tlsconfig.Reloader // nil: plain HTTP
	endStreams context.CancelFunc
	stopPprof  func()

	g *errgroup.Group // the running parts, started by Run
}

// The pools' application_name in pg_stat_activity.
const (
	ingestAppName = "viswals-ingest"
	apiAppName    = "viswals-api"
)

func newMain(cfg config.Consumer, logger, audit *slog.Logger) *Main {
	return &Main{cfg: cfg, logger: logger, audit: audit}
}

// build opens the stores and the listener and puts together the parts of
// the process's roles: ingestion (the ingest pool, the RabbitMQ consumer)
// and the API (its own pool, the changefeed). An API-only process never
// connects to RabbitMQ; an ingest-only one serves only its probes and
// metrics.
func (m *Main) build(ctx context.Context) error {
	cfg, logger := m.cfg, m.logger
	keyring, err := cfg.Keyring()
	if err != nil {
		return err
	}
	// The certificate is loaded before anything is connected to, so that
	// bad files stop the program at once, by a message naming them.
	var serverTLS *tls.Config
	if cfg.TLS() {
		if m.certs, err = tlsconfig.NewReloader(cfg.TLSCertFile, cfg.TLSKeyFile, logger); err != nil {
			return fmt.Errorf("TLS_CERT_FILE, TLS_KEY_FILE: %w", err)
		}
		if serverTLS, err = tlsconfig.Server(m.certs, cfg.TLSClientCAFile); err != nil {
			return fmt.Errorf("TLS_CLIENT_CA_FILE: %w", err)
		}
	}
	redisConn, err := redisConn(cfg)
	if err != nil {
		return err
	}
	var signer *rabbitmq.Signer
	if cfg.SigningKey != "" {
		if signer, err = rabbitmq.NewSigner(cfg.SigningKey); err != nil {
			return fmt.Errorf("%w: %w", config.ErrUsage, err)
		}
	}
	if cfg.Migrate {
		if err := migrateWhenReachable(ctx, cfg.PostgresURL, logger); err != nil {
			return err
		}
	}
	if cfg.Roles.Ingest {
		m.store, err = postgres.Open(ctx, cfg.PostgresURL, postgres.PoolConfig{MaxConns: int32(cfg.PGMaxConns), Upsert: cfg.Upsert, AppName: ingestAppName})
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	if cfg.Roles.API {
		// The API reads through its own pool, so that no number of readers
		// or streams can take the connections ingestion writes with.
		m.apiStore, err = postgres.Open(ctx, cfg.PostgresURL, postgres.PoolConfig{MaxConns: int32(cfg.APIPGMaxConns), AppName: apiAppName})
		if err != nil {
			return fmt.Errorf("postgres (API pool): %w", err)
		}
	}
	// Either pool answers for Postgres: the ingest one when there is one.
	pg := m.store
	if pg == nil {
		pg = m.apiStore
	}

	var mode rediscache.Mode
	m.redis, mode, err = rediscache.Connect(ctx, redisConn)
	switch {
	case m.redis == nil:
		return fmt.Errorf("%w: %w", config.ErrUsage, err)
	case err != nil:
		logger.Warn("redis", "err", err)
	}
	logger.Info("redis", "mode", mode)
	cache := rediscache.New(m.redis, rediscache.Options{Prefix: cfg.RedisPrefix, TTL: cfg.RedisTTL})
	// Every role clears: the API too would serve an entry of a user the
	// database no longer holds.
	clearCacheOfEmptyDatabase(ctx, pg, cache, logger)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	openFailures := prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_email_open_failures_total",
		Help: "Stored emails that did not open: unknown key, tampered, or moved from another user's row. Never served; each is logged with the user id."})
	reg.MustRegister(openFailures)
	keyring.OnOpenFailure(openFailures.Inc)
	checks := map[string]httpapi.Check{"postgres": pg.Ping, "redis": cache.Ping}
	roles := map[string][]string{}
	if cfg.Roles.Ingest {
		metrics := ingest.NewMetrics(reg)
		m.loadEvents = rabbitmq.NewLoadEvents(cfg.RabbitURL, cfg.Queue, logger)
		m.depths = rabbitmq.NewDepthWatch(cfg.RabbitURL, cfg.Queue, reg, logger)
		m.ingester = ingest.New(m.store, cache, keyring, ingest.Options{Logger: logger, Metrics: metrics, MaxVersionSkew: cfg.MaxVersionSkew,
			OnLoad: m.loadEvents.Notify})
		m.handler = rabbitmq.BatchHandler(m.ingester, logger)
		if signer != nil {
			// Followers of a load learn that a message of it was refused
			// for its signature; nothing is counted on its word.
			m.handler = rabbitmq.Verified(signer, m.handler, logger, func(load int64) {
				m.loadEvents.Notify(viswals.LoadRecord{ID: load, UnverifiedMessages: 1})
			})
		}
		m.consumer = rabbitmq.NewConsumer(cfg.RabbitURL, cfg.Queue, rabbitmq.ConsumerOptions{
			Prefetch:     cfg.Prefetch,
			Workers:      cfg.Workers,
			DrainTimeout: cfg.DrainTimeout,
			Logger:       logger,
			OnDeadLetter: metrics.DeadLettered.Inc,
			Topology:     rabbitmq.Topology(cfg.Topology),
		})
		checks["rabbitmq"] = func(context.Context) error {
			if !m.consumer.Connected() {
				return errors.New("not connected")
			}
			return nil
		}
		roles["ingest"] = []string{"postgres", "rabbitmq", "redis"}
	}
	if cfg.Roles.API {
		roles["api"] = []string{"postgres", "redis"}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	m.ln = ln
	api, feed, err := newAPI(cfg, logger, reg, deps{store: m.apiStore, cache: cache, keyring: keyring, audit: m.audit, checks: checks, roles: roles})
	if err != nil {
		return err
	}
	m.feed = feed
	m.srv = httpapi.NewServer(cfg.Addr, api)
	m.srv.TLSConfig = serverTLS
	// The server's own errors (refused TLS handshakes above all) go to the
	// structured log instead of the standard logger's stderr.
	m.srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	// Long-lived SSE streams would hold Shutdown until its deadline: end
	// them as soon as shutdown begins.
	streams, endStreams := context.WithCancel(context.WithoutCancel(ctx))
	m.endStreams = endStreams
	m.srv.BaseContext = func(net.Listener) context.Context { return streams }
	m.srv.RegisterOnShutdown(endStreams)
	return nil
}

// Run builds the parts and starts them, then returns. They run until ctx is
// cancelled or one of them fails; then the consumer drains the messages in
// flight and the HTTP server shuts down.
func (m *Main) Run(ctx context.Context) error {
	if err := m.build(ctx); err != nil {
		return err
	}
	cfg, logger := m.cfg, m.logger
	logger.Info("consumer started", "roles", cfg.Roles.String(), "addr", m.ln.Addr().String(), "tls", cfg.TLS(), "queue", cfg.Queue, "workers", cfg.Workers, "prefetch", cfg.Prefetch)

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		m.stopPprof = stopPprof
	}
	g, gctx := errgroup.WithContext(ctx)
	m.g = g
	if m.feed != nil {
		g.Go(func() error { return m.feed.Run(gctx) })
	}
	if cfg.AnalyzeRows > 0 && m.store != nil {
		g.Go(func() error {
			m.store.KeepAnalyzed(gctx, 2*time.Second, int64(cfg.AnalyzeRows), func(err error) {
				logger.Warn("refreshing table statistics failed", "err", err)
			})
			return nil
		})
	}
	if cfg.LoadMessagesRetention > 0 && m.store != nil {
		// A tenth of the retention, between a second and an hour: keys
		// outlive it by at most a tenth, and a long one costs a query an
		// hour.
		every := min(max(cfg.LoadMessagesRetention/10, time.Second), time.Hour)
		g.Go(func() error {
			m.store.KeepLoadMessagesPruned(gctx, cfg.LoadMessagesRetention, every, func(n int64) {
				if n > 0 {
					logger.Info("pruned the message keys of finished loads", "keys", n, "retention", cfg.LoadMessagesRetention.String())
				}
			}, func(err error) {
				logger.Warn("pruning the message keys of finished loads failed", "err", err)
			})
			return nil
		})
	}
	g.Go(func() error {
		var err error
		if m.certs != nil {
			err = m.srv.ServeTLS(m.ln, "", "") // the certificate comes from TLSConfig
		} else {
			err = m.srv.Serve(m.ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	if m.certs != nil {
		g.Go(func() error {
			m.certs.Run(gctx, cfg.TLSReloadInterval)
			return nil
		})
	}
	g.Go(func() error {
		// The API stops while the consumer drains, so that both fit in
		// the time an orchestrator gives between SIGTERM and SIGKILL.
		<-gctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := m.srv.Shutdown(shutdownCtx); err != nil {
			logger.Warn("http shutdown cut short", "err", err)
		}
		return nil
	})
	if m.consumer != nil {
		g.Go(func() error {
			announceRecentLoads(gctx, m.store, m.loadEvents, logger)
			return m.loadEvents.Run(gctx)
		})
		g.Go(func() error {
			m.depths.Run(gctx, 15*time.Second)
			return nil
		})
		// Run drains in-flight messages before it returns.
		g.Go(func() error { return m.consumer.Run(gctx, m.handler) })
	}
	return nil
}

// Wait blocks until the parts Run started have stopped, and returns why.
func (m *Main) Wait() error {
	err := m.g.Wait()
	m.logger.Info("consumer stopped", "err", err)
	return err
}

// Close releases what Run opened, also after a Run that failed part way.
func (m *Main) Close() {
	if m.stopPprof != nil {
		m.stopPprof()
	}
	if m.endStreams != nil {
		m.endStreams()
	}
	if m.g == nil && m.ln != nil {
		m.ln.Close() // never served (the server closes it otherwise)
	}
	if m.redis != nil {
		m.redis.Close()
	}
	if m.apiStore != nil {
		m.apiStore.Close()
	}
	if m.store != nil {
		m.store.Close()
	}
}

// clearCacheOfEmptyDatabase drops every cached user when the users table
// is empty: those entries outlived an earlier database (a reset, a new
// volume). They must go because users the consumer inserts are cached
// with SET NX (rediscache.PutNew), which keeps an entry it finds. With
// Postgres or Redis not answering it retries for a while, then logs an
// error and goes on: Redis is a cache, and must not hold ingestion up.
func clearCacheOfEmptyDatabase(ctx context.Context, store *postgres.Store, cache *rediscache.Cache, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A failed check or clear is retried: giving up would leave the
	// entries serving users the database no longer holds.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		n, err := clearIfEmpty(ctx, store, cache)
		if err == nil {
			if n > 0 {
				logger.Info("cleared cache entries left from an earlier database", "keys", n)
			}
			return
		}
		select {
		case <-ctx.Done():
			logger.Error("could not clear the cache of an empty database; entries from an earlier database may be served until their TTL", "err", err)
			return
		case <-time.After(wait):
			logger.Warn("could not check or clear the cache of an empty database; retrying", "err", err, "retry_in", wait)
		}
	}
}

// clearIfEmpty deletes every cached user when the users table is empty and
// returns how many entries it deleted.
func clearIfEmpty(ctx context.Context, store *postgres.Store, cache *rediscache.Cache) (int, error) {
	empty, err := store.Empty(ctx)
	if err != nil || !empty {
		return 0, err
	}
	return cache.DeleteAll(ctx)
}

// migrateWhenReachable runs the migrations, waiting for Postgres to come up
// (as in a fresh docker compose) rather than failing at once. Any other
// failure (a migration refused, a dirty schema, a wrong password) is
// returned: retrying would not change it.
func migrateWhenReachable(ctx context.Context, url string, logger *slog.Logger) error {
	wait := 200 * time.Millisecond
	for {
		err := postgres.Migrate(ctx, url)
		if err == nil {
			return nil
		}
		if viswals.ErrorCode(err) != viswals.EUNAVAILABLE {
			return err
		}
		logger.Warn("migrations failed; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate: %w", err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// redisConn is where Redis is, from the settings.
func redisConn(cfg config.Consumer) (rediscache.Conn, error) {
	c := rediscache.Conn{URL: cfg.RedisURL, SentinelMaster: cfg.RedisSentinelMaster, SentinelPassword: cfg.RedisSentinelPassword}
	if cfg.RedisCAFile != "" {
		var err error
		if c.RootCAs, err = tlsconfig.CertPool(cfg.RedisCAFile); err != nil {
			return c, fmt.Errorf("REDIS_CA_FILE: %w", err)
		}
	}
	if err := c.Check(); err != nil {
		return c, fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	return c, nil
}

// healthcheck asks the local API's /healthz: the distroless image has no
// curl, so the compose health check runs the binary itself.
func healthcheck(ctx context.Context, addr string, useTLS bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: CONSUMER_PORT: %w", config.ErrUsage, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // listening on every interface includes loopback
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	scheme, client := "http", http.DefaultClient
	if useTLS {
		// The certificate is not checked: it names the API's public host,
		// not the loopback address asked here, and this request sends no
		// credential and reads nothing but the status of a liveness probe.
		scheme = "https"
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: status %d", resp.StatusCode)
	}
	return nil
}

// announceRecentLoads publishes the records of the newest loads once at
// start: a producer following its load (producer --wait) gets the state
// of a load whose last record this process, or one before it, committed
// but could not announce before it stopped.
func announceRecentLoads(ctx context.Context, store *postgres.Store, events *rabbitmq.LoadEvents, logger *slog.Logger) {
	recs, err := store.ListLoads(ctx, 0, 20)
	if err != nil {
		logger.Warn("cannot read the recent loads to announce them", "err", err)
		return
	}
	for _, r := range recs {
		events.Notify(r)
	}
}
