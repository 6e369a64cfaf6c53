package rabbitmq_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

func newConsumer(t *testing.T, url, queue string, opts rabbitmq.ConsumerOptions) *rabbitmq.Consumer {
	t.Helper()
	opts.Logger = testLogger(t)
	return rabbitmq.NewConsumer(url, queue, opts)
}

// declare creates the topology, so that tests can publish before a
// consumer runs.
func declare(t *testing.T, url, queue string) {
	t.Helper()
	require.NoError(t, rabbitmq.Declare(channel(t, url), queue, rabbitmq.Topology{}))
}

func textMessages(n int) []amqp.Publishing {
	msgs := make([]amqp.Publishing, n)
	for i := range msgs {
		msgs[i] = amqp.Publishing{Body: []byte(fmt.Sprint("m", i)), ContentType: "text/plain", MessageId: fmt.Sprint("m", i)}
	}
	return msgs
}

// A delivery stays unacked while its handler runs: with a prefetch of 1
// the broker holds the next message back until the handler returns Ack.
func TestConsumerAcksOnlyAfterHandlerReturns(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	rmqtest.Publish(t, url, queue, textMessages(2)...)

	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{Prefetch: 1, Workers: 1})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
		return rabbitmq.Ack{}
	})
	<-started
	ready, consumers := rmqtest.Messages(t, url, queue)
	assert.Equal(t, 1, ready, "the second message waits: the first is delivered but not acked")
	assert.Equal(t, 1, consumers)

	close(release)
	wait.Until(t, waitTimeout, "both handled", func() bool { return calls.Load() == 2 })
	require.NoError(t, stop())
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout) // acked: closing did not requeue them
	assert.Equal(t, int32(2), calls.Load())
}

// DeadLetter moves the message to the dead-letter queue with the reason
// and the original headers and properties, and removes it from the queue.
func TestConsumerDeadLetter(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	rmqtest.Publish(t, url, queue, amqp.Publishing{
		Body: []byte(`[{"id":0}]`), ContentType: rabbitmq.ContentTypeJSON, MessageId: "msg-1",
		Headers: amqp.Table{"source": "users.csv", "n": int32(7)},
	})
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		return rabbitmq.DeadLetter{Reason: "user 1: id must be an integer >= 1"}
	})
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 1, waitTimeout)
	require.NoError(t, stop())
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)

	d, ok := rmqtest.Get(t, url, rabbitmq.DLQName(queue))
	require.True(t, ok)
	assert.Equal(t, `[{"id":0}]`, string(d.Body))
	assert.Equal(t, rabbitmq.ContentTypeJSON, d.ContentType)
	assert.Equal(t, "msg-1", d.MessageId)
	assert.Equal(t, uint8(amqp.Persistent), d.DeliveryMode)
	assert.Equal(t, "user 1: id must be an integer >= 1", d.Headers[rabbitmq.HeaderDeathReason])
	assert.Equal(t, queue, d.Headers[rabbitmq.HeaderOriginalQueue])
	assert.Equal(t, "users.csv", d.Headers["source"])
	assert.EqualValues(t, 7, d.Headers["n"])
	at, err := time.Parse(time.RFC3339, fmt.Sprint(d.Headers[rabbitmq.HeaderDeadLetteredAt]))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), at, time.Minute)
}

// A handler dead-letters the bad parts of a batch as new messages, in the
// delivery's content type with its headers and a reason per record, and
// the original is acked.
func TestConsumerPartialDeadLetter(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	rmqtest.Publish(t, url, queue, amqp.Publishing{Body: []byte("whole batch"), ContentType: "text/plain", Headers: amqp.Table{"load": "1"}})
	var dead atomic.Int32
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{OnDeadLetter: func() { dead.Add(1) }})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		return rabbitmq.DeadLetterParts{Parts: []rabbitmq.Part{
			{Body: []byte("bad users"), Reason: "2 invalid users", Reasons: []string{"id 1: a", "id 2: b"}},
			{Body: []byte("more bad users"), Reason: "1 invalid user", Reasons: []string{"id 3: c"}},
		}}
	})
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 2, waitTimeout)
	require.NoError(t, stop())
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
	assert.EqualValues(t, 2, dead.Load(), "OnDeadLetter once per dead letter")
	for _, want := range []struct {
		body, reason string
		reasons      []any
	}{
		{"bad users", "2 invalid users", []any{"id 1: a", "id 2: b"}},
		{"more bad users", "1 invalid user", []any{"id 3: c"}},
	} {
		d, ok := rmqtest.Get(t, url, rabbitmq.DLQName(queue))
		require.True(t, ok)
		assert.Equal(t, want.body, string(d.Body))
		assert.Equal(t, "text/plain", d.ContentType)
		assert.Equal(t, want.reason, d.Headers[rabbitmq.HeaderDeathReason])
		assert.Equal(t, want.reasons, d.Headers[rabbitmq.HeaderDeathReasons])
		assert.Equal(t, "1", d.Headers["load"])
	}
}

