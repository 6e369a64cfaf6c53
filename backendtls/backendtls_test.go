package backendtls_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/viswals/viswals/internal/logbuf"
	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/testservers"
	"github.com/viswals/viswals/internal/tlstest"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/tlsconfig"
)

// shared are the servers and binaries of the package's tests, made once
// by the first test that needs them and stopped by TestMain.
var shared struct {
	root string

	once      sync.Once
	err       error
	ca        *tlstest.CA
	untrusted *tlstest.CA // a CA none of the servers' certificates come from
	server    tlstest.Pair
	pg        *testservers.Postgres
	redis     *testservers.Redis
	rabbit    *testservers.Rabbit
	consumer  string // binaries
	producer  string
}

func TestMain(m *testing.M) {
	flag.Parse()
	root, err := os.MkdirTemp("", "viswals-backendtls-")
	if err == nil {
		err = os.Chmod(root, 0o755) // the postgres user reads its files below
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backendtls:", err)
		os.Exit(1)
	}
	shared.root = root
	code := m.Run()
	if shared.pg != nil {
		shared.pg.Close()
	}
	if shared.redis != nil {
		shared.redis.Close()
	}
	if shared.rabbit != nil {
		shared.rabbit.Close()
	}
	os.RemoveAll(root)
	os.Exit(code)
}

