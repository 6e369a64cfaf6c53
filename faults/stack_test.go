package faults_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/internal/testservers"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/rediscache"
	"github.com/viswals/viswals/rediscache/redistest"
)

// Deadlines of the polls. Generous: the machine may be busy with other
// tests; a healthy run takes a fraction of them.
var (
	startTimeout    = 90 * time.Second
	loadTimeout     = 5 * time.Minute // set from the flag by TestMain
	loadTimeoutFlag = flag.Duration("faults.load-timeout", loadTimeout, "how long a scenario may wait for a load to complete")
)

// stack is one scenario's world: its own Postgres cluster and redis-server,
// a queue of its own on a RabbitMQ node (its own node when it restarts the
// broker), an encryption key, and the processes it starts.
type stack struct {
	t     *testing.T
	bin   string
	dir   string
	in    *input
	pg    *pgCluster
	redis *redisServer
	// redisCluster, with stackOptions.redisCluster: the consumers' Redis.
	redisCluster *redistest.Cluster
	rabbit       *rabbitNode
	// cluster, for the scenarios that run one: rabbit is its first node.
	cluster *rabbitCluster
	// brokers is RABBITMQ_CONN_URL of the producers: rabbit's URL, or
	// every node of the cluster.
	brokers string
	queue   string
	key     string
	ring    *emailcrypt.Keyring
	apiKey  string // an admin's API key, in the consumers' API_KEYS_FILE
	keys    string // that file
	procs   []*proc
	names   map[string]int
}