// A handler that panics, or decides nothing, dead-letters the message as
// it arrived instead of crashing the consumer on every redelivery or
// leaving it unsettled.
func TestConsumerHandlerFailureDeadLetters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		handle rabbitmq.Handler
		reason string
	}{
		{"panic", func(context.Context, rabbitmq.Delivery) rabbitmq.Outcome { panic("boom") }, "handler panicked: boom"},
		{"no outcome", func(context.Context, rabbitmq.Delivery) rabbitmq.Outcome { return nil }, "handler returned no outcome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, queue := rmqtest.NewQueue(t)
			declare(t, url, queue)
			rmqtest.Publish(t, url, queue, textMessages(1)...)
			c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{})
			stop := runConsumer(t, c, tt.handle)
			rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 1, waitTimeout)
			require.NoError(t, stop())
			d, ok := rmqtest.Get(t, url, rabbitmq.DLQName(queue))
			require.True(t, ok)
			assert.Equal(t, tt.reason, d.Headers[rabbitmq.HeaderDeathReason])
			assert.Equal(t, "m0", string(d.Body), "the message as it arrived")
			rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
		})
	}
}

// A dead letter the broker cannot take (here the dead-letter queue is
// gone, so the mandatory publish is returned) leaves the message in its
// queue: it is requeued, never acked.
func TestConsumerRequeuesWhenDeadLetterFails(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	var mu sync.Mutex
	var redelivered []bool
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{Workers: 1})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		mu.Lock()
		defer mu.Unlock()
		redelivered = append(redelivered, d.Redelivered)
		if len(redelivered) == 1 {
			return rabbitmq.DeadLetterParts{Parts: []rabbitmq.Part{{Body: []byte("bad part"), Reason: "refused"}}}
		}
		return rabbitmq.Ack{}
	})
	wait.Until(t, waitTimeout, "the consumer to connect", c.Connected)
	_, err := channel(t, url).QueueDelete(rabbitmq.DLQName(queue), false, false, false)
	require.NoError(t, err)
	rmqtest.Publish(t, url, queue, textMessages(1)...)
	wait.Until(t, waitTimeout, "redelivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(redelivered) == 2 })
	require.NoError(t, stop())
	assert.Equal(t, []bool{false, true}, redelivered)
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
}

// Requeue gives the message back and a redelivery says so.
func TestConsumerRequeue(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	rmqtest.Publish(t, url, queue, textMessages(1)...)
	var mu sync.Mutex
	var redelivered []bool
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{Workers: 1})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		mu.Lock()
		defer mu.Unlock()
		redelivered = append(redelivered, d.Redelivered)
		if len(redelivered) == 1 {
			return rabbitmq.Requeue{}
		}
		return rabbitmq.Ack{}
	})
	wait.Until(t, waitTimeout, "redelivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(redelivered) == 2 })
	require.NoError(t, stop())
	assert.Equal(t, []bool{false, true}, redelivered)
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
}

// On cancellation the handler in flight finishes (with a live context) and
// acks; prefetched deliveries go back to the queue; Run returns nil. The
// queue is classic: a quorum queue goes on counting a cancelled consumer
// until its deliveries are settled, so the cancellation could not be
// seen before the handler returns.
func TestConsumerGracefulShutdown(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	classic := rabbitmq.Topology{Type: rabbitmq.Classic}
	require.NoError(t, rabbitmq.Declare(channel(t, url), queue, classic))
	rmqtest.Publish(t, url, queue, textMessages(4)...)

	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	var ctxErrAtEnd atomic.Value
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{Prefetch: 4, Workers: 1, Topology: classic})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		calls.Add(1)
		close(started)
		<-release
		ctxErrAtEnd.Store(fmt.Sprint(ctx.Err()))
		return rabbitmq.Ack{}
	})
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Run must wait for the handler: it cannot return before release.
	wait.Until(t, waitTimeout, "consumer cancelled", func() bool { _, consumers := rmqtest.Messages(t, url, queue); return consumers == 0 })
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a handler was in flight", err)
	default:
	}
	close(release)
	require.NoError(t, <-stopped)
	assert.Equal(t, int32(1), calls.Load(), "no handler starts after cancellation")
	assert.Equal(t, "<nil>", ctxErrAtEnd.Load(), "the handler's context outlives the shutdown")
	rmqtest.WaitMessages(t, url, queue, 3, waitTimeout) // the one in flight was acked
}

