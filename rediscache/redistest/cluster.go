package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/wait"
)

// Cluster is a Redis Cluster of a test's own: redis-server processes in
// cluster mode on free ports of 127.0.0.1, without persistence, joined by
// redis-cli --cluster create. The fault scenarios kill and restart its
// nodes.
type Cluster struct {
	Nodes []*Node
	dir   string
}

// Node is one redis-server of a Cluster.
type Node struct {
	Port int
	path string
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// ClusterOptions shape a Cluster.
type ClusterOptions struct {
	Masters  int // default 3, the fewest redis-cli accepts
	Replicas int // per master
	// NodeTimeout is cluster-node-timeout: how long a master may not
	// answer before its replica takes over (default 2 s, Redis's is 15 s).
	NodeTimeout time.Duration
}

// StartCluster starts a cluster in dir and returns once every node says
// cluster_state:ok. On error it stops what it started.
func StartCluster(dir string, opts ClusterOptions) (*Cluster, error) {
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = 2 * time.Second
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not on PATH (apt-get install redis-server)")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli is not on PATH (apt-get install redis-tools)")
	}
	c := &Cluster{dir: dir}
	n := opts.Masters * (1 + opts.Replicas)
	for i := range n {
		port, err := freePort()
		if err != nil {
			c.Stop()
			return nil, err
		}
		node := &Node{Port: port, path: server, dir: filepath.Join(dir, fmt.Sprintf("node-%d", i+1))}
		if err := os.MkdirAll(node.dir, 0o755); err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, node)
		if err := node.start(opts.NodeTimeout); err != nil {
			c.Stop()
			return nil, err
		}
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	if err := c.WaitOK(time.Minute); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Addrs returns host:port of every node.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// URL returns REDIS_CONN_URL for the cluster: every node's URL,
// comma-separated.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = "redis://" + n.Addr()
	}
	return strings.Join(urls, ",")
}

// Client returns a cluster client of c; the caller closes it.
func (c *Cluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DialTimeout: time.Second})
}

// WaitOK waits until every running node reports cluster_state:ok and the
// same number of masters, each with every slot served.
func (c *Cluster) WaitOK(timeout time.Duration) error {
	return wait.Poll(timeout, "the Redis Cluster to report cluster_state:ok on every running node", func() (bool, string, error) {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			info, err := n.command("CLUSTER", "INFO")
			if err != nil {
				return false, fmt.Sprintf("node %s: %v", n.Addr(), err), nil
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				return false, fmt.Sprintf("node %s: %s", n.Addr(), firstLines(info, 3)), nil
			}
		}
		return true, "", nil
	})
}

// Master returns a node that is a master now, by CLUSTER NODES as a
// running node sees it.
func (c *Cluster) Master() (*Node, error) {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		role, err := n.command("ROLE")
		if err == nil && strings.HasPrefix(role, "master") {
			return n, nil
		}
	}
	return nil, errors.New("no running node is a master")
}

// Stop kills every node.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Kill()
	}
}

// Addr returns the node's host:port.
func (n *Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// Running reports whether the node's process runs.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill kills the node with SIGKILL (a crash: its data is gone, its
// nodes.conf stays) and waits for it to be gone.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts a killed node again on its port and nodes.conf: it
// rejoins the cluster, as a replica if another took its place.
func (n *Node) Restart(nodeTimeout time.Duration) error { return n.start(nodeTimeout) }

func (n *Node) start(nodeTimeout time.Duration) error {
	return n.startWith("--port", strconv.Itoa(n.Port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--dir", n.dir, "--save", "", "--appendonly", "no",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
		// A replica takes over however long its link was down: on a busy
		// machine the default (ten node timeouts) can leave no replica
		// willing, and the cluster failed for good.
		"--cluster-replica-validity-factor", "0",
		"--logfile", "redis.log")
}

// command runs one command on this node alone and returns its reply as
// text.
func (n *Node) command(args ...any) (string, error) {
	client := redis.NewClient(&redis.Options{Addr: n.Addr(), DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := client.Do(ctx, args...).Result()
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case []any:
		var b bytes.Buffer
		for _, e := range v {
			fmt.Fprintf(&b, "%v\n", e)
		}
		return b.String(), nil
	default:
		return fmt.Sprint(v), nil
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// shared is the cluster a package's tests share, started on first use.
var shared struct {
	once    sync.Once
	dir     string
	cluster *Cluster
	err     error
}

// SharedCluster returns a 3-master Redis Cluster shared by the tests of
// the package, started on first use; each test keeps to keys of its own
// (ClusterPrefix). StopShared, from TestMain, stops it. Under -short the
// test is skipped; without redis-server it fails.
func SharedCluster(t testing.TB) *Cluster {
	t.Helper()
	testenv.SkipShort(t, "starts a Redis Cluster of its own (redis-server --cluster-enabled yes, three of them)")
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "viswals-redis-cluster-")
		if shared.err == nil {
			shared.cluster, shared.err = StartCluster(shared.dir, ClusterOptions{})
		}
	})
	if shared.err != nil {
		testenv.Missing(t, "a Redis Cluster", shared.err)
	}
	return shared.cluster
}

// StopShared stops the shared cluster, if a test started it.
func StopShared() {
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
}

// ClusterClient returns a client of the shared cluster, closed when the
// test ends.
func ClusterClient(t testing.TB) *redis.ClusterClient {
	t.Helper()
	client := SharedCluster(t).Client()
	t.Cleanup(func() { client.Close() })
	return client
}