type stackOptions struct {
	ownRabbit bool // a RabbitMQ node of the scenario's own, which it may restart
	cluster   int  // a RabbitMQ cluster of the scenario's own, of this many nodes
	rows      int  // an input of its own of this many rows (default: the shared 100k)
	// redisCluster gives the consumers a Redis Cluster of the scenario's
	// own, of three masters each with a replica, instead of one server.
	redisCluster bool
}

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	prepare(t, !opts.ownRabbit && opts.cluster == 0)
	s := &stack{t: t, dir: filepath.Join(shared.root, strings.ReplaceAll(t.Name(), "/", "_")+"-"+randHex(3)), names: map[string]int{}}
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !*keep {
			os.RemoveAll(s.dir)
		}
	})
	s.bin, s.in = shared.binDir, shared.in
	pgBin, owner, template := shared.pgBin, shared.pgOwner, shared.pgTemplate

	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	s.key = base64.StdEncoding.EncodeToString(raw)
	ring, err := emailcrypt.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	s.ring = ring
	apiKey, line, err := auth.GenerateKey("faults", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	s.apiKey, s.keys = apiKey, filepath.Join(s.dir, "api-keys")
	if err := os.WriteFile(s.keys, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	pgDir := filepath.Join(shared.root, "pg-"+randHex(4))
	pg, err := newPGCluster(pgBin, owner, template, pgDir)
	t.Cleanup(func() {
		if pg != nil {
			pg.close()
		}
		os.RemoveAll(pgDir)
	})
	if err != nil {
		t.Fatalf("start a Postgres cluster: %v", err)
	}
	s.pg = pg

	redisDir := filepath.Join(s.dir, "redis")
	if err := os.Mkdir(redisDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rs, err := newRedis(redisDir)
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(rs.close)
	s.redis = rs
	if opts.redisCluster {
		start := time.Now()
		cluster, err := redistest.StartCluster(filepath.Join(s.dir, "redis-cluster"), redistest.ClusterOptions{Masters: 3, Replicas: 1, NodeTimeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("start a Redis Cluster: %v", err)
		}
		t.Cleanup(cluster.Stop)
		s.redisCluster = cluster
		t.Logf("own Redis Cluster of %d nodes up in %s", len(cluster.Nodes), time.Since(start).Round(time.Millisecond))
	}

	if opts.rows > 0 {
		start := time.Now()
		in, err := generateInput(filepath.Join(s.dir, "users.csv"), opts.rows, 5)
		if err != nil {
			t.Fatalf("generate the input: %v", err)
		}
		s.in = in
		t.Logf("generated %v in %s", in, time.Since(start).Round(time.Millisecond))
	}
	switch {
	case opts.cluster > 0:
		start := time.Now()
		cl, err := startRabbitCluster(filepath.Join(s.dir, "rabbit"), opts.cluster)
		if cl != nil {
			t.Cleanup(cl.close)
		}
		if err != nil {
			t.Fatalf("start a RabbitMQ cluster: %v", err)
		}
		s.cluster, s.rabbit = cl, cl.nodes[0]
		t.Logf("own RabbitMQ cluster of %d nodes up in %s", len(cl.nodes), time.Since(start).Round(time.Millisecond))
	case opts.ownRabbit:
		start := time.Now()
		node, err := startRabbit(filepath.Join(s.dir, "rabbit"))
		if err != nil {
			t.Fatalf("start a RabbitMQ node: %v", err)
		}
		t.Cleanup(node.close)
		s.rabbit = node
		t.Logf("own RabbitMQ node %s up in %s", node.node, time.Since(start).Round(time.Millisecond))
	default:
		s.rabbit = shared.rabbit
	}
	s.brokers = s.rabbit.url()
	if s.cluster != nil {
		s.brokers = s.cluster.urls()
	}
	s.queue = "faults-" + strings.ToLower(t.Name()) + "-" + randHex(3)
	if !opts.ownRabbit && opts.cluster == 0 {
		t.Cleanup(s.deleteQueues)
	}
	// Registered last, so it runs first: the tails show the state at the
	// failure, before the processes are stopped.
	t.Cleanup(s.dumpOnFailure)
	return s
}

// dumpOnFailure prints the tails of every log of the scenario.
func (s *stack) dumpOnFailure() {
	if !s.t.Failed() {
		return
	}
	var b strings.Builder
	b.WriteString("logs of the failed scenario:\n")
	for _, p := range s.procs {
		lines := 40
		if p.quit {
			lines = 400 // with the goroutine dump
		}
		b.WriteString(p.tail(lines))
	}
	if t := tailFile(s.pg.logPath, 20); t != "" {
		fmt.Fprintf(&b, "--- postgres (port %d)\n%s", s.pg.port, t)
	}
	if s.redis.p != nil {
		b.WriteString(s.redis.p.tail(10))
	}
	nodes := []*rabbitNode{s.rabbit}
	if s.cluster != nil {
		nodes = s.cluster.nodes
	}
	for _, n := range nodes {
		if t := n.logTail(20); t != "" {
			fmt.Fprintf(&b, "--- rabbitmq node %s\n%s", n.node, t)
		}
	}
	s.t.Log(b.String())
}

func (s *stack) deleteQueues() {
	conn, err := amqp.Dial(s.rabbit.url())
	if err != nil {
		return
	}
	defer conn.Close()
	for _, q := range []string{s.queue, s.queue + ".dlq"} {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			ch.Close()
		}
	}
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete(s.queue+".dlx", false, false)
		ch.Close()
	}
}

// procName numbers the processes of one kind: consumer-1, consumer-2...
func (s *stack) procName(kind string) string {
	s.names[kind]++
	return fmt.Sprintf("%s-%d", kind, s.names[kind])
}

// start launches a binary of the project with the scenario's settings.
func (s *stack) start(kind string, withStdin bool, env []string, args ...string) *proc {
	s.t.Helper()
	name := s.procName(kind)
	work := filepath.Join(s.dir, name)
	if err := os.Mkdir(work, 0o755); err != nil { // an empty working directory: no .env
		s.t.Fatal(err)
	}
	p, err := launch(name, s.dir, work, cleanEnv(env...), withStdin, false, filepath.Join(s.bin, kind), args...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.procs = append(s.procs, p)
	s.t.Cleanup(func() {
		if s.t.Failed() && kind == "consumer" && p.running() {
			// A goroutine dump in its log shows where a stuck consumer
			// is stuck.
			p.quit = true
			_ = p.signal(syscall.SIGQUIT)
			p.wait(10 * time.Second)
		}
		p.stop()
	})
	return p
}

// consumer is a running consumer process and its HTTP address.
type consumer struct {
	*proc
	addr   string
	apiKey string
}

// startConsumer starts a consumer and waits until its HTTP server answers.
func (s *stack) startConsumer() *consumer {
	s.t.Helper()
	return s.startConsumerAt(s.brokers)
}

// startConsumerAt starts a consumer whose RABBITMQ_CONN_URL is brokers.
func (s *stack) startConsumerAt(brokers string) *consumer {
	s.t.Helper()
	port, err := testservers.FreePort()
	if err != nil {
		s.t.Fatal(err)
	}
	c := &consumer{addr: "127.0.0.1:" + strconv.Itoa(port), apiKey: s.apiKey}
	c.proc = s.start("consumer", false, []string{
		"POSTGRES_CONN_URL=" + s.pg.url(),
		"REDIS_CONN_URL=" + s.redisURL(),
		"RABBITMQ_CONN_URL=" + brokers,
		"RABBITMQ_QUEUE_NAME=" + s.queue,
		"CONSUMER_PORT=" + c.addr,
		"ENCRYPTION_KEY=" + s.key,
		"API_KEYS_FILE=" + s.keys,
		"MIGRATE_DB=true",
		"LOG_LEVEL=info",
	})
	wait.For(s.t, startTimeout, "consumer "+c.name+" to serve /healthz", func() (bool, string) {
		if !c.running() {
			s.t.Fatalf("%s exited while starting (%s)", c.name, c.cmd.ProcessState)
		}
		code, _, err := c.get("/healthz")
		return code == http.StatusOK, fmt.Sprintf("status %d, %v", code, err)
	})
	return c
}

// redisURL is the consumers' REDIS_CONN_URL.
func (s *stack) redisURL() string {
	if s.redisCluster != nil {
		return s.redisCluster.URL()
	}
	return s.redis.url()
}

// redisClient returns a client of the consumers' Redis; the caller closes
// it.
func (s *stack) redisClient() redis.UniversalClient {
	if s.redisCluster != nil {
		return s.redisCluster.Client()
	}
	return newRedisClient(s.redis.port)
}

// get does a GET on the consumer's HTTP server.
func (c *consumer) get(path string) (int, []byte, error) {
	// Generous: on a starved machine a healthy consumer can answer slowly;
	// polls end at their own deadlines.
	client := http.Client{Timeout: time.Minute}
	req, err := http.NewRequest(http.MethodGet, "http://"+c.addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusNotFound && !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		// The mux's own 404 (not the API's JSON one): no such route.
		return resp.StatusCode, body, errNoRoute
	}
	return resp.StatusCode, body, err
}

var errNoRoute = errors.New("no such route")

// metric reads one counter from the consumer's /metrics (0 when absent).
func (c *consumer) metric(name string) float64 {
	code, body, err := c.get("/metrics")
	if err != nil || code != http.StatusOK {
		return 0
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// terminate sends SIGTERM and asserts a clean exit (0) within 15 s.
func (s *stack) terminate(c *consumer) time.Duration {
	s.t.Helper()
	start := time.Now()
	if err := c.signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	if !c.wait(15 * time.Second) {
		s.t.Fatalf("%s did not exit within 15 s of SIGTERM", c.name)
	}
	took := time.Since(start)
	if code := c.exitCode(); code != 0 {
		s.t.Fatalf("%s exited with %d after SIGTERM, want 0", c.name, code)
	}
	return took
}

// kill kills p with SIGKILL and waits for it to be gone.
func (s *stack) kill(p *proc) {
	s.t.Helper()
	if !p.running() {
		s.t.Fatalf("%s is not running: cannot kill it mid-load (%s)", p.name, p.cmd.ProcessState)
	}
	p.stop()
}

// producerEnv is the producer's environment. Small batches make the load
// many messages, so that a fault always finds some in flight.
func (s *stack) producerEnv() []string {
	return []string{
		"RABBITMQ_CONN_URL=" + s.brokers,
		"RABBITMQ_QUEUE_NAME=" + s.queue,
		"PRODUCER_BATCH_SIZE=500",
		"PRODUCER_RECONNECT_TIMEOUT=3m",
		"LOG_LEVEL=info",
	}
}

// startProducer starts a producer on the input file.
func (s *stack) startProducer() *proc {
	name := fmt.Sprintf("producer-%d", s.names["producer"]+1)
	return s.start("producer", false, s.producerEnv(), "--rejects", filepath.Join(s.dir, name+".rejects.csv"), s.in.path)
}

// startProducerStdin starts a producer reading "-", for the test to feed
// the file at its own pace.
func (s *stack) startProducerStdin() *proc {
	name := fmt.Sprintf("producer-%d", s.names["producer"]+1)
	return s.start("producer", true, s.producerEnv(), "--rejects", filepath.Join(s.dir, name+".rejects.csv"), "-")
}

// feeder writes parts of the input to a producer's stdin in the
// background, so that a scenario's faults fall mid-file.
type feeder struct {
	s    *stack
	p    *proc
	done chan error
}

func (s *stack) feeder(p *proc) *feeder { return &feeder{s: s, p: p, done: make(chan error, 1)} }

// feed writes the input's share [from, to); the last part (to 1) also
// ends the producer's input.
func (f *feeder) feed(from, to float64) {
	size := float64(f.s.in.size)
	go func() {
		err := f.s.feed(f.p.stdin, int64(size*from), int64(size*to))
		if to == 1 {
			f.p.stdin.Close()
		}
		f.done <- err
	}()
}

// wait returns once the part being fed is written.
func (f *feeder) wait() {
	f.s.t.Helper()
	select {
	case err := <-f.done:
		if err != nil {
			f.s.t.Fatalf("feed %s: %v", f.p.name, err)
		}
	case <-time.After(loadTimeout):
		f.s.t.Fatalf("%s did not take its input within %s", f.p.name, loadTimeout)
	}
}

// feed copies bytes [from, to) of the input file to w.
func (s *stack) feed(w io.Writer, from, to int64) error {
	f, err := os.Open(s.in.path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, io.NewSectionReader(f, from, to-from))
	return err
}

// waitProducer waits for a producer to exit 0 and checks its summary line
// against the input.
func (s *stack) waitProducer(p *proc) {
	s.t.Helper()
	if !p.wait(loadTimeout) {
		s.t.Fatalf("%s did not finish within %s", p.name, loadTimeout)
	}
	if code := p.exitCode(); code != 0 {
		s.t.Fatalf("%s exited with %d, want 0", p.name, code)
	}
	read, published, rejected, ok := summary(p.stdout())
	if !ok {
		s.t.Fatalf("%s printed no summary line (read=N published=N rejected=N)", p.name)
	}
	if read != s.in.rows || published != s.in.published() || rejected != s.in.rejected {
		s.t.Fatalf("%s: summary read=%d published=%d rejected=%d, want read=%d published=%d rejected=%d",
			p.name, read, published, rejected, s.in.rows, s.in.published(), s.in.rejected)
	}
}

// rowCount counts the users table (0 while it does not exist yet).
func (s *stack) rowCount() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgConnect(ctx, s.pg.url())
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n)
	return n, err
}

// waitRows waits until the table holds at least n users, while the
// consumers stay up: the trigger of a fault "in the middle of the load".
func (s *stack) waitRows(n int, alive ...*consumer) int {
	s.t.Helper()
	var got int
	wait.For(s.t, loadTimeout, fmt.Sprintf("at least %d users in the table", n), func() (bool, string) {
		for _, c := range alive {
			if !c.running() {
				s.t.Fatalf("%s exited (%s)", c.name, c.cmd.ProcessState)
			}
		}
		var err error
		got, err = s.rowCount()
		return err == nil && got >= n, fmt.Sprintf("%d users, %v", got, err)
	})
	if got >= len(s.in.want) {
		s.t.Fatalf("the load was already complete (%d users) when the fault was due at %d", got, n)
	}
	return got
}

// waitExact waits until the table equals want exactly.
func (s *stack) waitExact(want map[int64]wantUser, alive ...*consumer) {
	s.t.Helper()
	var lastCompare time.Time
	wait.For(s.t, loadTimeout, "the users table to equal the input's valid rows", func() (bool, string) {
		for _, c := range alive {
			if !c.running() {
				s.t.Fatalf("%s exited (%s)", c.name, c.cmd.ProcessState)
			}
		}
		n, err := s.rowCount()
		if err != nil || n < len(want) || time.Since(lastCompare) < 500*time.Millisecond {
			return false, fmt.Sprintf("%d users (want %d), %v", n, len(want), err)
		}
		lastCompare = time.Now()
		diff, err := s.diff(want)
		if err != nil {
			return false, err.Error()
		}
		return diff == nil, strings.Join(diff, "\n    ")
	})
}

// diff compares the table with want.
func (s *stack) diff(want map[int64]wantUser) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := readTable(ctx, s.pg.url(), s.ring)
	if err != nil {
		return nil, err
	}
	return diffTable(want, got), nil
}

// assertExact fails unless the table equals want now.
func (s *stack) assertExact(want map[int64]wantUser) {
	s.t.Helper()
	diff, err := s.diff(want)
	if err != nil {
		s.t.Fatal(err)
	}
	if diff != nil {
		s.t.Fatalf("the users table differs from the input:\n  %s", strings.Join(diff, "\n  "))
	}
}

// waitDrained waits until the queue holds nothing, ready or unacked.
func (s *stack) waitDrained() {
	s.t.Helper()
	wait.For(s.t, loadTimeout, "queue "+s.queue+" to be empty (ready and unacked)", func() (bool, string) {
		ready, unacked, err := s.rabbit.queueDepth(s.queue)
		return err == nil && ready == 0 && unacked == 0, fmt.Sprintf("ready=%d unacked=%d err=%v", ready, unacked, err)
	})
}

// queueMessages returns the ready messages of a queue over AMQP.
func (s *stack) queueMessages(queue string) int {
	s.t.Helper()
	conn, err := amqp.Dial(s.rabbit.url())
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		s.t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		s.t.Fatalf("inspect %s: %v", queue, err)
	}
	return q.Messages
}

