package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/internal/logbuf"
	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/testservers"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/postgres/pgtest"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

// The end-to-end test runs the real producer binary and this consumer's run
// function against the real Postgres, Redis and RabbitMQ, each in a
// database, key prefix and queue of its own.

// input has every kind of bad row the producer rejects, a BOM, CRLF line ends,
// a quoted comma, an embedded newline and duplicate ids (the later wins).
const input = "\ufeffid,first_name,last_name,email_address,created_at,deleted_at,merged_at,parent_user_id\r\n" +
	"1,Ann,Lee,ann@example.com,1600000000000,-1,-1,-1\r\n" +
	"2,\"Smith, Jr.\",Bob,bob@example.com,1600000000001,,,\r\n" +
	"3,Zoë,Ünal,zoe@example.com,1600000000002,1700000000000,1700000000001,2\r\n" +
	"4,\"Multi\nLine\",O'Hara,multi@example.com,0,-1,-1,4\r\n" +
	"5,Too,Few,few@example.com,1600000000003\r\n" +
	"6,Too,Many,many@example.com,1600000000004,-1,-1,-1,extra\r\n" +
	"x7,Bad,Id,badid@example.com,1600000000005,-1,-1,-1\r\n" +
	"8,Bad,Time,badtime@example.com,yesterday,-1,-1,-1\r\n" +
	"9,No,At,no-at-sign,1600000000006,-1,-1,-1\r\n" +
	"2,Bobby,Smith,bobby@example.com,1600000000007,1700000000002,-1,1\r\n" +
	"10,,,empty.names@example.com,1600000000008,-1,-1,99999\r\n"

// want is what the table must hold: the valid rows, the later duplicate winning.
func want() map[int64]viswals.User {
	ms := func(v int64) *time.Time { t := time.UnixMilli(v).UTC(); return &t }
	id := func(v int64) *int64 { return &v }
	return map[int64]viswals.User{
		1:  {ID: 1, FirstName: "Ann", LastName: "Lee", Email: "ann@example.com", CreatedAt: *ms(1600000000000)},
		2:  {ID: 2, FirstName: "Bobby", LastName: "Smith", Email: "bobby@example.com", CreatedAt: *ms(1600000000007), DeletedAt: ms(1700000000002), ParentUserID: id(1)},
		3:  {ID: 3, FirstName: "Zoë", LastName: "Ünal", Email: "zoe@example.com", CreatedAt: *ms(1600000000002), DeletedAt: ms(1700000000000), MergedAt: ms(1700000000001), ParentUserID: id(2)},
		4:  {ID: 4, FirstName: "Multi\nLine", LastName: "O'Hara", Email: "multi@example.com", CreatedAt: *ms(0), ParentUserID: id(4)},
		10: {ID: 10, Email: "empty.names@example.com", CreatedAt: *ms(1600000000008), ParentUserID: id(99999)},
	}
}

var (
	producerOnce sync.Once
	producerBin  string
	producerErr  error
)

// buildProducer builds the producer binary once for the package's tests.
func buildProducer(t *testing.T) string {
	t.Helper()
	producerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "viswals-producer-")
		if err != nil {
			producerErr = err
			return
		}
		producerBin = filepath.Join(dir, "producer")
		out, err := exec.Command("go", "build", "-o", producerBin, "../producer").CombinedOutput()
		if err != nil {
			producerErr = fmt.Errorf("go build producer: %v\n%s", err, out)
		}
	})
	require.NoError(t, producerErr)
	return producerBin
}

// testEnv is the environment of one test's producer and consumer.
type testEnv struct {
	vars    map[string]string
	key     []byte
	dbURL   string
	rabbit  string
	queue   string
	prefix  string
	redis   *redis.Client
	keyring *emailcrypt.Keyring
	logs    logbuf.Buffer // the consumer's log
}

// redisAddr is the local Redis the tests share, each under a key prefix of
// its own.
const redisAddr = "127.0.0.1:6379"

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	keyring, err := emailcrypt.New(key)
	require.NoError(t, err)
	testenv.Service(t, "Redis", redisAddr)
	dbURL := pgtest.NewDatabase(t)
	rabbitURL, queue := rmqtest.NewQueue(t)
	prefix := "test:" + hex.EncodeToString(key[:6]) + ":users:"
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return &testEnv{
		vars: map[string]string{
			"POSTGRES_CONN_URL":   dbURL,
			"REDIS_CONN_URL":      "redis://" + redisAddr + "/0",
			"RABBITMQ_CONN_URL":   rabbitURL,
			"RABBITMQ_QUEUE_NAME": queue,
			"ENCRYPTION_KEY":      base64.StdEncoding.EncodeToString(key),
			"REDIS_KEY_PREFIX":    prefix,
			"MIGRATE_DB":          "true",
			"LOG_LEVEL":           "warn",
			// Tests of access set API_KEYS_FILE and drop this.
			"AUTH_MODE": "none",
		},
		key: key, dbURL: dbURL, rabbit: rabbitURL, queue: queue, prefix: prefix, redis: rdb, keyring: keyring,
	}
}

