package rabbitmq_test

import (
	"context"
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

// Queues of an earlier version, classic and holding messages, become
// quorum queues holding the same messages; a second run changes nothing;
// the consumer then runs on them.
func TestMigrateClassicToQuorum(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	t.Cleanup(func() { deleteQueues(t, url, queue+".migrating", rabbitmq.DLQName(queue)+".migrating") })
	declareAsBefore(t, url, queue)
	work, dead := textMessages(250), textMessages(3)
	for i := range dead {
		dead[i].Headers = amqp.Table{rabbitmq.HeaderDeathReason: fmt.Sprint("reason ", i)}
	}
	rmqtest.Publish(t, url, queue, work...)
	rmqtest.Publish(t, url, rabbitmq.DLQName(queue), dead...)

	ctx := context.Background()
	done, err := rabbitmq.MigrateQueues(ctx, url, queue, rabbitmq.Topology{})
	require.NoError(t, err)
	assert.Equal(t, []rabbitmq.Migration{
		{Queue: rabbitmq.DLQName(queue), Redeclared: true, Moved: 3},
		{Queue: queue, Redeclared: true, Moved: 250},
	}, done)
	require.NoError(t, rabbitmq.Declare(channel(t, url), queue, rabbitmq.Topology{}), "the queues are now as configured")
	rmqtest.WaitMessages(t, url, queue, 250, waitTimeout)
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 3, waitTimeout)
	for _, q := range []string{queue + ".migrating", rabbitmq.DLQName(queue) + ".migrating"} {
		_, err := channel(t, url).QueueDeclarePassive(q, true, false, false, false, nil)
		assert.Error(t, err, "the parking queue %s is gone", q)
	}
	d, ok := rmqtest.Get(t, url, rabbitmq.DLQName(queue))
	require.True(t, ok)
	assert.Equal(t, "reason 0", d.Headers[rabbitmq.HeaderDeathReason], "headers travel with the messages")

	done, err = rabbitmq.MigrateQueues(ctx, url, queue, rabbitmq.Topology{})
	require.NoError(t, err)
	assert.Equal(t, []rabbitmq.Migration{{Queue: rabbitmq.DLQName(queue)}, {Queue: queue}}, done)

	seen := map[string]bool{}
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{})
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	stop := runConsumer(t, c, func(_ context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		<-mu
		seen[d.MessageID] = true
		mu <- struct{}{}
		return rabbitmq.Ack{}
	})
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
	require.NoError(t, stop())
	assert.Len(t, seen, 250)
}

// A migration refuses to start while the queue has consumers.
func TestMigrateRefusesWhileConsumed(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	t.Cleanup(func() { deleteQueues(t, url, queue+".migrating", rabbitmq.DLQName(queue)+".migrating") })
	declareAsBefore(t, url, queue)
	ch := channel(t, url)
	_, err := ch.Consume(queue, "", false, false, false, false, nil)
	require.NoError(t, err)
	_, err = rabbitmq.MigrateQueues(context.Background(), url, queue, rabbitmq.Topology{})
	require.Error(t, err)
	assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
	assert.Contains(t, err.Error(), "stop the consumers")
}

func deleteQueues(t *testing.T, url string, queues ...string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	for _, q := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			ch.Close()
		}
	}
}