// finish ends a scenario: the table equals want, the queue is drained, the
// consumers stop cleanly on SIGTERM, nothing is left in the queue and the
// dead-letter queue holds wantDLQ messages; every cached user agrees with
// the table.
func (s *stack) finish(want map[int64]wantUser, wantDLQ int, consumers ...*consumer) {
	s.t.Helper()
	s.waitExact(want, consumers...)
	s.waitDrained()
	for _, c := range consumers {
		s.terminate(c)
	}
	s.assertExact(want)
	if n := s.queueMessages(s.queue); n != 0 {
		s.t.Fatalf("queue %s holds %d messages after the load, want 0", s.queue, n)
	}
	if n := s.queueMessages(s.queue + ".dlq"); n != wantDLQ {
		s.t.Fatalf("dead-letter queue %s.dlq holds %d messages, want %d", s.queue, n, wantDLQ)
	}
	cached := s.checkCache(want)
	s.t.Logf("table equals the input: %d users; %d cached in Redis, all current", len(want), cached)
}

// checkCache checks that every users:{id} in Redis holds the user as the
// table does (the email still sealed, decrypting to the right one) and
// returns how many there are.
func (s *stack) checkCache(want map[int64]wantUser) int {
	s.t.Helper()
	stale, n, err := s.staleCache(want)
	if err != nil {
		s.t.Fatal(err)
	}
	if len(stale) > 0 {
		s.t.Fatalf("Redis holds %d stale or unknown users of %d cached:\n  %s", len(stale), n, strings.Join(stale[:min(5, len(stale))], "\n  "))
	}
	return n
}

