package rabbitmq_test

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

func channel(t testing.TB, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	require.NoError(t, err)
	return ch
}

func TestDeclareIsIdempotentFromBothSides(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	producerSide, consumerSide := channel(t, url), channel(t, url)
	require.NoError(t, rabbitmq.Declare(consumerSide, queue))
	require.NoError(t, rabbitmq.Declare(producerSide, queue))
	require.NoError(t, rabbitmq.Declare(producerSide, queue))

	// A message the broker dead-letters by itself follows the queue's
	// arguments to the dead-letter queue.
	rmqtest.Publish(t, url, queue, amqp.Publishing{Body: []byte("x"), ContentType: "text/plain"})
	d, ok, err := consumerSide.Get(queue, false)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, d.Reject(false))
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 1, waitTimeout)
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
}

func TestDeclareConflictingQueue(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	ch := channel(t, url)
	_, err := ch.QueueDeclare(queue, true, false, false, false, nil) // no dead-letter arguments
	require.NoError(t, err)
	err = rabbitmq.Declare(channel(t, url), queue)
	require.Error(t, err)
	assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "a conflicting declaration cannot be fixed by retrying: %v", err)
	assert.Contains(t, err.Error(), queue)
}

func TestDeclareRejectsBadNames(t *testing.T) {
	t.Parallel()
	url, _ := rmqtest.NewQueue(t)
	ch := channel(t, url)
	for _, q := range []string{"", strings.Repeat("q", 252)} {
		err := rabbitmq.Declare(ch, q)
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%q", q)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "users.dlx", rabbitmq.DLXName("users"))
	assert.Equal(t, "users.dlq", rabbitmq.DLQName("users"))
}
