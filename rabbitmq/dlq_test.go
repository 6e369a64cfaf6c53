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

// deadLetterAll runs a consumer that dead-letters every message of queue
// with reason "reason <body>" until the dead-letter queue holds n.
func deadLetterAll(t *testing.T, url, queue string, n int) {
	t.Helper()
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		return rabbitmq.DeadLetter{Reason: "reason " + string(d.Body)}
	})
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), n, waitTimeout)
	require.NoError(t, stop())
}

func TestListDeadLettersLeavesThemInPlace(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	msgs := textMessages(3)
	msgs[0].Headers = amqp.Table{"source": "a.csv"}
	msgs[1].Body = make([]byte, 1000)
	rmqtest.Publish(t, url, queue, msgs...)
	deadLetterAll(t, url, queue, 3)

	ctx := context.Background()
	var got []rabbitmq.DLQMessage
	require.NoError(t, rabbitmq.ListDeadLetters(ctx, url, queue, 10, func(m rabbitmq.DLQMessage) error {
		got = append(got, m)
		return nil
	}))
	require.Len(t, got, 3)
	byID := map[string]rabbitmq.DLQMessage{}
	for _, m := range got {
		byID[m.MessageID] = m
		assert.Equal(t, "text/plain", m.ContentType)
		assert.False(t, m.DeadLetteredAt.IsZero())
		assert.Equal(t, queue, m.Headers[rabbitmq.HeaderOriginalQueue])
	}
	assert.Equal(t, "reason m0", byID["m0"].Reason)
	assert.Equal(t, "a.csv", byID["m0"].Headers["source"])
	assert.Equal(t, []byte("m0"), byID["m0"].Head)
	assert.Equal(t, 1000, byID["m1"].Size)
	assert.Len(t, byID["m1"].Head, 64)
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 3, waitTimeout)

	// max bounds the listing, and an error from fn stops it; either way
	// the messages stay.
	n := 0
	require.NoError(t, rabbitmq.ListDeadLetters(ctx, url, queue, 2, func(rabbitmq.DLQMessage) error { n++; return nil }))
	assert.Equal(t, 2, n)
	stopErr := fmt.Errorf("stop")
	assert.ErrorIs(t, rabbitmq.ListDeadLetters(ctx, url, queue, 0, func(rabbitmq.DLQMessage) error { return stopErr }), stopErr)
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 3, waitTimeout)
}

func TestReplayDeadLetters(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	msgs := textMessages(250) // more than one replay batch
	msgs[0].Headers = amqp.Table{"source": "a.csv"}
	rmqtest.Publish(t, url, queue, msgs...)
	deadLetterAll(t, url, queue, len(msgs))

	ctx := context.Background()
	n, err := rabbitmq.ReplayDeadLetters(ctx, url, queue, rabbitmq.Topology{}, 10)
	require.NoError(t, err)
	assert.Equal(t, 10, n, "max bounds the replay")
	rmqtest.WaitMessages(t, url, queue, 10, waitTimeout)

	n, err = rabbitmq.ReplayDeadLetters(ctx, url, queue, rabbitmq.Topology{}, 0)
	require.NoError(t, err)
	assert.Equal(t, 240, n, "0 replays what the queue held")
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 0, waitTimeout)
	rmqtest.WaitMessages(t, url, queue, 250, waitTimeout)

	seen := map[string]bool{}
	ch := channel(t, url)
	for range 250 {
		d, ok, err := ch.Get(queue, true)
		require.NoError(t, err)
		require.True(t, ok)
		seen[d.MessageId] = true
		assert.NotContains(t, d.Headers, rabbitmq.HeaderDeathReason)
		assert.Contains(t, d.Headers, rabbitmq.HeaderReplayedAt)
		if d.MessageId == "m0" {
			assert.Equal(t, "a.csv", d.Headers["source"])
			assert.Equal(t, "m0", string(d.Body))
		}
	}
	assert.Len(t, seen, 250)

	n, err = rabbitmq.ReplayDeadLetters(ctx, url, queue, rabbitmq.Topology{}, 0)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// Messages the broker dead-letters by itself (a reject without requeue,
// through the queue's arguments) are listed with the broker's reason.
func TestListBrokerDeadLetters(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	rmqtest.Publish(t, url, queue, textMessages(1)...)
	ch := channel(t, url)
	d, ok, err := ch.Get(queue, false)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, d.Reject(false))
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 1, waitTimeout)
	var reasons []string
	require.NoError(t, rabbitmq.ListDeadLetters(context.Background(), url, queue, 0, func(m rabbitmq.DLQMessage) error {
		reasons = append(reasons, m.Reason)
		return nil
	}))
	assert.Equal(t, []string{"broker: rejected"}, reasons)
}

func TestDeadLettersOfUnknownQueue(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t) // never declared
	err := rabbitmq.ListDeadLetters(context.Background(), url, queue, 0, func(rabbitmq.DLQMessage) error { return nil })
	assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err), "%v", err)
	_, err = rabbitmq.ReplayDeadLetters(context.Background(), url, queue, rabbitmq.Topology{}, 0)
	assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err), "%v", err)
}
