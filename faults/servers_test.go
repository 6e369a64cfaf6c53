package faults_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/viswals/viswals/internal/testservers"
	"github.com/viswals/viswals/internal/wait"
)

// ---- PostgreSQL ----

// pgOwner is who runs the servers' PostgreSQL clusters.
type pgOwner = testservers.PGOwner

// initPGTemplate runs initdb once; clusters are copies of its result.
func initPGTemplate(bin string, owner pgOwner, dir string) (string, error) {
	if err := owner.Mkdir(dir); err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	path, args := owner.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	if out, err := run(cleanEnv("LC_ALL=C.UTF-8"), dir, path, args...); err != nil {
		return "", fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return data, nil
}

// pgCluster is a PostgreSQL server of a test's own, on a free port.
type pgCluster struct {
	bin     string
	owner   pgOwner
	dir     string // holds data/, the socket and server.log
	data    string
	logPath string
	port    int
}

// newPGCluster copies the template data directory into dir and starts a
// server on it. fsync is off, which is safe here: the tests crash the
// server process, never the machine, and the OS keeps what was written to
// it. synchronous_commit must stay on: with it off, a crash of the server
// loses commits it has already acknowledged (their WAL still in shared
// memory), and the consumer, rightly, has acked their messages by then.
func newPGCluster(bin string, owner pgOwner, template, dir string) (*pgCluster, error) {
	if err := owner.Mkdir(dir); err != nil {
		return nil, err
	}
	c := &pgCluster{bin: bin, owner: owner, dir: dir, data: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "server.log")}
	if out, err := run(cleanEnv(), dir, "cp", "-a", template, c.data); err != nil {
		return nil, fmt.Errorf("copy the template cluster: %w\n%s", err, out)
	}
	port, err := testservers.FreePort()
	if err != nil {
		return nil, err
	}
	c.port = port
	return c, c.start()
}

func (c *pgCluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func (c *pgCluster) pgctl(args ...string) error {
	path, argv := c.owner.Command(filepath.Join(c.bin, "pg_ctl"), append([]string{"-D", c.data}, args...)...)
	out, err := run(cleanEnv(), c.dir, path, argv...)
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, tailFile(c.logPath, 20))
	}
	return nil
}

// start starts the server and returns once it accepts connections.
func (c *pgCluster) start() error {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c full_page_writes=off -c max_connections=100", c.port, c.dir)
	return c.pgctl("-l", c.logPath, "-w", "-t", "120", "-o", opts, "start")
}

// stop stops the server: mode "immediate" is a crash (no shutdown
// checkpoint, recovery at the next start), "fast" a clean stop.
func (c *pgCluster) stop(mode string) error {
	return c.pgctl("-m", mode, "-w", "-t", "120", "stop")
}

// close stops the server if it runs; the caller removes dir.
func (c *pgCluster) close() {
	if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err == nil {
		_ = c.stop("immediate")
	}
}

// ---- Redis ----

// redisServer is a redis-server of a test's own, without persistence.
type redisServer struct {
	path   string
	dir    string
	port   int
	p      *proc
	starts int
}

