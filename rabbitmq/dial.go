package rabbitmq

import (
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dialTimeout bounds the TCP connect and the AMQP handshake.
const dialTimeout = 10 * time.Second

// dial opens an AMQP connection named name (shown in the broker's
// connection list). The library's own experimental recovery stays off: the
// publisher and consumer recover themselves, because recovery for them
// means more than reopening channels (republishing unconfirmed messages,
// re-declaring the topology, dropping stale deliveries). The TCP connection
// is recorded in tcp, when given, so that tests can cut it abruptly.
func dial(url, name string, tcp *tcpConn) (*amqp.Connection, error) {
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