// waitCacheCurrent waits until no cached user differs from want: the
// consumer drops what its cache missed a breaker cooldown after the cache
// answers again.
func (s *stack) waitCacheCurrent(want map[int64]wantUser) {
	s.t.Helper()
	var last time.Time
	wait.For(s.t, startTimeout, "every cached user to be current", func() (bool, string) {
		if time.Since(last) < time.Second {
			return false, "(scanned less than a second ago)"
		}
		last = time.Now()
		stale, n, err := s.staleCache(want)
		return err == nil && len(stale) == 0, fmt.Sprintf("%d stale of %d cached, %v", len(stale), n, err)
	})
}

// staleCache describes the cached users that differ from want and counts
// the cached users.
func (s *stack) staleCache(want map[int64]wantUser) (stale []string, n int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := s.redisClient()
	defer client.Close()
	cache := rediscache.New(client, rediscache.Options{Prefix: "users:"})
	var keys []string
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, "users:*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return iter.Err()
	}
	if cluster, ok := client.(*redis.ClusterClient); ok {
		// Every master holds a share of the keys; one at a time, so that
		// keys needs no lock.
		var masters []*redis.Client
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			masters = append(masters, m)
			return nil
		})
		for _, m := range masters {
			err = errors.Join(err, scan(ctx, m))
		}
	} else {
		err = scan(ctx, client)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("scan Redis: %w", err)
	}
	ids := make([]int64, len(keys))
	for i, key := range keys {
		if ids[i], err = strconv.ParseInt(strings.TrimPrefix(key, "users:"), 10, 64); err != nil {
			return nil, 0, fmt.Errorf("unexpected key %q in Redis", key)
		}
	}
	// In pipelined chunks: a round trip per user took a large share of the
	// deadline on a starved machine.
	const chunk = 1000
	for from := 0; from < len(ids); from += chunk {
		part := ids[from:min(from+chunk, len(ids))]
		users, errs := cache.GetMany(ctx, part)
		for i, id := range part {
			su, err := users[i], errs[i]
			if viswals.ErrorCode(err) == viswals.ENOTFOUND {
				continue // deleted since the scan saw it
			}
			if err != nil {
				return nil, 0, fmt.Errorf("read cached user %d: %w", id, err)
			}
			email, err := s.ring.Decrypt(su.ID, su.EmailSealed)
			if err != nil {
				return nil, 0, fmt.Errorf("cached user %d: decrypt: %w", id, err)
			}
			got := wantUser{ID: su.ID, First: su.FirstName, Last: su.LastName, Email: email,
				Created: su.CreatedAt.UnixMilli(), Deleted: millis(su.DeletedAt), Merged: millis(su.MergedAt), Parent: su.ParentUserID}
			if w, ok := want[id]; !ok || !sameUser(w, got) {
				stale = append(stale, fmt.Sprintf("users:%d\n      got  %v\n      want %v", id, got, w))
			}
			n++
		}
	}
	return stale, n, nil
}

