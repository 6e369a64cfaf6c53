package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
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
	assert.Equal(t, ":9090", c.Addr)
	assert.Equal(t, time.Hour, c.RedisTTL)
	assert.False(t, c.Migrate)
	assert.Equal(t, 3, c.Workers)
	assert.Equal(t, "k", c.EncryptionKey)
	assert.Equal(t, DefaultPostgresURL, c.PostgresURL)

	for _, bad := range []map[string]string{{"REDIS_TTL": "soon"}, {"MIGRATE_DB": "maybe"}, {"CONSUMER_WORKERS": "0"}} {
		_, _, err := ParseConsumer("consumer", nil, env(bad), &bytes.Buffer{})
		assert.ErrorIs(t, err, ErrUsage, "%v", bad)
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, _, err := ParseConsumer("consumer", []string{"--help"}, env(nil), &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, name := range []string{"POSTGRES_CONN_URL", "REDIS_CONN_URL", "RABBITMQ_CONN_URL", "RABBITMQ_QUEUE_NAME", "CONSUMER_PORT", "ENCRYPTION_KEY", "LOG_LEVEL", "MIGRATE_DB", "REDIS_TTL"} {
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
