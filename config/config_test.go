package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestParseProducer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(t *testing.T, c Producer)
		wantErr error
	}{
		{name: "defaults", args: []string{"in.csv"}, want: func(t *testing.T, c Producer) {
			assert.Equal(t, "in.csv", c.Input)
			assert.Equal(t, DefaultRabbitURL, c.RabbitURL)
			assert.Equal(t, DefaultQueue, c.Queue)
			assert.Equal(t, 2000, c.BatchSize)
			assert.Equal(t, "gob", c.Format)
		}},
		{name: "env then flag wins", args: []string{"--batch", "7", "-"}, env: map[string]string{"PRODUCER_BATCH_SIZE": "5", "RABBITMQ_QUEUE_NAME": "q1"}, want: func(t *testing.T, c Producer) {
			assert.Equal(t, 7, c.BatchSize)
			assert.Equal(t, "q1", c.Queue)
			assert.Equal(t, "-", c.Input)
		}},
		{name: "no file", args: nil, wantErr: ErrUsage},
		{name: "two files", args: []string{"a", "b"}, wantErr: ErrUsage},
		{name: "bad format", args: []string{"--format", "xml", "a"}, wantErr: ErrUsage},
		{name: "zero batch", args: []string{"--batch", "0", "a"}, wantErr: ErrUsage},
		{name: "bad env int", args: []string{"a"}, env: map[string]string{"PRODUCER_BATCH_SIZE": "many"}, wantErr: ErrUsage},
		{name: "unknown flag", args: []string{"--nope", "a"}, wantErr: ErrUsage},
		{name: "help", args: []string{"--help"}, wantErr: flag.ErrHelp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseProducer(tt.args, env(tt.env), &bytes.Buffer{})
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.want(t, c)
		})
	}
}

