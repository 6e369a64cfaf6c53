package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/viswals/viswals"
)

// Consumer holds the consumer's settings (ingestion and the HTTP API).
type Consumer struct {
	PostgresURL string
	RedisURL    string
	RabbitURL   string
	Queue       string
	Topology    RabbitTopology
	Addr        string // CONSUMER_PORT, normalised to host:port
	EncryptionKeys
	SigningKey     string // INGEST_SIGNING_KEY; "": messages are not verified
	MaxVersionSkew time.Duration
	LogLevel       string
	SlowRequest    time.Duration // requests this slow are logged at info
	Migrate        bool
	RedisTTL       time.Duration
	RedisPrefix    string
	Prefetch       int
	Workers        int
	PGMaxConns     int
	APIPGMaxConns  int // the API's own pool, apart from ingestion's
	Upsert         string
	AnalyzeRows    int
	DrainTimeout   time.Duration
	// LoadMessagesRetention: the message keys of accounted-for loads are
	// deleted after this long without a commit; 0 keeps them.
	LoadMessagesRetention time.Duration
	Heartbeat             time.Duration
	PprofAddr             string // "": no profiling endpoint
	Roles                 Roles  // CONSUMER_ROLES / --roles of serve

	AuthMode      string // "required" (the default) or "none"
	APIKeysFile   string // "": no API keys
	OIDCIssuer    string // "": no OIDC tokens
	OIDCAudience  string
	OIDCRoleClaim string

	AllowedHosts          []string // ALLOWED_HOSTS, split on commas
	RateLimit             float64  // requests/s per principal; 0: off
	RateBurst             int
	SSEMaxStreams         int // 0: no cap
	SSEMaxStreamsPerPrinc int // 0: no cap
	SSEWriteTimeout       time.Duration

	// The API serves HTTPS when TLSCertFile and TLSKeyFile are set.
	TLSCertFile       string
	TLSKeyFile        string
	TLSClientCAFile   string // "": no client certificates asked for
	TLSReloadInterval time.Duration
	RedisCAFile       string // "": the system's CAs verify a rediss:// server

	RedisSentinelMaster   string // "": REDIS_CONN_URL names the servers, not Sentinels
	RedisSentinelPassword string
}

// TLS reports whether the API serves HTTPS.
func (c Consumer) TLS() bool { return c.TLSCertFile != "" }

// AuthOff reports whether AUTH_MODE switches authentication off.
func (c Consumer) AuthOff() bool { return c.AuthMode == "none" }

