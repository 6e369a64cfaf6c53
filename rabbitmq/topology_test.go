package rabbitmq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/wait"
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
	require.NoError(t, rabbitmq.Declare(consumerSide, queue, rabbitmq.Topology{}))
	require.NoError(t, rabbitmq.Declare(producerSide, queue, rabbitmq.Topology{}))
	require.NoError(t, rabbitmq.Declare(producerSide, queue, rabbitmq.Topology{}))

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
	err = rabbitmq.Declare(channel(t, url), queue, rabbitmq.Topology{})
	require.Error(t, err)
	assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "a conflicting declaration cannot be fixed by retrying: %v", err)
	assert.Contains(t, err.Error(), queue)
}

func TestDeclareRejectsBadNames(t *testing.T) {
	t.Parallel()
	url, _ := rmqtest.NewQueue(t)
	ch := channel(t, url)
	for _, q := range []string{"", strings.Repeat("q", 252)} {
		err := rabbitmq.Declare(ch, q, rabbitmq.Topology{})
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%q", q)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "users.dlx", rabbitmq.DLXName("users"))
	assert.Equal(t, "users.dlq", rabbitmq.DLQName("users"))
}

// The default is quorum: a queue declared by default is refused as
// classic, and the other way round, each with the way out in the message.
func TestDeclareTypeMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ existing, wanted rabbitmq.Topology }{
		{rabbitmq.Topology{}, rabbitmq.Topology{Type: rabbitmq.Classic}},
		{rabbitmq.Topology{Type: rabbitmq.Classic}, rabbitmq.Topology{}},
		{rabbitmq.Topology{}, rabbitmq.Topology{DLQTTL: time.Hour}},
	} {
		url, queue := rmqtest.NewQueue(t)
		require.NoError(t, rabbitmq.Declare(channel(t, url), queue, tc.existing))
		err := rabbitmq.Declare(channel(t, url), queue, tc.wanted)
		require.Error(t, err, "%+v over %+v", tc.wanted, tc.existing)
		assert.ErrorIs(t, err, rabbitmq.ErrQueueMismatch)
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
		assert.Contains(t, err.Error(), "consumer queue migrate")
	}
}

// A queue declared by an earlier version (classic, without type or
// retention arguments) is found, and the consumer says how to migrate.
func TestClassicQueueFromBefore(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declareAsBefore(t, url, queue)
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{})
	err := c.Run(context.Background(), func(context.Context, rabbitmq.Delivery) rabbitmq.Outcome { return rabbitmq.Ack{} })
	require.Error(t, err)
	assert.ErrorIs(t, err, rabbitmq.ErrQueueMismatch)
	assert.Contains(t, err.Error(), "a quorum queue")
	assert.Contains(t, err.Error(), "consumer queue migrate")
}

// declareAsBefore declares the topology as versions before quorum queues
// did: classic queues without type or retention arguments.
func declareAsBefore(t *testing.T, url, queue string) {
	t.Helper()
	ch := channel(t, url)
	dlx, dlq := rabbitmq.DLXName(queue), rabbitmq.DLQName(queue)
	require.NoError(t, ch.ExchangeDeclare(dlx, amqp.ExchangeDirect, true, false, false, false, nil))
	_, err := ch.QueueDeclare(dlq, true, false, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(dlq, dlq, dlx, false, nil))
	_, err = ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": dlq})
	require.NoError(t, err)
}

// A message that keeps coming back (its consumers die, or hand it back)
// is dead-lettered by the broker once it reaches the delivery limit.
func TestDeliveryLimitDeadLetters(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	require.NoError(t, rabbitmq.Declare(channel(t, url), queue, rabbitmq.Topology{DeliveryLimit: 2}))
	rmqtest.Publish(t, url, queue, textMessages(1)...)
	for i := range 3 {
		// A consumer that dies holding the message: its connection
		// closes without an ack.
		conn, err := amqp.Dial(url)
		require.NoError(t, err)
		ch, err := conn.Channel()
		require.NoError(t, err)
		var ok bool
		wait.Until(t, waitTimeout, "the message to be back", func() bool {
			_, ok, err = ch.Get(queue, false)
			require.NoError(t, err)
			return ok
		})
		conn.Close()
		t.Logf("delivery %d: consumer died", i+1)
	}
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 1, waitTimeout)
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
	var reasons []string
	require.NoError(t, rabbitmq.ListDeadLetters(context.Background(), url, queue, 0, func(m rabbitmq.DLQMessage) error {
		reasons = append(reasons, m.Reason)
		return nil
	}))
	assert.Equal(t, []string{"broker: delivery_limit"}, reasons)
}

// Dead letters are kept for DLQTTL, and at most DLQMaxLength of them (the
// oldest go first).
func TestDeadLetterRetention(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{rabbitmq.Quorum, rabbitmq.Classic} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			url, queue := rmqtest.NewQueue(t)
			require.NoError(t, rabbitmq.Declare(channel(t, url), queue, rabbitmq.Topology{Type: typ, DLQMaxLength: 2}))
			dlq := rabbitmq.DLQName(queue)
			rmqtest.Publish(t, url, dlq, textMessages(3)...)
			rmqtest.WaitMessages(t, url, dlq, 2, waitTimeout)
			d, ok := rmqtest.Get(t, url, dlq)
			require.True(t, ok)
			assert.Equal(t, "m1", d.MessageId, "the oldest was dropped")

			url, queue = rmqtest.NewQueue(t)
			require.NoError(t, rabbitmq.Declare(channel(t, url), queue, rabbitmq.Topology{Type: typ, DLQTTL: 300 * time.Millisecond}))
			dlq = rabbitmq.DLQName(queue)
			rmqtest.Publish(t, url, dlq, textMessages(1)...)
			rmqtest.WaitMessages(t, url, dlq, 0, waitTimeout)
		})
	}
}

func TestTopologyValidate(t *testing.T) {
	t.Parallel()
	assert.NoError(t, rabbitmq.Topology{}.Validate())
	assert.NoError(t, rabbitmq.Topology{Type: rabbitmq.Classic}.Validate())
	err := rabbitmq.Topology{Type: "stream"}.Validate()
	assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
	assert.False(t, errors.Is(err, rabbitmq.ErrQueueMismatch))
	assert.Error(t, rabbitmq.Topology{DLQTTL: time.Microsecond}.Validate())
}