func newRedis(dir string) (*redisServer, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found in PATH")
	}
	port, err := testservers.FreePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{path: path, dir: dir, port: port}
	return r, r.start()
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// start starts the server on its port and returns once it answers PING.
func (r *redisServer) start() error {
	r.starts++
	p, err := launch(fmt.Sprintf("redis-%d", r.starts), r.dir, r.dir, cleanEnv(), false, false, r.path,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--protected-mode", "no")
	if err != nil {
		return err
	}
	r.p = p
	client := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer client.Close()
	err = wait.Poll(30*time.Second, fmt.Sprintf("redis-server to answer PING on port %d", r.port), func() (bool, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := client.Ping(ctx).Err()
		if err != nil && !p.running() {
			return false, "", errors.New("redis-server exited")
		}
		return err == nil, fmt.Sprint(err), nil
	})
	if err != nil {
		p.stop()
		return fmt.Errorf("%w\n%s", err, p.tail(20))
	}
	return nil
}

// kill kills the server with SIGKILL: a crash, the cache is gone.
func (r *redisServer) kill() { r.p.stop() }

func (r *redisServer) close() {
	if r.p != nil {
		r.p.stop()
	}
}

// ---- RabbitMQ ----

// rabbitNode is a RabbitMQ node of its own: its own node name, AMQP and
// distribution ports, data and log directories, and Erlang cookie (HOME is
// its directory). It shares only the machine's epmd.
type rabbitNode struct {
	server, ctlPath string
	dir             string
	node            string // name@localhost
	port, distPort  int
	env             []string
	p               *proc
	starts          int
}

func startRabbit(dir string) (*rabbitNode, error) {
	n, err := newRabbitNode(dir, dir, "faults-"+randHex(4)+"@localhost")
	if err != nil {
		return nil, err
	}
	if err := n.launch(); err != nil {
		return nil, err
	}
	return n, nil
}

// newRabbitNode prepares a node named node in dir, whose Erlang cookie is
// in home (nodes of one cluster share it); launch starts it.
func newRabbitNode(dir, home, node string) (*rabbitNode, error) {
	server, ctl, err := testservers.RabbitScripts()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n := &rabbitNode{server: server, ctlPath: ctl, dir: dir, node: node}
	if n.port, err = testservers.FreePort(); err != nil {
		return nil, err
	}
	if n.distPort, err = testservers.FreePort(); err != nil {
		return nil, err
	}
	nodeEnv, err := testservers.RabbitNodeFiles(dir, n.node, n.distPort,
		fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nloopback_users = none\n", n.port))
	if err != nil {
		return nil, err
	}
	n.env = cleanEnv(append([]string{
		"HOME=" + home, // the Erlang cookie of this node and of its rabbitmqctl
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(n.port),
	}, nodeEnv...)...)
	return n, nil
}

// launch starts the node's VM and waits until it accepts AMQP.
func (n *rabbitNode) launch() error {
	n.starts++
	var err error
	if n.p, err = launch(fmt.Sprintf("rabbitmq-%d", n.starts), n.dir, n.dir, n.env, false, true, n.server); err != nil {
		return err
	}
	if err := n.waitAMQP(3 * time.Minute); err != nil {
		n.close()
		return err
	}
	return nil
}

// kill kills the node's VM with SIGKILL: a broker crash. relaunch starts
// it again on the same data, ports and name.
func (n *rabbitNode) kill() { n.p.stop() }

func (n *rabbitNode) relaunch() error { return n.launch() }

func (n *rabbitNode) url() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.port) }

// waitAMQP polls until the node accepts an AMQP connection.
func (n *rabbitNode) waitAMQP(timeout time.Duration) error {
	exited := errors.New("it exited while starting")
	err := wait.Poll(timeout, fmt.Sprintf("RabbitMQ node %s to accept AMQP on port %d", n.node, n.port), func() (bool, string, error) {
		conn, err := amqp.DialConfig(n.url(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err == nil {
			conn.Close()
			return true, "", nil
		}
		if !n.p.running() {
			return false, "", exited
		}
		return false, err.Error(), nil
	})
	switch {
	case errors.Is(err, exited):
		return fmt.Errorf("%w:\n%s\n%s", err, n.p.tail(30), n.logTail(30))
	case err != nil:
		return fmt.Errorf("%w\n%s", err, n.logTail(30))
	}
	return nil
}

func (n *rabbitNode) logTail(lines int) string {
	return tailFile(filepath.Join(n.dir, "log", n.node+".log"), lines)
}

// ctl runs rabbitmqctl against this node.
func (n *rabbitNode) ctl(args ...string) (string, error) {
	return run(n.env, n.dir, n.ctlPath, append([]string{"-n", n.node}, args...)...)
}

// queueDepth returns the ready and unacknowledged messages of queue, as
// the broker counts them (AMQP itself reports only the ready ones).
func (n *rabbitNode) queueDepth(queue string) (ready, unacked int, err error) {
	out, err := n.ctl("list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == queue {
			ready, _ = strconv.Atoi(f[1])
			unacked, _ = strconv.Atoi(f[2])
			return ready, unacked, nil
		}
	}
	return 0, 0, fmt.Errorf("queue %q not in list_queues output:\n%s", queue, out)
}

// close stops the node: gracefully if it can, killed otherwise.
func (n *rabbitNode) close() {
	if n.p == nil || !n.p.running() {
		return
	}
	// The VM alone: it stops gracefully on SIGTERM; its helpers in the
	// group go with it, or with the SIGKILL of stop.
	_ = n.p.cmd.Process.Signal(syscall.SIGTERM)
	if !n.p.wait(60 * time.Second) {
		n.p.stop()
	}
}

// ---- helpers ----

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pgConnect opens a connection for the test's own queries.
func pgConnect(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = 5 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}
