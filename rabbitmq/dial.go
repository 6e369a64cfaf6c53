package rabbitmq

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
)

// dialTimeout bounds the TCP connect and the AMQP handshake.
const dialTimeout = 10 * time.Second

// nodes are the brokers a client may connect to: the nodes of one
// cluster, given as a comma-separated list of AMQP URLs. A client
// connects to the first that answers, starting after the node of its
// previous connection, so that once a node is lost it reconnects to
// another, and clients given the list in different orders spread over
// the nodes.
type nodes struct {
	urls []string
	mu   sync.Mutex
	next int // where the next dial starts
}

// parseNodes splits list into URLs and checks each. Errors name a node by
// its position and host, never by its URL (which may hold a password).
func parseNodes(list string) (*nodes, error) {
	var urls []string
	for i, u := range strings.Split(list, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			return nil, viswals.Errorf(viswals.EINVALID, "RabbitMQ URL %d of the list is empty", i+1)
		}
		if _, err := amqp.ParseURI(u); err != nil {
			return nil, viswals.Errorf(viswals.EINVALID, "RabbitMQ URL %d of the list is not a valid AMQP URL: %v", i+1, err)
		}
		urls = append(urls, u)
	}
	return &nodes{urls: urls}, nil
}

// nodeName is how logs and errors name a node: host:port, without the
// credentials of its URL.
func nodeName(u string) string {
	uri, err := amqp.ParseURI(u)
	if err != nil {
		return "(invalid URL)"
	}
	return net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port))
}

// dial opens an AMQP connection named name (shown in the broker's
// connection list) to the first of the nodes that accepts it, and
// returns it with the node's name. A node that fails is logged and the
// next one tried; the error, when none accepts, gives each node's reason.
// The library's own experimental recovery stays off: the publisher and
// consumer recover themselves, because recovery for them means more than
// reopening channels (republishing unconfirmed messages, re-declaring the
// topology, dropping stale deliveries). The TCP connection is recorded in
// tcp, when given, so that tests can cut it abruptly.
func (n *nodes) dial(name string, tcp *tcpConn, log *slog.Logger) (*amqp.Connection, string, error) {
	n.mu.Lock()
	start := n.next
	n.mu.Unlock()
	var reasons []string
	var refused error // a refusal no retry fixes, when every node gives one
	for i := range n.urls {
		at := (start + i) % len(n.urls)
		node := nodeName(n.urls[at])
		conn, err := dialOne(n.urls[at], name, tcp)
		if err == nil {
			n.mu.Lock()
			n.next = at + 1
			n.mu.Unlock()
			return conn, node, nil
		}
		if len(n.urls) == 1 {
			return nil, "", err
		}
		if !permanent(err) {
			refused = nil
		} else if i == 0 {
			refused = err
		}
		log.Warn("RabbitMQ node unreachable; trying the next", "node", node, "err", err)
		reasons = append(reasons, fmt.Sprintf("%s: %v", node, err))
	}
	// The next attempt starts one node further, so that a node that
	// hangs is not always the first to be waited for.
	n.mu.Lock()
	n.next = start + 1
	n.mu.Unlock()
	msg := fmt.Sprintf("none of the %d RabbitMQ nodes accepted a connection (%s)", len(n.urls), strings.Join(reasons, "; "))
	if refused != nil {
		// Every node refused (bad credentials): the cause stays in the
		// chain, so that callers do not retry it forever.
		return nil, "", &codedError{code: viswals.EINVALID, err: fmt.Errorf("%s: %w", msg, refused)}
	}
	return nil, "", unavailablef("%s", msg)
}

func dialOne(url, name string, tcp *tcpConn) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	cfg := amqp.Config{
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := amqp.DefaultDial(dialTimeout)(network, addr)
			if err == nil && tcp != nil {
				tcp.set(c)
			}
			return c, err
		},
	}
	conn, err := amqp.DialConfig(url, cfg)
	if err != nil {
		return nil, classify(err)
	}
	return conn, nil
}

// tcpConn remembers the network connection under the current AMQP
// connection. Only tests use it: closing it simulates a broker crash or a
// network failure, which a clean AMQP close does not.
type tcpConn struct {
	mu sync.Mutex
	c  net.Conn
}

func (t *tcpConn) set(c net.Conn) {
	t.mu.Lock()
	t.c = c
	t.mu.Unlock()
}

// cut closes the current network connection, if any.
func (t *tcpConn) cut() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c != nil {
		t.c.Close()
	}
}

// dialNodes connects once to one of the nodes url lists, for the
// one-shot commands (dead letters, migration).
func dialNodes(url, name string) (*amqp.Connection, error) {
	n, err := parseNodes(url)
	if err != nil {
		return nil, err
	}
	conn, _, err := n.dial(name, nil, slog.New(slog.DiscardHandler))
	return conn, err
}