func TestParseConsumer(t *testing.T) {
	t.Parallel()
	c, rest, err := ParseConsumer("consumer", []string{"--workers", "3"}, env(map[string]string{
		"CONSUMER_PORT": "9090", "REDIS_TTL": "1h", "MIGRATE_DB": "false", "ENCRYPTION_KEY": "k",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Empty(t, rest)
	assert.Equal(t, "127.0.0.1:9090", c.Addr)
	assert.Equal(t, time.Hour, c.RedisTTL)
	assert.False(t, c.Migrate)
	assert.Equal(t, 3, c.Workers)
	assert.Equal(t, "k", c.EncryptionKey)
	assert.Equal(t, DefaultPostgresURL, c.PostgresURL)
	assert.Equal(t, 7*24*time.Hour, c.LoadMessagesRetention)

	for _, bad := range []map[string]string{{"REDIS_TTL": "soon"}, {"MIGRATE_DB": "maybe"}, {"CONSUMER_WORKERS": "0"},
		{"API_RATE_LIMIT": "fast"}, {"API_RATE_LIMIT": "-1"}, {"API_RATE_BURST": "0"}, {"SSE_MAX_STREAMS": "-1"},
		{"SSE_MAX_STREAMS_PER_PRINCIPAL": "-2"}, {"SSE_WRITE_TIMEOUT": "0s"}, {"API_PG_MAX_CONNS": "0"}, {"ALLOWED_HOSTS": " , "},
		{"LOAD_MESSAGES_RETENTION": "-1h"}} {
		_, _, err := ParseConsumer("consumer", nil, env(bad), &bytes.Buffer{})
		assert.ErrorIs(t, err, ErrUsage, "%v", bad)
	}
}

func TestParseConsumerListenAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ env, want string }{
		{"", "127.0.0.1:8080"},
		{"9090", "127.0.0.1:9090"},
		{":9090", ":9090"},
		{"0.0.0.0:8080", "0.0.0.0:8080"},
		{"[::1]:8080", "[::1]:8080"},
	} {
		c, _, err := ParseConsumer("consumer", nil, env(map[string]string{"CONSUMER_PORT": tc.env}), &bytes.Buffer{})
		require.NoError(t, err)
		assert.Equal(t, tc.want, c.Addr, "CONSUMER_PORT=%q", tc.env)
	}
}

func TestParseConsumerLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want func(*testing.T, Consumer)
	}{
		{"defaults", nil, func(t *testing.T, c Consumer) {
			assert.Equal(t, []string{"localhost", "127.0.0.1", "[::1]"}, c.AllowedHosts)
			assert.Equal(t, 50.0, c.RateLimit)
			assert.Equal(t, 100, c.RateBurst)
			assert.Equal(t, 1000, c.SSEMaxStreams)
			assert.Equal(t, 20, c.SSEMaxStreamsPerPrinc)
			assert.Equal(t, 10*time.Second, c.SSEWriteTimeout)
			assert.Equal(t, 8, c.APIPGMaxConns)
			assert.Equal(t, 16, c.PGMaxConns)
		}},
		{"set", map[string]string{"ALLOWED_HOSTS": " api.example.com, 10.0.0.5:8080 ,", "API_RATE_LIMIT": "2.5",
			"API_RATE_BURST": "5", "SSE_MAX_STREAMS": "0", "SSE_MAX_STREAMS_PER_PRINCIPAL": "3",
			"SSE_WRITE_TIMEOUT": "2s", "API_PG_MAX_CONNS": "4"}, func(t *testing.T, c Consumer) {
			assert.Equal(t, []string{"api.example.com", "10.0.0.5:8080"}, c.AllowedHosts)
			assert.Equal(t, 2.5, c.RateLimit)
			assert.Equal(t, 5, c.RateBurst)
			assert.Equal(t, 0, c.SSEMaxStreams)
			assert.Equal(t, 3, c.SSEMaxStreamsPerPrinc)
			assert.Equal(t, 2*time.Second, c.SSEWriteTimeout)
			assert.Equal(t, 4, c.APIPGMaxConns)
		}},
		{"rate limit off", map[string]string{"API_RATE_LIMIT": "0", "API_RATE_BURST": "0"}, func(t *testing.T, c Consumer) {
			assert.Equal(t, 0.0, c.RateLimit)
		}},
		{"any host", map[string]string{"ALLOWED_HOSTS": "*"}, func(t *testing.T, c Consumer) {
			assert.Equal(t, []string{"*"}, c.AllowedHosts)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := ParseConsumer("consumer", nil, env(tc.env), &bytes.Buffer{})
			require.NoError(t, err)
			tc.want(t, c)
		})
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, _, err := ParseConsumer("consumer", []string{"--help"}, env(nil), &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, name := range []string{"POSTGRES_CONN_URL", "REDIS_CONN_URL", "RABBITMQ_CONN_URL", "RABBITMQ_QUEUE_NAME", "CONSUMER_PORT", "ENCRYPTION_KEY", "LOG_LEVEL", "MIGRATE_DB", "REDIS_TTL",
		"ALLOWED_HOSTS", "API_RATE_LIMIT", "API_RATE_BURST", "SSE_MAX_STREAMS", "SSE_MAX_STREAMS_PER_PRINCIPAL", "SSE_WRITE_TIMEOUT", "API_PG_MAX_CONNS",
		"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE", "TLS_RELOAD_INTERVAL", "REDIS_CA_FILE"} {
		assert.Contains(t, out.String(), name)
	}
}

func TestWithDotEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	require.NoError(t, os.WriteFile(path, []byte("# comment\nA=from-file\nB=\"quoted\"\n"), 0o600))
	getenv, err := WithDotEnv(env(map[string]string{"A": "from-env"}), path)
	require.NoError(t, err)
	assert.Equal(t, "from-env", getenv("A"), "the environment wins over .env")
	assert.Equal(t, "quoted", getenv("B"))

	getenv, err = WithDotEnv(env(map[string]string{"A": "x"}), filepath.Join(dir, "missing"))
	require.NoError(t, err)
	assert.Equal(t, "x", getenv("A"))
	assert.False(t, errors.Is(err, os.ErrNotExist))
}