// ParseConsumer reads the consumer's flags and environment. args are the
// flags after any subcommand.
func ParseConsumer(name string, args []string, getenv Getenv, out io.Writer) (Consumer, []string, error) {
	var c Consumer
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: %s [serve] [--roles ingest,api] [flags]\n       %s dlq list|replay [flags]\n       %s queue migrate [flags]\n       %s loads [--limit N] [ID]\n       %s apikey create --name NAME --role reader|pii|admin\n       %s rekey [--dry-run] [--batch N] [flags]   (re-seal stored emails under the first key of ENCRYPTION_KEYS)\n\nConsumes users from RabbitMQ into Postgres and Redis and serves the HTTP API.\n\nflags:\n", name, name, name, name, name, name)
		fs.PrintDefaults()
	}
	s := &set{fs: fs, getenv: getenv}
	s.URL(&c.PostgresURL, "postgres-url", "POSTGRES_CONN_URL", DefaultPostgresURL, "PostgreSQL `URL`")
	s.URLList(&c.RedisURL, "redis-url", "REDIS_CONN_URL", DefaultRedisURL, "Redis `URL`: one server's; or the nodes of a Redis Cluster, comma-separated (a single node of one is detected); or, with REDIS_SENTINEL_MASTER, the Sentinels'")
	s.String(&c.RedisSentinelMaster, "redis-sentinel-master", "REDIS_SENTINEL_MASTER", "", "name of the master Redis Sentinel watches; makes REDIS_CONN_URL the Sentinels' URLs (its user and password are the master's)")
	s.Secret(&c.RedisSentinelPassword, "redis-sentinel-password", "REDIS_SENTINEL_PASSWORD", "", "password of the Sentinels themselves, if they require one")
	s.URLList(&c.RabbitURL, "rabbitmq-url", "RABBITMQ_CONN_URL", DefaultRabbitURL, "RabbitMQ `URL`, or the URLs of a cluster's nodes, comma-separated (connects to any, and to another when one is lost)")
	s.String(&c.Queue, "queue", "RABBITMQ_QUEUE_NAME", DefaultQueue, "queue to consume")
	s.rabbitTopology(&c.Topology)
	s.String(&c.Addr, "addr", "CONSUMER_PORT", DefaultConsumerAddr, "HTTP listen address: host:port; a bare port listens on 127.0.0.1, :port on every interface")
	s.encryptionKeys(&c.EncryptionKeys)
	s.Secret(&c.SigningKey, "signing-key", "INGEST_SIGNING_KEY", "", "`key` the producer signs messages with (HMAC-SHA256, at least 32 bytes: openssl rand -base64 32); when set, unsigned or badly signed messages are dead-lettered unread")
	s.Duration(&c.MaxVersionSkew, "max-version-skew", "INGEST_MAX_VERSION_SKEW", viswals.DefaultMaxVersionSkew, "records whose version (the producer's start time) is further than this in the future are dead-lettered")
	s.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	s.Duration(&c.SlowRequest, "log-slow-request", "LOG_SLOW_REQUEST", 500*time.Millisecond, "log requests that take this long at info (the others at debug); 0: only server errors")
	s.Bool(&c.Migrate, "migrate", "MIGRATE_DB", true, "run the embedded database migrations at start")
	s.Duration(&c.RedisTTL, "redis-ttl", "REDIS_TTL", 24*time.Hour, "lifetime of users:{id} cache entries (0: no expiry)")
	s.String(&c.RedisPrefix, "redis-prefix", "REDIS_KEY_PREFIX", "users:", "cache key prefix")
	s.Int(&c.Prefetch, "prefetch", "CONSUMER_PREFETCH", 16, "unacknowledged messages held at once")
	s.Int(&c.Workers, "workers", "CONSUMER_WORKERS", 8, "messages processed in parallel")
	s.Int(&c.PGMaxConns, "pg-max-conns", "POSTGRES_MAX_CONNS", 16, "Postgres connection pool size of ingestion")
	s.Int(&c.APIPGMaxConns, "api-pg-max-conns", "API_PG_MAX_CONNS", 8, "Postgres connection pool size of the HTTP API's reads, apart from ingestion's pool")
	s.String(&c.Upsert, "pg-upsert", "POSTGRES_UPSERT", "copy-first", "batch write strategy: copy-first (COPY new users, upsert when an id exists) or unnest (always INSERT ... ON CONFLICT)")
	s.Int(&c.AnalyzeRows, "pg-analyze-rows", "POSTGRES_ANALYZE_ROWS", 20000, "refresh the table's statistics (ANALYZE) once this many rows changed: at once when it has none, else when writes pause and a tenth of the table changed; 0: leave it to autovacuum")
	s.Duration(&c.DrainTimeout, "drain-timeout", "CONSUMER_DRAIN_TIMEOUT", 10*time.Second, "on SIGTERM, time allowed to finish in-flight messages")
	s.Duration(&c.LoadMessagesRetention, "load-messages-retention", "LOAD_MESSAGES_RETENTION", 7*24*time.Hour, "keep the keys of a load's messages (which stop a redelivered message from being counted twice) this long after the load was last written, once every row of it is accounted for (complete or dead_lettered); then delete them, keeping the load's record; 0: keep them forever")
	s.Duration(&c.Heartbeat, "sse-heartbeat", "SSE_HEARTBEAT", 15*time.Second, "interval of SSE comment heartbeats")
	var hosts string
	s.String(&hosts, "allowed-hosts", "ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]", "comma-separated Host header values the API answers, each host (any port) or host:port; others get 421; * allows any host (unsafe: lets other sites' pages read the API through DNS rebinding)")
	s.Float(&c.RateLimit, "api-rate-limit", "API_RATE_LIMIT", 50, "requests per second per principal (per client IP with AUTH_MODE=none) before 429; 0: no limit")
	s.Int(&c.RateBurst, "api-rate-burst", "API_RATE_BURST", 100, "requests a principal may make at once above API_RATE_LIMIT")
	s.Int(&c.SSEMaxStreams, "sse-max-streams", "SSE_MAX_STREAMS", 1000, "open GET /users/sse streams in all before 429; 0: no cap")
	s.Int(&c.SSEMaxStreamsPerPrinc, "sse-max-streams-per-principal", "SSE_MAX_STREAMS_PER_PRINCIPAL", 20, "open GET /users/sse streams per principal (per client IP with AUTH_MODE=none) before 429; 0: no cap")
	s.Duration(&c.SSEWriteTimeout, "sse-write-timeout", "SSE_WRITE_TIMEOUT", 10*time.Second, "an SSE client that reads nothing for this long is disconnected")
	s.String(&c.PprofAddr, "pprof-addr", "PPROF_ADDR", "", "serve /debug/pprof on this address, e.g. 127.0.0.1:6060 (empty: off)")
	roles := AllRoles.String()
	s.String(&roles, "roles", "CONSUMER_ROLES", roles, "what this process runs, comma-separated: ingest (RabbitMQ into Postgres and Redis; serves only /healthz, /readyz and /metrics), api (the HTTP API; needs no RabbitMQ), or both")
	s.String(&c.AuthMode, "auth-mode", "AUTH_MODE", "required", "API authentication: required, or none (development only: everyone is an admin)")
	s.String(&c.APIKeysFile, "api-keys-file", "API_KEYS_FILE", "", "file of API key hashes, one 'name role sha256' per line (make keys with: consumer apikey create); re-read when it changes")
	s.String(&c.OIDCIssuer, "oidc-issuer", "OIDC_ISSUER", "", "accept JWTs from this OpenID Connect issuer (URL)")
	s.String(&c.OIDCAudience, "oidc-audience", "OIDC_AUDIENCE", "", "the audience the issuer's JWTs must name (required with OIDC_ISSUER)")
	s.String(&c.OIDCRoleClaim, "oidc-role-claim", "OIDC_ROLE_CLAIM", "role", "the JWT claim holding the role (reader, pii or admin); dots name a nested claim")
	s.String(&c.TLSCertFile, "tls-cert-file", "TLS_CERT_FILE", "", "serve the API over HTTPS (HTTP/2, TLS 1.2 or later) with the PEM certificate (and chain) in this file; re-read when it changes")
	s.String(&c.TLSKeyFile, "tls-key-file", "TLS_KEY_FILE", "", "the PEM private key of TLS_CERT_FILE (both or neither)")
	s.String(&c.TLSClientCAFile, "tls-client-ca-file", "TLS_CLIENT_CA_FILE", "", "require every API client to present a certificate signed by a CA in this PEM file (needs TLS_CERT_FILE)")
	s.Duration(&c.TLSReloadInterval, "tls-reload-interval", "TLS_RELOAD_INTERVAL", 10*time.Second, "how often TLS_CERT_FILE and TLS_KEY_FILE are checked for a new certificate")
	s.String(&c.RedisCAFile, "redis-ca-file", "REDIS_CA_FILE", "", "verify a rediss:// REDIS_CONN_URL server against the CAs in this PEM file instead of the system's")
	if err := s.parse(args); err != nil {
		return c, nil, usageError(err)
	}
	if !strings.Contains(c.Addr, ":") {
		c.Addr = "127.0.0.1:" + c.Addr // a bare port: loopback, as the default
	}
	var err error
	if c.Roles, err = ParseRoles(roles); err != nil {
		return c, nil, usageError(fmt.Errorf("--roles (env CONSUMER_ROLES): %w", err))
	}
	for h := range strings.SplitSeq(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.AllowedHosts = append(c.AllowedHosts, h)
		}
	}
	if err := c.Topology.check(); err != nil {
		return c, nil, usageError(err)
	}
	switch {
	case len(c.AllowedHosts) == 0:
		return c, nil, usageError(errors.New("--allowed-hosts is empty; list the hosts, or * for any"))
	case c.RateLimit < 0 || c.RateBurst < 0:
		return c, nil, usageError(fmt.Errorf("--api-rate-limit and --api-rate-burst must be >= 0"))
	case c.RateLimit > 0 && c.RateBurst < 1:
		return c, nil, usageError(fmt.Errorf("--api-rate-burst must be >= 1 with a rate limit"))
	case c.SSEMaxStreams < 0 || c.SSEMaxStreamsPerPrinc < 0:
		return c, nil, usageError(fmt.Errorf("--sse-max-streams and --sse-max-streams-per-principal must be >= 0"))
	case c.SSEWriteTimeout <= 0:
		return c, nil, usageError(fmt.Errorf("--sse-write-timeout must be > 0"))
	case c.APIPGMaxConns < 1:
		return c, nil, usageError(fmt.Errorf("--api-pg-max-conns must be >= 1, got %d", c.APIPGMaxConns))
	case c.SlowRequest < 0:
		return c, nil, usageError(fmt.Errorf("--log-slow-request must be >= 0, got %s", c.SlowRequest))
	case c.LoadMessagesRetention < 0:
		return c, nil, usageError(fmt.Errorf("--load-messages-retention must be >= 0, got %s", c.LoadMessagesRetention))
	case c.MaxVersionSkew <= 0:
		return c, nil, usageError(fmt.Errorf("--max-version-skew must be > 0, got %s", c.MaxVersionSkew))
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
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return c, nil, usageError(fmt.Errorf("TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTPS, or neither"))
	case c.TLSClientCAFile != "" && c.TLSCertFile == "":
		return c, nil, usageError(fmt.Errorf("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE: client certificates are asked for only over HTTPS"))
	case c.TLSReloadInterval <= 0:
		return c, nil, usageError(fmt.Errorf("--tls-reload-interval must be > 0"))
	case c.RedisCAFile != "" && !strings.HasPrefix(c.RedisURL, "rediss://"):
		return c, nil, usageError(fmt.Errorf("REDIS_CA_FILE is set but REDIS_CONN_URL is not a rediss:// URL"))
	}
	return c, fs.Args(), nil
}