// startConsumer runs the consumer in-process and returns its base URL; the
// consumer is stopped (as by SIGTERM) when the test ends and must exit cleanly.
func (e *testEnv) startConsumer(t *testing.T) string {
	t.Helper()
	return e.startConsumerWith(t, http.DefaultClient)
}

// startConsumerWith is startConsumer asking for /healthz with client, and
// over HTTPS when the environment sets TLS_CERT_FILE.
func (e *testEnv) startConsumerWith(t *testing.T, client *http.Client) string {
	t.Helper()
	return e.startProcess(t, client, nil, nil, &e.logs)
}

// startProcess is startConsumerWith with arguments (a subcommand and
// flags), settings that override the test's, and a log of its own.
func (e *testEnv) startProcess(t *testing.T, client *http.Client, args []string, override map[string]string, logs *logbuf.Buffer) string {
	t.Helper()
	// The consumer listens on a port found free just before, which another
	// socket may take first: the consumer then stops at once, and another
	// port is tried.
	for attempt := 1; ; attempt++ {
		base, err := e.tryStartProcess(t, client, args, override, logs)
		if err == nil {
			return base
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatalf("%v\n%s", err, logs.String())
		}
	}
}

// tryStartProcess is one attempt of startProcess, on a port of its own.
func (e *testEnv) tryStartProcess(t *testing.T, client *http.Client, args []string, override map[string]string, logs *logbuf.Buffer) (string, error) {
	t.Helper()
	port, err := testservers.FreePort()
	require.NoError(t, err)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	vars := map[string]string{"CONSUMER_PORT": addr}
	for k, v := range e.vars {
		vars[k] = v
	}
	for k, v := range override {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(k string) string { return vars[k] }, strings.NewReader(""), io.Discard, logs)
	}()
	exited := false
	t.Cleanup(func() {
		cancel()
		if exited {
			return
		}
		select {
		case err := <-done:
			assert.NoError(t, err, "consumer exit")
		case <-time.After(20 * time.Second):
			t.Error("consumer did not stop within 20s of cancellation")
		}
	})
	base := "http://" + addr
	if vars["TLS_CERT_FILE"] != "" {
		base = "https://" + addr
	}
	// Generous: on a starved machine the consumer connects to its
	// services and migrates its database slowly.
	err = wait.Poll(2*time.Minute, "consumer /healthz", func() (bool, string, error) {
		select {
		case err := <-done:
			exited = true
			if err == nil {
				err = errors.New("no error")
			}
			return false, "", fmt.Errorf("consumer exited early: %w", err)
		default:
		}
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false, err.Error(), nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status, nil
	})
	return base, err
}

// produce runs the producer binary on path and returns its stdout.
func (e *testEnv) produce(t *testing.T, path string, args ...string) string {
	t.Helper()
	code, stdout, stderr := e.produceExit(t, path, args...)
	require.Zero(t, code, "producer failed: %s", stderr)
	return stdout
}

// waitIngested waits until the consumer at base has ingested at least n rows.
func waitIngested(t *testing.T, base, what string, n float64) {
	t.Helper()
	wait.For(t, 30*time.Second, what, func() (bool, string) {
		got := ingested(t, base)
		return got >= n, fmt.Sprintf("%v rows ingested, want %v", got, n)
	})
}