// A handler that outlives DrainTimeout sees its context cancelled.
func TestConsumerDrainTimeout(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	rmqtest.Publish(t, url, queue, textMessages(1)...)
	started := make(chan struct{})
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{DrainTimeout: 100 * time.Millisecond})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		close(started)
		<-ctx.Done()
		return rabbitmq.Requeue{}
	})
	<-started
	require.NoError(t, stop())
	rmqtest.WaitMessages(t, url, queue, 1, waitTimeout)
}

// The connection dies mid-stream: the consumer reconnects by itself and
// every message is handled (duplicates allowed, none lost).
func TestConsumerReconnects(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	const n = 300
	rmqtest.Publish(t, url, queue, textMessages(n)...)

	var mu sync.Mutex
	seen := map[string]int{}
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{Prefetch: 8, Workers: 2, ReconnectBackoff: 200 * time.Millisecond})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		mu.Lock()
		seen[d.MessageID]++
		first, handled := seen[d.MessageID] == 1, len(seen)
		mu.Unlock()
		if first && (handled == 100 || handled == 200) {
			rabbitmq.CutConnection(c) // this delivery's ack is lost with it
		}
		return rabbitmq.Ack{}
	})
	wait.Until(t, waitTimeout, "all messages handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n })
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
	require.NoError(t, stop())
	assert.GreaterOrEqual(t, rabbitmq.Sessions(c), uint64(3))
	ready, _ := rmqtest.Messages(t, url, queue)
	assert.Zero(t, ready)
}

// A consumer started before the broker is reachable waits for it.
func TestConsumerWaitsForBroker(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	proxy, proxied := rmqtest.NewProxy(t, url)
	proxy.Down(true)
	declare(t, url, queue)
	rmqtest.Publish(t, url, queue, textMessages(5)...)
	var calls atomic.Int32
	c := newConsumer(t, proxied, queue, rabbitmq.ConsumerOptions{ReconnectBackoff: 200 * time.Millisecond})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		calls.Add(1)
		return rabbitmq.Ack{}
	})
	proxy.Down(false)
	wait.Until(t, waitTimeout, "messages handled", func() bool { return calls.Load() == 5 })
	proxy.Cut()
	rmqtest.Publish(t, url, queue, textMessages(5)...)
	wait.Until(t, waitTimeout, "messages handled after a cut", func() bool { return calls.Load() >= 10 })
	require.NoError(t, stop())
}

// A broker that restarts refuses, for a moment, clients it accepted before
// (ACCESS_REFUSED while its users are not loaded). Here the refusal is
// real: the consumer's user is deleted while it is connected, and added
// back once the consumer has been refused. A consumer that has connected
// once retries that like an outage instead of exiting.
func TestConsumerRetriesRefusalOnceConnected(t *testing.T) {
	testenv.SkipShort(t, "it waits out the broker's refusals and the reconnection backoff")
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	user, userURL := rmqtest.NewUser(t, url)
	proxy, proxied := rmqtest.NewProxy(t, userURL)
	declare(t, url, queue)
	rmqtest.Publish(t, url, queue, textMessages(5)...)
	var calls atomic.Int32
	c := newConsumer(t, proxied, queue, rabbitmq.ConsumerOptions{ReconnectBackoff: 100 * time.Millisecond})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		calls.Add(1)
		return rabbitmq.Ack{}
	})
	wait.Until(t, waitTimeout, "messages handled", func() bool { return calls.Load() == 5 })

	before := proxy.Accepted()
	user.Delete()
	proxy.Cut() // in case the broker keeps the deleted user's connection
	wait.Until(t, waitTimeout, "two refused reconnections", func() bool { return proxy.Accepted() >= before+2 })
	rmqtest.Publish(t, url, queue, textMessages(5)...)
	user.Add()
	wait.Until(t, waitTimeout, "messages handled once the user is back", func() bool { return calls.Load() >= 10 })
	require.NoError(t, stop())
}

func TestConsumerBadCredentialsFail(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	c := newConsumer(t, "amqp://guest:wrong@"+url[len("amqp://guest:guest@"):], queue, rabbitmq.ConsumerOptions{})
	err := c.Run(context.Background(), func(context.Context, rabbitmq.Delivery) rabbitmq.Outcome { return rabbitmq.Ack{} })
	require.Error(t, err)
}

