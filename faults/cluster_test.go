package faults_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/viswals/viswals/internal/wait"
)

// rabbitCluster is a RabbitMQ cluster of a test's own: nodes on this
// machine named rq-<random>-N@localhost, each with its own ports, data
// and log directories, sharing one Erlang cookie, joined to the first.
type rabbitCluster struct {
	nodes []*rabbitNode
}

// startRabbitCluster starts size nodes at once and joins the others to the
// first (stop_app, join_cluster, start_app), as an operator would.
func startRabbitCluster(dir string, size int) (*rabbitCluster, error) {
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	// One cookie for all, written before any node starts (a node that
	// finds none makes its own).
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(strings.ToUpper(randHex(10))), 0o400); err != nil {
		return nil, err
	}
	prefix := "rq-" + randHex(3)
	c := &rabbitCluster{}
	for i := range size {
		n, err := newRabbitNode(filepath.Join(dir, fmt.Sprint("node", i+1)), home, fmt.Sprintf("%s-%d@localhost", prefix, i+1))
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = n.launch() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	for _, n := range c.nodes[1:] {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", c.nodes[0].node}, {"start_app"}} {
			if out, err := n.ctl(args...); err != nil {
				return c, fmt.Errorf("%s: rabbitmqctl %s: %w\n%s", n.node, strings.Join(args, " "), err, out)
			}
		}
	}
	out, err := c.nodes[0].ctl("cluster_status")
	if err != nil {
		return c, err
	}
	for _, n := range c.nodes {
		if !strings.Contains(out, n.node) {
			return c, fmt.Errorf("%s is not in the cluster:\n%s", n.node, out)
		}
	}
	return c, nil
}

// urls is RABBITMQ_CONN_URL naming the nodes in the given order (all, in
// order, when none is given).
func (c *rabbitCluster) urls(order ...int) string {
	if len(order) == 0 {
		for i := range c.nodes {
			order = append(order, i)
		}
	}
	var urls []string
	for _, i := range order {
		urls = append(urls, c.nodes[i].url())
	}
	return strings.Join(urls, ",")
}

// leader returns the index of the node that leads queue (a quorum queue),
// asking a node that is up.
func (c *rabbitCluster) leader(queue string) (int, error) {
	var last error
	for _, n := range c.nodes {
		if !n.p.running() {
			continue
		}
		out, err := n.ctl("list_queues", "-q", "--no-table-headers", "name", "leader")
		if err != nil {
			last = err
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == queue {
				for i, m := range c.nodes {
					if m.node == f[1] {
						return i, nil
					}
				}
				return 0, fmt.Errorf("queue %s is led by %s, not a node of the cluster", queue, f[1])
			}
		}
		last = fmt.Errorf("queue %s not in list_queues output:\n%s", queue, out)
	}
	return 0, last
}

// restart stops node i gracefully (SIGTERM to its VM) and starts it again
// on its data.
func (c *rabbitCluster) restart(i int) error {
	n := c.nodes[i]
	_ = n.p.cmd.Process.Signal(syscall.SIGTERM)
	if !n.p.wait(90 * time.Second) {
		n.p.stop()
	}
	return n.relaunch()
}

// close kills every node: their data is thrown away with the directory.
func (c *rabbitCluster) close() {
	for _, n := range c.nodes {
		if n.p != nil {
			n.p.stop()
		}
	}
}