// ingested reads the consumer's rows-ingested counter from /metrics.
func ingested(t *testing.T, base string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "viswals_rows_ingested_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

// row is a users row with every column, to compare states exactly.
type row struct {
	user         viswals.User
	sealed, xid  string
	versionLoad  int64
	versionLine  int64
	emailHashHex string
}

func readTable(t *testing.T, e *testEnv) map[int64]row {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id, first_name, last_name, email_address, encode(email_hash, 'hex'), created_at, deleted_at, merged_at,
		parent_user_id, version_load, version_line, changed_xid::text FROM users`)
	require.NoError(t, err)
	got := map[int64]row{}
	for rows.Next() {
		var r row
		u := &r.user
		require.NoError(t, rows.Scan(&u.ID, &u.FirstName, &u.LastName, &r.sealed, &r.emailHashHex, &u.CreatedAt, &u.DeletedAt, &u.MergedAt,
			&u.ParentUserID, &r.versionLoad, &r.versionLine, &r.xid))
		u.Email, err = e.keyring.Decrypt(u.ID, r.sealed)
		require.NoError(t, err, "decrypt email of user %d", u.ID)
		got[u.ID] = r
	}
	require.NoError(t, rows.Err())
	return got
}

func normalise(u viswals.User) viswals.User {
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		v := t.UTC()
		return &v
	}
	u.CreatedAt = u.CreatedAt.UTC()
	u.DeletedAt, u.MergedAt = utc(u.DeletedAt), utc(u.MergedAt)
	return u
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	base := e.startConsumer(t)
	path := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(path, []byte(input), 0o600))

	summary := e.produce(t, path)
	assert.Contains(t, summary, "read=11 published=6 rejected=5")

	// The rejects file names each bad row's line and reason.
	rejects, err := os.ReadFile(strings.TrimSuffix(path, ".csv") + ".rejects.csv")
	require.NoError(t, err)
	for _, line := range []string{"\n7,", "\n8,", "\n9,", "\n10,", "\n11,"} {
		assert.Contains(t, string(rejects), line, "rejects file lacks line %s", strings.TrimSpace(line))
	}

	waitIngested(t, base, "6 rows ingested", 6)
	first := readTable(t, e)
	expected := want()
	require.Len(t, first, len(expected))
	for id, w := range expected {
		got, ok := first[id]
		require.True(t, ok, "user %d missing", id)
		assert.Equal(t, w, normalise(got.user), "user %d", id)
		assert.True(t, strings.HasPrefix(got.sealed, "2:v1:"), "email of %d is sealed with a key id, bound to the user", id)
		assert.NotContains(t, got.sealed, "@")
	}

	t.Run("redis holds the same users, emails sealed", func(t *testing.T) {
		ctx := context.Background()
		for id, w := range expected {
			v, err := e.redis.Get(ctx, e.prefix+strconv.FormatInt(id, 10)).Result()
			require.NoError(t, err, "users:%d", id)
			assert.NotContains(t, v, w.Email)
			assert.Contains(t, v, first[id].sealed)
		}
	})

	t.Run("loading the same file again changes nothing", func(t *testing.T) {
		e.produce(t, path)
		waitIngested(t, base, "second load ingested", 12)
		second := readTable(t, e)
		require.Len(t, second, len(first))
		for id, r := range first {
			s := second[id]
			assert.Equal(t, r.user, s.user, "user %d", id)
			assert.Equal(t, r.sealed, s.sealed, "ciphertext of %d must not change", id)
			assert.Equal(t, r.xid, s.xid, "changefeed position of %d must not move", id)
			assert.Greater(t, s.versionLoad, r.versionLoad, "version of %d follows the newer load", id)
		}
		first = second
	})

	t.Run("an old batch redelivered after a newer one changes nothing", func(t *testing.T) {
		stale := viswals.Record{
			User:    viswals.User{ID: 2, FirstName: "STALE", LastName: "OLD", Email: "stale@example.com", CreatedAt: time.UnixMilli(1).UTC()},
			Version: viswals.Version{Load: first[2].versionLoad - 1, Line: 999},
		}
		body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, []viswals.Record{stale})
		require.NoError(t, err)
		before := ingested(t, base)
		rmqtest.Publish(t, e.rabbit, e.queue, amqp.Publishing{ContentType: rabbitmq.ContentTypeGob, Body: body, DeliveryMode: amqp.Persistent})
		waitIngested(t, base, "stale batch consumed", before+1)
		after := readTable(t, e)
		assert.Equal(t, first, after)
	})

	t.Run("no plaintext email anywhere in postgres", func(t *testing.T) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, e.dbURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		for _, w := range expected {
			var n int
			require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM users u WHERE u::text LIKE '%' || $1 || '%'`, w.Email).Scan(&n))
			assert.Zero(t, n, "plaintext email %s found in users", w.Email)
		}
	})
}

// Entries cached for an earlier database would survive the reload of the
// same ids (new users are cached with SET NX), so a consumer that finds
// the table empty clears the cache first.
func TestEmptyDatabaseClearsStaleCache(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := context.Background()
	require.NoError(t, e.redis.Set(ctx, e.prefix+"1", "left from an earlier database", time.Hour).Err())
	require.NoError(t, e.redis.Set(ctx, "other:"+e.prefix+"1", "not ours", time.Minute).Err())
	t.Cleanup(func() { e.redis.Del(context.Background(), "other:"+e.prefix+"1") })

	e.startConsumer(t)
	n, err := e.redis.Exists(ctx, e.prefix+"1").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the stale entry is gone before the consumer serves")
	n, err = e.redis.Exists(ctx, "other:"+e.prefix+"1").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "keys outside the prefix are kept")
}