// setup skips the test under -short, and otherwise starts the servers
// and builds the binaries, all at once, on the first call.
func setup(t *testing.T) {
	t.Helper()
	testenv.SkipShort(t, "backend TLS tests start their own PostgreSQL (initdb), redis-server and rabbitmq-server with TLS listeners, and build the binaries")
	shared.once.Do(func() { shared.err = start() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
}

func start() error {
	began := time.Now()
	dir := filepath.Join(shared.root, "certs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	var err error
	if shared.ca, err = tlstest.NewCA(dir); err != nil {
		return err
	}
	if shared.untrusted, err = tlstest.NewUntrustedCA(dir, "untrusted-ca"); err != nil {
		return err
	}
	if shared.server, err = shared.ca.Issue(dir, "server", tlstest.Leaf{Hosts: tlstest.Localhost}); err != nil {
		return err
	}
	// The RabbitMQ node runs as root here and reads the key; Postgres gets
	// its own copy.
	files := testservers.TLS{CertFile: shared.server.CertFile, KeyFile: shared.server.KeyFile, CAFile: shared.ca.CertFile}
	var g errgroup.Group
	g.Go(func() (err error) {
		shared.pg, err = testservers.StartPostgres(filepath.Join(shared.root, "pg"), files)
		return err
	})
	g.Go(func() (err error) {
		shared.redis, err = testservers.StartRedis(mkdir(shared.root, "redis"), files)
		return err
	})
	g.Go(func() (err error) {
		shared.rabbit, err = testservers.StartRabbit(mkdir(shared.root, "rabbit"), files, func(url string) error {
			conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
			if err == nil {
				conn.Close()
			}
			return err
		})
		return err
	})
	for _, b := range []struct {
		p   *string
		pkg string
	}{{&shared.consumer, "consumer"}, {&shared.producer, "producer"}} {
		g.Go(func() error {
			*b.p = filepath.Join(shared.root, b.pkg)
			out, err := exec.Command("go", "build", "-o", *b.p, "../cmd/"+b.pkg).CombinedOutput()
			if err != nil {
				return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
			}
			return nil
		})
	}
	err = g.Wait()
	fmt.Fprintf(os.Stderr, "backendtls: servers started and binaries built in %s\n", time.Since(began).Round(time.Millisecond))
	return err
}

func mkdir(root, name string) string {
	d := filepath.Join(root, name)
	_ = os.MkdirAll(d, 0o755)
	return d
}

// wrongCA is the untrusted CA's certificate file.
func wrongCA() string { return shared.untrusted.CertFile }

// Postgres with ssl=on, connected with sslmode=verify-full: the
// connection is encrypted; a CA that did not sign the server's
// certificate, and a connection without TLS, are refused clearly.
func TestPostgresVerifyFull(t *testing.T) {
	setup(t)
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, shared.pg.URL(shared.ca.CertFile))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var ssl bool
	var version string
	require.NoError(t, conn.QueryRow(ctx, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &version))
	assert.True(t, ssl, "pg_stat_ssl.ssl")
	assert.Contains(t, []string{"TLSv1.2", "TLSv1.3"}, version)

	for _, tc := range []struct{ name, url, want string }{
		{"wrong CA", shared.pg.URL(wrongCA()), "x509: certificate signed by unknown authority"},
		{"no TLS", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", shared.pg.Port), `no pg_hba.conf entry for host "127.0.0.1", user "postgres", database "postgres", no encryption`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pgx.Connect(ctx, tc.url)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// redisClient connects with a rediss:// URL, trusting caFile, as the
// consumer does with REDIS_CA_FILE.
func redisClient(t *testing.T, caFile string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(fmt.Sprintf("rediss://127.0.0.1:%d/0", shared.redis.Port))
	require.NoError(t, err)
	opts.TLSConfig.RootCAs, err = tlsconfig.CertPool(caFile)
	require.NoError(t, err)
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// RabbitMQ with only an SSL listener, connected with amqps://: a CA that
// did not sign the node's certificate is refused clearly, and so is plain
// AMQP on the TLS port.
func TestRabbitMQAMQPS(t *testing.T) {
	setup(t)
	t.Parallel()
	conn, err := amqp.Dial(shared.rabbit.URL(shared.ca.CertFile))
	require.NoError(t, err)
	conn.Close()
	for _, tc := range []struct{ name, url, want string }{
		{"wrong CA", shared.rabbit.URL(wrongCA()), "x509: certificate signed by unknown authority"},
		// The node answers the plain AMQP header with a TLS alert: which
		// error the client makes of it is its own business.
		{"no TLS", fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", shared.rabbit.Port), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := amqp.DialConfig(tc.url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
			require.Error(t, err)
			if tc.want != "" {
				assert.Contains(t, err.Error(), tc.want)
			}
		})
	}
}

// Redis with only a TLS port, connected with rediss://: a CA that did not
// sign the server's certificate is refused clearly.
func TestRedisTLS(t *testing.T) {
	setup(t)
	t.Parallel()
	ctx := context.Background()
	require.NoError(t, redisClient(t, shared.ca.CertFile).Ping(ctx).Err())
	err := redisClient(t, wrongCA()).Ping(ctx).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "x509: certificate signed by unknown authority")
}

// consumerProc is a consumer binary the test started.
type consumerProc struct {
	cmd  *exec.Cmd
	logs *logbuf.Buffer
	done chan struct{}
}

// env is the environment of the binaries: every backend over TLS, and the
// API too.
type env map[string]string

func newEnv(t *testing.T) env {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	apiPort, err := testservers.FreePort()
	require.NoError(t, err)
	id := hex.EncodeToString(key[:4])
	db := "tls_" + id
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, shared.pg.URL(shared.ca.CertFile))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+db)
	conn.Close(ctx)
	require.NoError(t, err)
	return env{
		"POSTGRES_CONN_URL":   strings.Replace(shared.pg.URL(shared.ca.CertFile), "/postgres?", "/"+db+"?", 1),
		"REDIS_CONN_URL":      fmt.Sprintf("rediss://127.0.0.1:%d/0", shared.redis.Port),
		"REDIS_CA_FILE":       shared.ca.CertFile,
		"REDIS_KEY_PREFIX":    "tls:" + id + ":users:",
		"RABBITMQ_CONN_URL":   shared.rabbit.URL(shared.ca.CertFile),
		"RABBITMQ_QUEUE_NAME": "tls-" + id,
		"ENCRYPTION_KEY":      base64.StdEncoding.EncodeToString(key),
		"CONSUMER_PORT":       fmt.Sprintf("127.0.0.1:%d", apiPort),
		"TLS_CERT_FILE":       shared.server.CertFile,
		"TLS_KEY_FILE":        shared.server.KeyFile,
		"AUTH_MODE":           "none",
		"LOG_LEVEL":           "info",
	}
}

func (e env) list() []string {
	l := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range e {
		l = append(l, k+"="+v)
	}
	return l
}

func (e env) with(k, v string) env {
	c := env{}
	for k, v := range e {
		c[k] = v
	}
	c[k] = v
	return c
}

func (e env) startConsumer(t *testing.T) *consumerProc {
	t.Helper()
	c := &consumerProc{cmd: exec.Command(shared.consumer), logs: &logbuf.Buffer{}, done: make(chan struct{})}
	c.cmd.Env, c.cmd.Stdout, c.cmd.Stderr = e.list(), c.logs, c.logs
	require.NoError(t, c.cmd.Start())
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
			t.Error("consumer did not stop within 30s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("consumer log:\n%s", c.logs.String())
		}
	})
	return c
}

// run runs a binary to its end and returns its stdout.
func (e env) run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Env, cmd.Stdout, cmd.Stderr = e.list(), &stdout, &stderr
	require.NoError(t, cmd.Run(), "%s %v: %s", filepath.Base(bin), args, stderr.String())
	return stdout.String()
}

func (e env) https() *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: shared.ca.Pool()}, ForceAttemptHTTP2: true,
	}}
}