// apiUser is the HTTP API's JSON user.
type apiUser struct {
	ID           int64      `json:"id"`
	FirstName    string     `json:"first_name"`
	LastName     string     `json:"last_name"`
	Email        string     `json:"email_address"`
	CreatedAt    time.Time  `json:"created_at"`
	DeletedAt    *time.Time `json:"deleted_at"`
	MergedAt     *time.Time `json:"merged_at"`
	ParentUserID *int64     `json:"parent_user_id"`
}

// getUser fetches GET /users/{id}; ok is false when the consumer's mux has
// no such route (errNoRoute), so callers skip the API check instead of
// failing it.
func (s *stack) getUser(c *consumer, id int64) (u wantUser, status int, ok bool) {
	s.t.Helper()
	code, body, err := c.get("/users/" + strconv.FormatInt(id, 10))
	if errors.Is(err, errNoRoute) {
		return u, code, false
	}
	if err != nil {
		s.t.Fatalf("GET /users/%d: %v", id, err)
	}
	if code != http.StatusOK {
		return u, code, true
	}
	var env struct {
		Status string  `json:"status"`
		Data   apiUser `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		s.t.Fatalf("GET /users/%d: %v in %s", id, err, body)
	}
	a := env.Data
	return wantUser{ID: a.ID, First: a.FirstName, Last: a.LastName, Email: a.Email, Created: a.CreatedAt.UnixMilli(),
		Deleted: millis(a.DeletedAt), Merged: millis(a.MergedAt), Parent: a.ParentUserID}, code, true
}

func newRedisClient(port int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})
}