// No secret value is printed: not by --help, not by the usage after a flag
// error, not by the error about a malformed URL.
func TestSecretsAreNeverPrinted(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{
		"ENCRYPTION_KEY":    "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=",
		"POSTGRES_CONN_URL": "postgres://u:pgsecret@db/viswals",
		"REDIS_CONN_URL":    "redis://:redissecret@cache:6379/0",
		"RABBITMQ_CONN_URL": "amqp://g:amqpsecret@broker/,amqp://g:amqpsecret2@broker2/",
	}
	malformed := map[string]string{
		"POSTGRES_CONN_URL": "postgres://u:pgsecret@db:port/viswals",
		"REDIS_CONN_URL":    "redis://:redissecret@cache:port/0",
		"RABBITMQ_CONN_URL": "amqp://g:amqpsecret@broker/,amqp://g:amqpsecret2@broker:port/",
	}
	words := []string{"c2VjcmV0", "pgsecret", "redissecret", "amqpsecret"}
	tests := []struct {
		name string
		vars map[string]string
		args []string
	}{
		{"help", secrets, []string{"--help"}},
		{"mistyped flag", secrets, []string{"--no-such-flag"}},
		{"malformed URLs", malformed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, parse := range []func(io.Writer) error{
				func(out io.Writer) error {
					_, _, err := ParseConsumer("consumer", tt.args, env(tt.vars), out)
					return err
				},
				func(out io.Writer) error {
					_, err := ParseProducer(append(tt.args, "users.csv"), env(tt.vars), out)
					return err
				},
			} {
				var out bytes.Buffer
				err := parse(&out)
				require.Error(t, err)
				printed := out.String() + err.Error()
				for _, w := range words {
					assert.NotContains(t, printed, w)
				}
			}
		})
	}
	var out bytes.Buffer
	_, _, _ = ParseConsumer("consumer", []string{"--help"}, env(secrets), &out)
	assert.Contains(t, out.String(), "postgres://u:xxxxx@db/viswals", "a URL is shown with its password replaced")
	assert.Contains(t, out.String(), "amqp://g:xxxxx@broker/,amqp://g:xxxxx@broker2/", "each URL of a list is shown with its password replaced")
}

// RABBITMQ_CONN_URL may list nodes; each is checked, and a mistake is
// named by its place in the list. The queue settings are checked too.
func TestRabbitSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		vars    map[string]string
		wantErr string // "" for none
	}{
		{map[string]string{"RABBITMQ_CONN_URL": "amqp://a@h1:5672/, amqp://a@h2:5673/"}, ""},
		{map[string]string{"RABBITMQ_CONN_URL": "amqp://a@h1:5672/,"}, "RABBITMQ_CONN_URL (entry 2) is empty"},
		{map[string]string{"RABBITMQ_CONN_URL": "amqp://a@h1:5672/,amqp://a:pw@h2:port/"}, "RABBITMQ_CONN_URL (entry 2) is not a valid URL"},
		{map[string]string{"RABBITMQ_QUEUE_TYPE": "stream"}, "RABBITMQ_QUEUE_TYPE must be quorum or classic"},
		{map[string]string{"RABBITMQ_DELIVERY_LIMIT": "0"}, "RABBITMQ_DELIVERY_LIMIT must be >= 1"},
		{map[string]string{"RABBITMQ_DLQ_TTL": "0s"}, "RABBITMQ_DLQ_TTL must be at least 1ms"},
		{map[string]string{"RABBITMQ_DLQ_MAX_LENGTH": "-1"}, "RABBITMQ_DLQ_MAX_LENGTH must be >= 1"},
	}
	for _, tt := range tests {
		_, _, cerr := ParseConsumer("consumer", nil, env(tt.vars), io.Discard)
		_, perr := ParseProducer([]string{"users.csv"}, env(tt.vars), io.Discard)
		for _, err := range []error{cerr, perr} {
			if tt.wantErr == "" {
				assert.NoError(t, err, "%v", tt.vars)
				continue
			}
			require.Error(t, err, "%v", tt.vars)
			assert.ErrorIs(t, err, ErrUsage)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotContains(t, err.Error(), "pw@")
		}
	}
	c, _, err := ParseConsumer("consumer", nil, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, RabbitTopology{Type: "quorum", DeliveryLimit: 20, DLQTTL: 7 * 24 * time.Hour, DLQMaxLength: 1_000_000}, c.Topology)
}