// Two consumers share a queue and one dies midway: the other takes over
// its unacked messages and every message is handled.
func TestCompetingConsumersOneDies(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	const n = 400
	rmqtest.Publish(t, url, queue, textMessages(n)...)

	var mu sync.Mutex
	seen := map[string]int{}
	record := func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		seen[id]++
		return len(seen)
	}
	opts := rabbitmq.ConsumerOptions{Prefetch: 4, Workers: 2}
	var aHandled atomic.Int32
	busy, died := make(chan struct{}), make(chan struct{})
	a := newConsumer(t, url, queue, opts)
	stopA := runConsumer(t, a, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		record(d.MessageID)
		switch aHandled.Add(1) {
		case 10:
			close(busy)
		case 20:
			rabbitmq.CutConnection(a) // dies with deliveries unacked
			close(died)
		}
		return rabbitmq.Ack{}
	})
	<-busy
	b := newConsumer(t, url, queue, opts)
	stopB := runConsumer(t, b, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		record(d.MessageID)
		return rabbitmq.Ack{}
	})
	select {
	case <-died:
	case <-time.After(waitTimeout):
		t.Fatal("consumer A never handled 50 messages")
	}
	require.NoError(t, stopA())
	wait.Until(t, waitTimeout, "all messages handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n })
	require.NoError(t, stopB())
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
}

// The poison the fault suite publishes straight to the queue (garbage, bad
// JSON, an unknown content type) ends in the dead-letter queue with a
// reason that says what failed, when the handler dead-letters what Decode
// rejects; a good batch next to them lands.
func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	good, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, records(1, 3))
	require.NoError(t, err)
	rmqtest.Publish(t, url, queue,
		amqp.Publishing{Body: []byte("\x00\x01garbage"), ContentType: rabbitmq.ContentTypeGob, MessageId: "garbage"},
		amqp.Publishing{Body: []byte(`[{"id":1,`), ContentType: rabbitmq.ContentTypeJSON, MessageId: "bad-json"},
		amqp.Publishing{Body: []byte(`id,email`), ContentType: "text/csv", MessageId: "unknown-type"},
		amqp.Publishing{Body: []byte(`[]`), MessageId: "no-type"},
		amqp.Publishing{Body: good, ContentType: rabbitmq.ContentTypeGob, MessageId: "good"},
	)
	got := newIDSet()
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		if _, err := rabbitmq.Decode(d.ContentType, d.Body); err != nil {
			return rabbitmq.DeadLetter{Reason: err.Error()}
		}
		return got.handler(t)(ctx, d)
	})
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 4, waitTimeout)
	wait.Until(t, waitTimeout, "good batch handled", func() bool { return got.distinct() == 3 })
	require.NoError(t, stop())
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)

	reasons := map[string]string{}
	require.NoError(t, rabbitmq.ListDeadLetters(context.Background(), url, queue, 0, func(m rabbitmq.DLQMessage) error {
		reasons[m.MessageID] = m.Reason
		return nil
	}))
	assert.Contains(t, reasons["garbage"], "malformed gob body")
	assert.Contains(t, reasons["bad-json"], "malformed JSON body")
	assert.Contains(t, reasons["unknown-type"], `unknown content type "text/csv"`)
	assert.Contains(t, reasons["no-type"], `unknown content type ""`)
}

// A delivery over MaxBodyBytes is dead-lettered, whole and with the
// reason, without the handler ever seeing it; the others are handled.
func TestConsumerDeadLettersOversizedDeliveries(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	declare(t, url, queue)
	big := make([]byte, 1001)
	rmqtest.Publish(t, url, queue,
		amqp.Publishing{Body: big, ContentType: rabbitmq.ContentTypeGob, MessageId: "big"},
		amqp.Publishing{Body: big[:1000], ContentType: rabbitmq.ContentTypeGob, MessageId: "at-the-limit"},
	)
	var mu sync.Mutex
	var handled []string
	c := newConsumer(t, url, queue, rabbitmq.ConsumerOptions{MaxBodyBytes: 1000})
	stop := runConsumer(t, c, func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, d.MessageID)
		return rabbitmq.Ack{}
	})
	rmqtest.WaitMessages(t, url, rabbitmq.DLQName(queue), 1, waitTimeout)
	wait.For(t, waitTimeout, "the message at the limit to be handled", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) > 0, fmt.Sprint(handled)
	})
	require.NoError(t, stop())
	assert.Equal(t, []string{"at-the-limit"}, handled)

	d, ok := rmqtest.Get(t, url, rabbitmq.DLQName(queue))
	require.True(t, ok)
	assert.Equal(t, "big", d.MessageId)
	assert.Len(t, d.Body, 1001, "dead-lettered whole")
	assert.Equal(t, "oversized: body of 1001 bytes exceeds the limit of 1000; not read", d.Headers[rabbitmq.HeaderDeathReason])
}
