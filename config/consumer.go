package config

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Consumer holds the consumer's settings (ingestion and the HTTP API).
type Consumer struct {
	PostgresURL   string
	RedisURL      string
	RabbitURL     string
	Queue         string
	Addr          string // CONSUMER_PORT, normalised to host:port
	EncryptionKey string
	LogLevel      string
	Migrate       bool
	RedisTTL      time.Duration
	RedisPrefix   string
	Prefetch      int
	Workers       int
	PGMaxConns    int
	Upsert        string
	AnalyzeRows   int
	DrainTimeout  time.Duration
	Heartbeat     time.Duration
	PprofAddr     string // "": no profiling endpoint

	AuthMode      string // "required" (the default) or "none"
	APIKeysFile   string // "": no API keys
	OIDCIssuer    string // "": no OIDC tokens
	OIDCAudience  string
	OIDCRoleClaim string
}

// AuthOff reports whether AUTH_MODE switches authentication off.
func (c Consumer) AuthOff() bool { return c.AuthMode == "none" }

// ParseConsumer reads the consumer's flags and environment. args are the
// flags after any subcommand.
func ParseConsumer(name string, args []string, getenv Getenv, out io.Writer) (Consumer, []string, error) {
	var c Consumer
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: %s [flags]\n       %s dlq list|replay [flags]\n       %s apikey create --name NAME --role reader|pii|admin\n\nConsumes users from RabbitMQ into Postgres and Redis and serves the HTTP API.\n\nflags:\n", name, name, name)
		fs.PrintDefaults()
	}
	s := &set{fs: fs, getenv: getenv}
	s.String(&c.PostgresURL, "postgres-url", "POSTGRES_CONN_URL", DefaultPostgresURL, "PostgreSQL URL")
	s.String(&c.RedisURL, "redis-url", "REDIS_CONN_URL", DefaultRedisURL, "Redis URL")
	s.String(&c.RabbitURL, "rabbitmq-url", "RABBITMQ_CONN_URL", DefaultRabbitURL, "RabbitMQ URL")
	s.String(&c.Queue, "queue", "RABBITMQ_QUEUE_NAME", DefaultQueue, "queue to consume")
	s.String(&c.Addr, "addr", "CONSUMER_PORT", ":8080", "HTTP listen address or port")
	s.String(&c.EncryptionKey, "encryption-key", "ENCRYPTION_KEY", "", "32 random bytes, base64 or hex (openssl rand -base64 32); required")
	s.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	s.Bool(&c.Migrate, "migrate", "MIGRATE_DB", true, "run the embedded database migrations at start")
	s.Duration(&c.RedisTTL, "redis-ttl", "REDIS_TTL", 24*time.Hour, "lifetime of users:{id} cache entries (0: no expiry)")
	s.String(&c.RedisPrefix, "redis-prefix", "REDIS_KEY_PREFIX", "users:", "cache key prefix")
	s.Int(&c.Prefetch, "prefetch", "CONSUMER_PREFETCH", 16, "unacknowledged messages held at once")
	s.Int(&c.Workers, "workers", "CONSUMER_WORKERS", 8, "messages processed in parallel")
	s.Int(&c.PGMaxConns, "pg-max-conns", "POSTGRES_MAX_CONNS", 16, "Postgres connection pool size")
	s.String(&c.Upsert, "pg-upsert", "POSTGRES_UPSERT", "copy-first", "batch write strategy: copy-first (COPY new users, upsert when an id exists) or unnest (always INSERT ... ON CONFLICT)")
	s.Int(&c.AnalyzeRows, "pg-analyze-rows", "POSTGRES_ANALYZE_ROWS", 20000, "refresh the table's statistics (ANALYZE) once this many rows changed: at once when it has none, else when writes pause and a tenth of the table changed; 0: leave it to autovacuum")
	s.Duration(&c.DrainTimeout, "drain-timeout", "CONSUMER_DRAIN_TIMEOUT", 10*time.Second, "on SIGTERM, time allowed to finish in-flight messages")
	s.Duration(&c.Heartbeat, "sse-heartbeat", "SSE_HEARTBEAT", 15*time.Second, "interval of SSE comment heartbeats")
	s.String(&c.PprofAddr, "pprof-addr", "PPROF_ADDR", "", "serve /debug/pprof on this address, e.g. 127.0.0.1:6060 (empty: off)")
	s.String(&c.AuthMode, "auth-mode", "AUTH_MODE", "required", "API authentication: required, or none (development only: everyone is an admin)")
	s.String(&c.APIKeysFile, "api-keys-file", "API_KEYS_FILE", "", "file of API key hashes, one 'name role sha256' per line (make keys with: consumer apikey create); re-read when it changes")
	s.String(&c.OIDCIssuer, "oidc-issuer", "OIDC_ISSUER", "", "accept JWTs from this OpenID Connect issuer (URL)")
	s.String(&c.OIDCAudience, "oidc-audience", "OIDC_AUDIENCE", "", "the audience the issuer's JWTs must name (required with OIDC_ISSUER)")
	s.String(&c.OIDCRoleClaim, "oidc-role-claim", "OIDC_ROLE_CLAIM", "role", "the JWT claim holding the role (reader, pii or admin); dots name a nested claim")
	if err := s.parse(args); err != nil {
		return c, nil, usageError(err)
	}
	if !strings.Contains(c.Addr, ":") {
		c.Addr = ":" + c.Addr
	}
	switch {
	case c.Prefetch < 1:
		return c, nil, usageError(fmt.Errorf("--prefetch must be >= 1, got %d", c.Prefetch))
	case c.Workers < 1:
		return c, nil, usageError(fmt.Errorf("--workers must be >= 1, got %d", c.Workers))
	case c.PGMaxConns < 2:
		return c, nil, usageError(fmt.Errorf("--pg-max-conns must be >= 2, got %d", c.PGMaxConns))
	case c.AuthMode != "required" && c.AuthMode != "none":
		return c, nil, usageError(fmt.Errorf("AUTH_MODE must be required or none, got %q", c.AuthMode))
	case c.OIDCIssuer != "" && c.OIDCAudience == "":
		return c, nil, usageError(fmt.Errorf("OIDC_AUDIENCE is required with OIDC_ISSUER"))
	}
	return c, fs.Args(), nil
}