// A 3-node cluster carries a 200k-row load to two consumers connected to
// different nodes while the node that leads the queue is killed with
// SIGKILL and started again, and then a second node is restarted. The
// queue is a quorum queue: with one node of three away it keeps its
// majority, and the clients move to another node.
func TestRabbitMQClusterNodesKilled(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := newStack(t, stackOptions{cluster: 3, rows: 200_000})
	cl := s.cluster
	c1 := s.startConsumerAt(cl.urls(0, 1, 2))
	c2 := s.startConsumerAt(cl.urls(2, 1, 0))
	// The consumers declared the queue. The producer connects first to
	// the node that leads it, which is the one killed below: the hardest
	// place to be, as the node it moves to may not know the new leader
	// yet.
	var leader int
	wait.For(s.t, startTimeout, "the queue to have a leader", func() (bool, string) {
		var err error
		leader, err = cl.leader(s.queue)
		return err == nil, fmt.Sprint(err)
	})
	s.brokers = cl.urls(leader, (leader+1)%len(cl.nodes), (leader+2)%len(cl.nodes))
	// The producer reads stdin, fed in parts, so that it is mid-file at
	// each fault and the load cannot end before the faults are over.
	p := s.startProducerStdin()
	f := s.feeder(p)

	f.feed(0, 0.5)
	n := s.waitRows(s.share(0.2), c1, c2)
	wait.For(s.t, loadTimeout, "both consumers to have ingested rows", func() (bool, string) {
		a, b := c1.metric("viswals_rows_ingested_total"), c2.metric("viswals_rows_ingested_total")
		return a > 0 && b > 0, fmt.Sprintf("%s: %.0f rows, %s: %.0f rows", c1.name, a, c2.name, b)
	})
	f.wait()
	leader, err := cl.leader(s.queue)
	if err != nil {
		t.Fatal(err)
	}
	before1, before2 := c1.metric("viswals_rows_ingested_total"), c2.metric("viswals_rows_ingested_total")
	cl.nodes[leader].kill()
	t.Logf("killed %s, the leader of %s, with SIGKILL at %d users", cl.nodes[leader].node, s.queue, n)

	// Publishing and ingestion go on without it, on both consumers: one
	// that reconnected to another node gets deliveries there.
	f.feed(0.5, 0.8)
	n = s.waitRows(s.share(0.55), c1, c2)
	wait.For(s.t, loadTimeout, "both consumers to ingest after the failover", func() (bool, string) {
		a, b := c1.metric("viswals_rows_ingested_total"), c2.metric("viswals_rows_ingested_total")
		return a > before1 && b > before2, fmt.Sprintf("%s: %.0f rows (%.0f before), %s: %.0f rows (%.0f before)", c1.name, a, before1, c2.name, b, before2)
	})
	f.wait()
	if err := cl.nodes[leader].relaunch(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s started again at %d users", cl.nodes[leader].node, n)

	second := (leader + 1) % len(cl.nodes)
	m, _ := s.rowCount()
	if err := cl.restart(second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s restarted at %d users", cl.nodes[second].node, m)

	f.feed(0.8, 1)
	f.wait()
	s.waitProducer(p)
	s.finish(s.in.want, 0, c1, c2)
	for _, c := range []*consumer{c1, c2} {
		if strings.Contains(tailFile(c.errPath, 100000), "lost RabbitMQ connection") {
			t.Logf("%s reconnected to another node", c.name)
		}
	}
	if strings.Contains(tailFile(p.errPath, 100000), "broker nacked every message") {
		t.Logf("%s reconnected again after the broker nacked every message", p.name)
	}
}

var clusterBench = flag.Bool("faults.cluster-bench", false, "run TestRabbitMQClusterThroughput: 200k rows through a 3-node cluster with 1, 2 and 4 consumers (for docs/scaling.md)")

// TestRabbitMQClusterThroughput measures a load through a 3-node cluster
// with 1, 2 and 4 ingest consumers, each connected first to a different
// node, into one Postgres. Opt-in (-faults.cluster-bench): it measures,
// it does not check.
func TestRabbitMQClusterThroughput(t *testing.T) {
	skipShort(t)
	if !*clusterBench {
		t.Skip("a measurement: run with -faults.cluster-bench")
	}
	s := newStack(t, stackOptions{cluster: 3, rows: 200_000})
	cl := s.cluster
	orders := [][]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}}
	for _, n := range []int{1, 2, 4} {
		s.queue = fmt.Sprintf("bench-%d-%s", n, randHex(3))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		conn, err := pgConnect(ctx, s.pg.url())
		if err == nil {
			// Each round starts from an empty schema, which its
			// consumers migrate.
			_, err = conn.Exec(ctx, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
			conn.Close(ctx)
		}
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var cs []*consumer
		for i := range n {
			cs = append(cs, s.startConsumerAt(cl.urls(orders[i%len(orders)]...)))
		}
		start := time.Now()
		p := s.start("producer", false, []string{
			"RABBITMQ_CONN_URL=" + cl.urls(orders[n%len(orders)]...),
			"RABBITMQ_QUEUE_NAME=" + s.queue,
			"LOG_LEVEL=warn",
		}, "--rejects", filepath.Join(s.dir, s.queue+".rejects.csv"), s.in.path)
		wait.For(s.t, loadTimeout, "every user stored", func() (bool, string) {
			got, err := s.rowCount()
			return err == nil && got == len(s.in.want), fmt.Sprintf("%d users, %v", got, err)
		})
		took := time.Since(start)
		if !p.wait(startTimeout) || p.exitCode() != 0 {
			t.Fatalf("%s did not exit 0", p.name)
		}
		for _, c := range cs {
			s.terminate(c)
		}
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("consumers=%d rows=%d users=%d took=%s rows/s=%.0f loadavg=%s", n, s.in.rows, len(s.in.want), took.Round(10*time.Millisecond),
			float64(s.in.rows)/took.Seconds(), strings.Join(strings.Fields(string(load))[:3], " "))
	}
}