// Every secret setting also reads from the file named by NAME_FILE.
func TestSecretFromFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		return p
	}
	keyFile := file("key", "filekeyvalue\n", 0o600)
	crlf := file("url", "postgres://u:filepw@db/x\r\n", 0o600)
	empty := file("empty", "\n", 0o600)
	unreadable := file("unreadable", "secretcontent", 0o000)
	missing := filepath.Join(dir, "missing")

	c, _, err := ParseConsumer("consumer", nil, env(map[string]string{
		"ENCRYPTION_KEY_FILE": keyFile, "POSTGRES_CONN_URL_FILE": crlf,
	}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "filekeyvalue", c.EncryptionKey, "one trailing newline is trimmed")
	assert.Equal(t, "postgres://u:filepw@db/x", c.PostgresURL)

	p, err := ParseProducer([]string{"in.csv"}, env(map[string]string{"RABBITMQ_CONN_URL_FILE": crlf}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "postgres://u:filepw@db/x", p.RabbitURL)

	tests := []struct {
		name string
		vars map[string]string
		want []string // in the error
	}{
		{"both", map[string]string{"ENCRYPTION_KEY": "envkeyvalue", "ENCRYPTION_KEY_FILE": keyFile}, []string{"ENCRYPTION_KEY and ENCRYPTION_KEY_FILE"}},
		{"both URL", map[string]string{"REDIS_CONN_URL": "redis://:envpw@h/0", "REDIS_CONN_URL_FILE": crlf}, []string{"REDIS_CONN_URL and REDIS_CONN_URL_FILE"}},
		{"missing", map[string]string{"RABBITMQ_CONN_URL_FILE": missing}, []string{"RABBITMQ_CONN_URL_FILE", missing, "no such file"}},
		{"empty", map[string]string{"ENCRYPTION_KEY_FILE": empty}, []string{"ENCRYPTION_KEY_FILE", empty, "empty"}},
		{"directory", map[string]string{"ENCRYPTION_KEY_FILE": dir}, []string{"ENCRYPTION_KEY_FILE", dir}},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct {
			name string
			vars map[string]string
			want []string
		}{"unreadable", map[string]string{"ENCRYPTION_KEY_FILE": unreadable}, []string{"ENCRYPTION_KEY_FILE", unreadable, "permission denied"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			_, _, err := ParseConsumer("consumer", nil, env(tt.vars), &out)
			require.ErrorIs(t, err, ErrUsage)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			printed := out.String() + err.Error()
			for _, secret := range []string{"filekeyvalue", "filepw", "envkeyvalue", "envpw", "secretcontent"} {
				assert.NotContains(t, printed, secret)
			}
		})
	}

	var out bytes.Buffer
	_, _, _ = ParseConsumer("consumer", []string{"--help"}, env(nil), &out)
	assert.Contains(t, out.String(), "ENCRYPTION_KEY_FILE", "--help names the _FILE variants")
	assert.Contains(t, out.String(), "POSTGRES_CONN_URL_FILE")
}

func TestLoggerWritesDurationsAsText(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	NewLogger(&b, "info").Info("stopping", "drain_timeout", 10*time.Second, "n", 3)
	for _, want := range []string{`"drain_timeout":"10s"`, `"n":3`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log %s lacks %s", b.String(), want)
		}
	}
}

func TestParseConsumerTLS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string // "": valid
	}{
		{"off by default", nil, ""},
		{"both files", map[string]string{"TLS_CERT_FILE": "c.pem", "TLS_KEY_FILE": "k.pem"}, ""},
		{"with client CA", map[string]string{"TLS_CERT_FILE": "c.pem", "TLS_KEY_FILE": "k.pem", "TLS_CLIENT_CA_FILE": "ca.pem"}, ""},
		{"certificate without key", map[string]string{"TLS_CERT_FILE": "c.pem"}, "TLS_CERT_FILE and TLS_KEY_FILE go together"},
		{"key without certificate", map[string]string{"TLS_KEY_FILE": "k.pem"}, "TLS_CERT_FILE and TLS_KEY_FILE go together"},
		{"client CA without TLS", map[string]string{"TLS_CLIENT_CA_FILE": "ca.pem"}, "TLS_CLIENT_CA_FILE needs TLS_CERT_FILE"},
		{"zero reload interval", map[string]string{"TLS_RELOAD_INTERVAL": "0s"}, "--tls-reload-interval must be > 0"},
		{"Redis CA with rediss", map[string]string{"REDIS_CONN_URL": "rediss://cache:6380/0", "REDIS_CA_FILE": "ca.pem"}, ""},
		{"Redis CA without rediss", map[string]string{"REDIS_CA_FILE": "ca.pem"}, "REDIS_CA_FILE is set but REDIS_CONN_URL is not a rediss:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := ParseConsumer("consumer", nil, env(tc.env), &bytes.Buffer{})
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrUsage)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.env["TLS_CERT_FILE"] != "", c.TLS())
			assert.Equal(t, tc.env["TLS_CLIENT_CA_FILE"], c.TLSClientCAFile)
			assert.Equal(t, 10*time.Second, c.TLSReloadInterval)
		})
	}
}