// The whole pipeline over TLS: the producer publishes over amqps, the
// consumer takes the messages over amqps, writes Postgres with
// verify-full and Redis over rediss, serves the API over HTTPS, and the
// dlq commands list and replay over amqps.
func TestPipelineOverTLS(t *testing.T) {
	setup(t)
	t.Parallel()
	e := newEnv(t)
	c := e.startConsumer(t)
	base := "https://" + e["CONSUMER_PORT"]
	client := e.https()
	wait.For(t, 60*time.Second, "the consumer to be ready over TLS", func() (bool, string) {
		select {
		case <-c.done:
			t.Fatalf("consumer exited: %s", c.logs.String())
		default:
		}
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode == http.StatusOK, b.String()
	})

	const rows = 50
	var csv strings.Builder
	csv.WriteString("id,first_name,last_name,email_address,created_at,deleted_at,merged_at,parent_user_id\n")
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&csv, "%d,First%d,Last%d,user%d@example.com,1600000000000,-1,-1,-1\n", i, i, i, i)
	}
	in := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(in, []byte(csv.String()), 0o600))
	out := e.run(t, shared.producer, "--batch", "7", in)
	assert.Contains(t, out, fmt.Sprintf("read=%d published=%d rejected=0", rows, rows))

	wait.For(t, 60*time.Second, "every user served by the API", func() (bool, string) {
		resp, err := client.Get(base + "/users?limit=1000")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var body struct {
			Data []struct {
				Email string `json:"email_address"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return false, err.Error()
		}
		return len(body.Data) == rows, fmt.Sprintf("%d users (%s)", len(body.Data), resp.Proto)
	})
	resp, err := client.Get(base + "/users/7")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, resp.ProtoMajor)

	// Every connection of the consumer to Postgres is encrypted (and the
	// server accepts no other).
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e["POSTGRES_CONN_URL"])
	require.NoError(t, err)
	defer conn.Close(ctx)
	var total, encrypted int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.application_name LIKE 'viswals-%' AND a.datname = current_database()`).Scan(&total, &encrypted))
	assert.Positive(t, total, "the consumer's connections")
	assert.Equal(t, total, encrypted, "encrypted connections of the consumer")

	// The cache was written over rediss.
	n, err := redisClient(t, shared.ca.CertFile).Exists(ctx, e["REDIS_KEY_PREFIX"]+"7").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "users:7 cached")

	// A message the consumer cannot decode is dead-lettered; the dlq
	// commands list and replay it over amqps.
	amqpConn, err := amqp.Dial(e["RABBITMQ_CONN_URL"])
	require.NoError(t, err)
	defer amqpConn.Close()
	ch, err := amqpConn.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.PublishWithContext(ctx, "", e["RABBITMQ_QUEUE_NAME"], false, false, amqp.Publishing{ContentType: "text/plain", Body: []byte("not users")}))
	dlq := e["RABBITMQ_QUEUE_NAME"] + ".dlq"
	wait.For(t, 30*time.Second, "the poison message on "+dlq, func() (bool, string) {
		q, err := ch.QueueDeclarePassive(dlq, true, false, false, false, nil)
		if err != nil {
			ch, _ = amqpConn.Channel() // a failed passive declare closes the channel
			return false, err.Error()
		}
		return q.Messages == 1, fmt.Sprintf("%d messages", q.Messages)
	})
	list := e.run(t, shared.consumer, "dlq", "list")
	assert.Contains(t, list, "listed=1 queue="+dlq)
	assert.Contains(t, list, "content_type=text/plain")
	replay := e.run(t, shared.consumer, "dlq", "replay")
	assert.Contains(t, replay, "replayed=1")
}

// A consumer given a CA that did not sign a backend's certificate says so
// in its log, naming the certificate error, for each backend.
func TestConsumerWithWrongCA(t *testing.T) {
	setup(t)
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name, key, value string
	}{
		{"Postgres", "POSTGRES_CONN_URL", strings.Replace(e["POSTGRES_CONN_URL"], shared.ca.CertFile, wrongCA(), 1)},
		{"Redis", "REDIS_CA_FILE", wrongCA()},
		{"RabbitMQ", "RABBITMQ_CONN_URL", strings.Replace(e["RABBITMQ_CONN_URL"], shared.ca.CertFile, wrongCA(), 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port, err := testservers.FreePort()
			require.NoError(t, err)
			c := e.with(tc.key, tc.value).with("CONSUMER_PORT", fmt.Sprintf("127.0.0.1:%d", port)).startConsumer(t)
			wait.For(t, 60*time.Second, "the consumer to log the certificate error", func() (bool, string) {
				return strings.Contains(c.logs.String(), "x509: certificate signed by unknown authority"), c.logs.String()
			})
		})
	}
}
