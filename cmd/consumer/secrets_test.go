package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/internal/logbuf"
)

var (
	gencsvOnce sync.Once
	gencsvBin  string
	gencsvErr  error
)

// buildGencsv builds the gencsv binary once for the package's tests.
func buildGencsv(t *testing.T) string {
	t.Helper()
	gencsvOnce.Do(func() {
		dir, err := os.MkdirTemp("", "viswals-gencsv-")
		if err != nil {
			gencsvErr = err
			return
		}
		gencsvBin = filepath.Join(dir, "gencsv")
		if out, err := exec.Command("go", "build", "-o", gencsvBin, "../gencsv").CombinedOutput(); err != nil {
			gencsvErr = err
			t.Logf("%s", out)
		}
	})
	require.NoError(t, gencsvErr)
	return gencsvBin
}

// forms are the spellings of a secret that must never be printed: as
// given, and its bytes (decoded when it is base64) in base64 and hex.
func forms(secret string) []string {
	raw := []byte(secret)
	if b, err := base64.StdEncoding.DecodeString(secret); err == nil {
		raw = b
	}
	return []string{secret, base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw), hex.EncodeToString(raw)}
}

// Known secrets are planted in the environment and in _FILE files; every
// program is run with --help, a mistyped flag, malformed URLs, and a real
// load through producer and consumer; none of the secrets, in any form,
// is in anything they print or log.
func TestSecretsAreNeverPrintedByAnyProgram(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	const (
		oldKey   = "Sx3n6JcU9q8c0vZy2m4QeR7tW1bXkLpA5dFgHjK8M0o="
		newKey   = "pQ7wE2rT9yU4iO1aS6dF3gH8jK5lZ0xC4vB7nM2qW9e="
		signKey  = "Zk2Lx9Qw3Er8Ty5Ui1Op7As4Df6Gh0Jk3Lz8Xc2Vb5N="
		pgPass   = "pgPlantedSecret77"
		redisPw  = "redisPlantedSecret77"
		amqpPass = "amqpPlantedSecret77"
	)
	secrets := []string{oldKey, newKey, signKey, pgPass, redisPw, amqpPass}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content+"\n"), 0o600))
		return p
	}
	// The database trusts local connections, so a password in the URL is
	// accepted and ignored: the load runs with it planted.
	pgURL := strings.Replace(e.vars["POSTGRES_CONN_URL"], "postgres@", "postgres:"+pgPass+"@", 1)
	require.NotEqual(t, pgURL, e.vars["POSTGRES_CONN_URL"])
	delete(e.vars, "ENCRYPTION_KEY")
	delete(e.vars, "POSTGRES_CONN_URL")
	e.vars["ENCRYPTION_KEYS_FILE"] = write("keys", "k2:"+newKey+",v1:"+oldKey)
	e.vars["POSTGRES_CONN_URL_FILE"] = write("pg", pgURL)
	e.vars["INGEST_SIGNING_KEY"] = signKey
	e.vars["LOG_LEVEL"] = "debug"

	var printed bytes.Buffer // everything every program wrote
	collect := func(what string, out ...[]byte) {
		printed.WriteString("== " + what + "\n")
		for _, o := range out {
			printed.Write(o)
		}
	}
	runBin := func(what, bin string, env map[string]string, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run() // errors are expected for most cases; their output is what is checked
		collect(what, stdout.Bytes(), stderr.Bytes())
	}
	runConsumerCtx := func(ctx context.Context, what string, env map[string]string, args ...string) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
		if err != nil {
			stderr.WriteString(err.Error())
		}
		collect(what, stdout.Bytes(), stderr.Bytes())
	}
	// Cancelled at once: the cases below fail before they do anything, or
	// must not start serving.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	runConsumer := func(what string, env map[string]string, args ...string) {
		runConsumerCtx(cancelled, what, env, args...)
	}
	with := func(over map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range e.vars {
			m[k] = v
		}
		for k, v := range over {
			m[k] = v
		}
		return m
	}
	badURLs := with(map[string]string{
		"POSTGRES_CONN_URL_FILE": write("badpg", "postgres://u:"+pgPass+"@db:port/x"),
		"REDIS_CONN_URL":         "redis://:" + redisPw + "@cache:port/0",
		"RABBITMQ_CONN_URL":      "amqp://g:" + amqpPass + "@broker:port/",
	})
	unreachable := with(map[string]string{
		"POSTGRES_CONN_URL_FILE": write("deadpg", "postgres://u:"+pgPass+"@127.0.0.1:1/x?sslmode=disable&connect_timeout=1"),
		"REDIS_CONN_URL":         "redis://:" + redisPw + "@127.0.0.1:1/0",
		"RABBITMQ_CONN_URL":      "amqp://g:" + amqpPass + "@127.0.0.1:1/",
	})
	bothSet := with(map[string]string{"ENCRYPTION_KEYS": "k2:" + newKey})
	badKeys := with(map[string]string{"ENCRYPTION_KEYS_FILE": write("badkeys", "k2:"+newKey+",k2:"+oldKey)})
	for _, args := range [][]string{
		{"--help"}, {"--no-such-flag"}, {"serve", "--help"}, {"dlq", "list", "--no-such-flag"},
		{"rekey", "--help"}, {"rekey", "--dry-run", "--no-such-flag"}, {"apikey", "create", "--no-such-flag"},
	} {
		runConsumer("consumer "+strings.Join(args, " "), e.vars, args...)
	}
	for name, env := range map[string]map[string]string{"bad URLs": badURLs, "unreachable": unreachable, "both keys": bothSet, "duplicate key id": badKeys} {
		runConsumer("consumer serve, "+name, env)
		runConsumer("consumer rekey, "+name, env, "rekey", "--dry-run")
		runConsumer("consumer dlq list, "+name, env, "dlq", "list")
	}
	producer := buildProducer(t)
	csv := write("users.csv", strings.TrimSuffix(input, "\r\n"))
	for _, args := range [][]string{{"--help"}, {"--no-such-flag", csv}} {
		runBin("producer "+strings.Join(args, " "), producer, e.vars, args...)
	}
	runBin("producer, bad URLs", producer, badURLs, csv)
	runBin("producer, unreachable", producer, with(map[string]string{"RABBITMQ_CONN_URL": "amqp://g:" + amqpPass + "@127.0.0.1:1/", "PRODUCER_RECONNECT_TIMEOUT": "1s"}), csv)
	gencsv := buildGencsv(t)
	runBin("gencsv --help", gencsv, e.vars, "--help")
	runBin("gencsv --no-such-flag", gencsv, e.vars, "--no-such-flag")

	// A real load, every secret in use.
	var logs logbuf.Buffer
	base := e.startProcess(t, http.DefaultClient, nil, nil, &logs)
	runBin("producer, load", producer, e.vars, csv)
	waitIngested(t, base, "the load", float64(len(want())))
	runConsumerCtx(context.Background(), "consumer rekey", e.vars, "rekey")
	collect("consumer serve, load", []byte(logs.String()))

	out := printed.String()
	require.True(t, strings.Contains(out, "rekey: primary=k2 scanned=5"), "the rekey did run")
	require.True(t, strings.Contains(out, " published=6 "), "the load did run")
	for _, s := range secrets {
		for _, f := range forms(s) {
			if i := strings.Index(out, f); i >= 0 {
				t.Errorf("secret %.6s… printed (as %.10s…) near:\n%s", s, f, out[max(0, i-300):min(len(out), i+100)])
			}
		}
	}
}
