package rabbitmq_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/logbuf"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

// deadURL is the broker URL with a port nothing listens on: a node that
// is down.
func deadURL(t *testing.T, url string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	at := strings.LastIndex(url, "@")
	require.Positive(t, at)
	return url[:at+1] + addr + "/"
}

// A list whose first node is down works: producer, consumer and the dlq
// commands use the next one, and the log names the dead node.
func TestNodeListWithADeadNode(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	dead := deadURL(t, url)
	list := dead + "," + url
	var log logbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))

	p, err := rabbitmq.NewPublisher(context.Background(), list, queue, rabbitmq.PublisherOptions{Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	publishBatches(t, p, 1, 100, 10)
	require.NoError(t, p.Flush(context.Background()))
	assert.Contains(t, log.String(), "RabbitMQ node unreachable; trying the next")
	assert.Contains(t, log.String(), strings.TrimSuffix(dead[strings.LastIndex(dead, "@")+1:], "/"))
	assert.NotContains(t, log.String(), "guest:guest", "node URLs are logged without credentials")

	got := newIDSet()
	stop := runConsumer(t, rabbitmq.NewConsumer(list, queue, rabbitmq.ConsumerOptions{Logger: logger}), got.handler(t))
	wait.Until(t, waitTimeout, "all users consumed", func() bool { return got.distinct() == 100 })
	require.NoError(t, stop())

	rmqtest.Publish(t, url, rabbitmq.DLQName(queue), textMessages(2)...)
	n := 0
	require.NoError(t, rabbitmq.ListDeadLetters(context.Background(), list, queue, 0, func(rabbitmq.DLQMessage) error { n++; return nil }))
	assert.Equal(t, 2, n)
	moved, err := rabbitmq.ReplayDeadLetters(context.Background(), list, queue, rabbitmq.Topology{}, 0)
	require.NoError(t, err)
	assert.Equal(t, 2, moved)
}

// Two nodes (two proxies to the broker): when the node a client uses is
// lost, it reconnects to the other. The publisher republishes what was
// unconfirmed there, and Flush returns only when every message is
// confirmed; the consumer carries on.
func TestFailoverToAnotherNode(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	a, urlA := rmqtest.NewProxy(t, url)
	b, urlB := rmqtest.NewProxy(t, url)
	list := urlA + "," + urlB

	p := newPublisher(t, list, queue, rabbitmq.PublisherOptions{MaxInFlight: 8, ReconnectTimeout: waitTimeout})
	got := newIDSet()
	c := newConsumer(t, urlB+","+urlA, queue, rabbitmq.ConsumerOptions{})
	stop := runConsumer(t, c, got.handler(t))
	publishBatches(t, p, 1, 500, 10)
	wait.Until(t, waitTimeout, "the publisher on node a and the consumer on node b", func() bool {
		return a.Accepted() >= 1 && b.Accepted() >= 1
	})

	// Node a is lost for good while messages are in flight.
	a.Down(true)
	done := publishInBackground(p, 501, 1000)
	select {
	case err := <-done:
		require.NoError(t, err, "every message confirmed across the failover")
	case <-time.After(waitTimeout):
		t.Fatal("publishing did not resume on node b")
	}
	assert.Equal(t, uint64(100), p.Stats().Confirmed)
	assert.GreaterOrEqual(t, p.Stats().Reconnects, uint64(1))

	// Then node b goes, and a comes back: the consumer moves to a.
	a.Down(false)
	b.Down(true)
	publishInBackground(p, 1001, 1100)
	wait.Until(t, waitTimeout, "all users consumed", func() bool { return got.distinct() == 1100 })
	require.NoError(t, stop())
	assert.GreaterOrEqual(t, rabbitmq.Sessions(c), uint64(2), "the consumer reconnected")
}

// All nodes down at start, then back: the consumer waits for them with
// backoff; the publisher waits up to ReconnectTimeout, or fails with an
// error that names every node.
func TestAllNodesDownAtStart(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	a, urlA := rmqtest.NewProxy(t, url)
	b, urlB := rmqtest.NewProxy(t, url)
	list := urlA + "," + urlB
	a.Down(true)
	b.Down(true)

	_, err := rabbitmq.NewPublisher(context.Background(), list, queue, rabbitmq.PublisherOptions{ReconnectTimeout: 300 * time.Millisecond})
	require.Error(t, err)
	assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err))
	assert.Contains(t, err.Error(), "none of the 2 RabbitMQ nodes accepted a connection")
	assert.NotContains(t, err.Error(), "guest:guest")

	got := newIDSet()
	c := newConsumer(t, list, queue, rabbitmq.ConsumerOptions{})
	stop := runConsumer(t, c, got.handler(t))
	wait.Until(t, waitTimeout, "the consumer to try both nodes", func() bool { return a.Accepted() >= 1 && b.Accepted() >= 1 })
	assert.False(t, c.Connected())

	b.Down(false)
	p := newPublisher(t, list, queue, rabbitmq.PublisherOptions{ReconnectTimeout: waitTimeout})
	publishBatches(t, p, 1, 100, 10)
	require.NoError(t, p.Flush(context.Background()))
	wait.Until(t, waitTimeout, "all users consumed", func() bool { return got.distinct() == 100 })
	require.NoError(t, stop())
}

func TestNodeListBadInput(t *testing.T) {
	t.Parallel()
	for _, list := range []string{"amqp://g:secret@h1/,", "amqp://g:secret@h1/,http://g:secret@h2/", " , "} {
		_, err := rabbitmq.NewPublisher(context.Background(), list, "q", rabbitmq.PublisherOptions{})
		require.Error(t, err, list)
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%q: %v", list, err)
		assert.NotContains(t, err.Error(), "secret")
		err = rabbitmq.NewConsumer(list, "q", rabbitmq.ConsumerOptions{}).Run(context.Background(), nil)
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%q: %v", list, err)
		assert.Contains(t, err.Error(), "of the list")
	}
}
