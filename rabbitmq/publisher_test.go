package rabbitmq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rabbitmq/rmqtest"
)

func newPublisher(t testing.TB, url, queue string, opts rabbitmq.PublisherOptions) *rabbitmq.Publisher {
	t.Helper()
	opts.Logger = testLogger(t)
	p, err := rabbitmq.NewPublisher(context.Background(), url, queue, opts)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// publishBatches publishes users first..first+n-1 in batches of size,
// alternating gob and JSON bodies.
func publishBatches(t *testing.T, p *rabbitmq.Publisher, first, n, size int) (messages int) {
	t.Helper()
	for i := 0; i < n; i += size {
		ct := contentTypes[messages%2]
		body, err := rabbitmq.Encode(ct, records(first+i, min(size, n-i)))
		require.NoError(t, err)
		msg := rabbitmq.Message{Body: body, ContentType: ct, MessageID: fmt.Sprint("batch-", first+i)}
		require.NoError(t, p.Publish(context.Background(), msg))
		messages++
	}
	return messages
}

// publishInBackground publishes users first..last in gob batches of 10,
// then flushes, in a goroutine (Publish may block while the publisher
// reconnects), and sends the first error or nil.
func publishInBackground(p *rabbitmq.Publisher, first, last int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := first; i <= last; i += 10 {
			body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, records(i, min(10, last-i+1)))
			if err == nil {
				err = p.Publish(context.Background(), rabbitmq.Message{Body: body, ContentType: rabbitmq.ContentTypeGob})
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- p.Flush(context.Background())
	}()
	return done
}

// 10k users in batches are all confirmed, then consumed exactly once.
func TestPublishTenThousandUsers(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	p := newPublisher(t, url, queue, rabbitmq.PublisherOptions{MaxInFlight: 8})
	const users, batch = 10_000, 100
	msgs := publishBatches(t, p, 1, users, batch)
	require.NoError(t, p.Flush(context.Background()))
	st := p.Stats()
	assert.Equal(t, uint64(msgs), st.Published)
	assert.Equal(t, uint64(msgs), st.Confirmed)
	assert.Zero(t, st.Republished)
	rmqtest.WaitMessages(t, url, queue, msgs, waitTimeout)

	got := newIDSet()
	c := rabbitmq.NewConsumer(url, queue, rabbitmq.ConsumerOptions{Logger: testLogger(t), Workers: 4})
	stop := runConsumer(t, c, got.handler(t))
	wait.Until(t, waitTimeout, "all users consumed", func() bool { return got.distinct() == users })
	require.NoError(t, stop())
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
	assert.Equal(t, msgs, got.messages, "each message exactly once")
	for id := int64(1); id <= users; id++ {
		require.Equal(t, 1, got.seen[id], "user %d", id)
	}
}

// Once Flush returns, every message published before is on the queue.
func TestFlushWaitsForConfirms(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	p := newPublisher(t, url, queue, rabbitmq.PublisherOptions{})
	require.NoError(t, p.Flush(context.Background()), "nothing to wait for")
	for round := 1; round <= 3; round++ {
		publishBatches(t, p, round*1000, 500, 10)
		require.NoError(t, p.Flush(context.Background()))
		st := p.Stats()
		require.Equal(t, st.Published, st.Confirmed)
		ready, _ := rmqtest.Messages(t, url, queue)
		require.Equal(t, int(st.Published), ready, "round %d: confirmed messages are enqueued", round)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, p.Flush(ctx), context.Canceled)
}

func TestPublishValidatesMessages(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	p := newPublisher(t, url, queue, rabbitmq.PublisherOptions{})
	ctx := context.Background()
	cases := map[string]rabbitmq.Message{
		"no content type": {Body: []byte("[]")},
		"bad header":      {Body: []byte("[]"), ContentType: rabbitmq.ContentTypeJSON, Headers: amqp.Table{"x": struct{}{}}},
		"too big":         {Body: make([]byte, rabbitmq.MaxBodyBytes+1), ContentType: rabbitmq.ContentTypeGob},
	}
	for name, msg := range cases {
		err := p.Publish(ctx, msg)
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%s: %v", name, err)
	}
	require.NoError(t, p.Flush(ctx))
	assert.Zero(t, p.Stats().Published)
}

// The connection dies twice with messages unconfirmed: the publisher
// reconnects, republishes them, and every user arrives.
func TestPublisherRepublishesAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	p := newPublisher(t, url, queue, rabbitmq.PublisherOptions{MaxInFlight: 16})
	const users, batch = 2_000, 10
	ctx := context.Background()
	msgs := 0
	for i := 0; i < users; i += batch {
		if i == 500 || i == 1500 {
			rabbitmq.CutAfterNextSend(p)
		}
		body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, records(1+i, batch))
		require.NoError(t, err)
		require.NoError(t, p.Publish(ctx, rabbitmq.Message{Body: body, ContentType: rabbitmq.ContentTypeGob}))
		msgs++
	}
	require.NoError(t, p.Flush(ctx))
	st := p.Stats()
	t.Logf("stats: %+v", st)
	assert.Equal(t, uint64(2), st.Reconnects)
	// The message sent just before each cut is unconfirmed when the
	// connection dies (its ack would have to beat the close by which
	// the sending goroutine follows the write).
	assert.GreaterOrEqual(t, st.Republished, uint64(1), "messages unconfirmed at the cuts are republished")
	assert.Equal(t, uint64(msgs), st.Confirmed)

	got := newIDSet()
	stop := runConsumer(t, rabbitmq.NewConsumer(url, queue, rabbitmq.ConsumerOptions{Logger: testLogger(t)}), got.handler(t))
	wait.Until(t, waitTimeout, "all users consumed", func() bool { return got.distinct() == users })
	require.NoError(t, stop())
	rmqtest.WaitMessages(t, url, queue, 0, waitTimeout)
}

// As for the consumer (TestConsumerRetriesRefusalOnceConnected): once
// connected, a publisher retries the refusals of a restarting broker,
// here made real by deleting its user and adding it back.
func TestPublisherRetriesRefusalOnceConnected(t *testing.T) {
	testenv.SkipShort(t, "it waits out the broker's refusals and the reconnection backoff")
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	user, userURL := rmqtest.NewUser(t, url)
	proxy, proxied := rmqtest.NewProxy(t, userURL)
	p := newPublisher(t, proxied, queue, rabbitmq.PublisherOptions{MaxInFlight: 4})
	ctx := context.Background()
	publishBatches(t, p, 1, 100, 10)
	require.NoError(t, p.Flush(ctx))

	before := proxy.Accepted()
	user.Delete()
	proxy.Cut()
	// Publishing now needs a connection: the publisher keeps trying.
	done := publishInBackground(p, 101, 200)
	wait.Until(t, waitTimeout, "two refused reconnections", func() bool { return proxy.Accepted() >= before+2 })
	user.Add()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("publishing did not resume once the user was back")
	}
	assert.Equal(t, uint64(20), p.Stats().Confirmed)
}

// With the broker gone for longer than ReconnectTimeout, Publish and Flush
// fail with EUNAVAILABLE instead of hanging.
func TestPublisherGivesUp(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	proxy, proxied := rmqtest.NewProxy(t, url)
	p := newPublisher(t, proxied, queue, rabbitmq.PublisherOptions{ReconnectTimeout: time.Second, MaxInFlight: 2})
	ctx := context.Background()
	publishBatches(t, p, 1, 10, 10)
	require.NoError(t, p.Flush(ctx))

	proxy.Down(true)
	start := time.Now()
	var err error
	for err == nil && time.Since(start) < waitTimeout {
		err = p.Publish(ctx, rabbitmq.Message{Body: []byte("[]"), ContentType: rabbitmq.ContentTypeJSON})
	}
	require.Error(t, err)
	assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "%v", err)
	assert.Less(t, time.Since(start), 10*time.Second)
	err = p.Flush(ctx)
	assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "%v", err)
}

// A broker back within ReconnectTimeout: the publisher waits for it.
func TestPublisherWaitsForBrokerToReturn(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	proxy, proxied := rmqtest.NewProxy(t, url)
	p := newPublisher(t, proxied, queue, rabbitmq.PublisherOptions{ReconnectTimeout: waitTimeout})
	publishBatches(t, p, 1, 100, 10)
	proxy.Down(true)
	// Publish blocks while the publisher reconnects; the broker comes
	// back while it waits.
	published := publishInBackground(p, 101, 200)
	proxy.Down(false)
	select {
	case err := <-published:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Publish and Flush did not return after the broker came back")
	}
	got := newIDSet()
	stop := runConsumer(t, rabbitmq.NewConsumer(url, queue, rabbitmq.ConsumerOptions{Logger: testLogger(t)}), got.handler(t))
	wait.Until(t, waitTimeout, "all users consumed", func() bool { return got.distinct() == 200 })
	require.NoError(t, stop())
}

func TestNewPublisherUnreachable(t *testing.T) {
	t.Parallel()
	url, queue := rmqtest.NewQueue(t)
	proxy, proxied := rmqtest.NewProxy(t, url)
	proxy.Down(true)
	_, err := rabbitmq.NewPublisher(context.Background(), proxied, queue, rabbitmq.PublisherOptions{ReconnectTimeout: 500 * time.Millisecond})
	require.Error(t, err)
	assert.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "%v", err)

	_, err = rabbitmq.NewPublisher(context.Background(), "amqp://guest:wrong@"+url[len("amqp://guest:guest@"):], queue, rabbitmq.PublisherOptions{})
	require.Error(t, err)
	assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "bad credentials fail at once: %v", err)
}

// BenchmarkPublishConfirmed publishes 1000-user gob batches with confirms,
// for a few sizes of the unconfirmed window.
func BenchmarkPublishConfirmed(b *testing.B) {
	for _, window := range []int{8, 64, 256} {
		b.Run(fmt.Sprint("window=", window), func(b *testing.B) { benchmarkPublish(b, window) })
	}
}

func benchmarkPublish(b *testing.B, window int) {
	url, queue := rmqtest.NewQueue(b)
	p := newPublisher(b, url, queue, rabbitmq.PublisherOptions{MaxInFlight: window})
	body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, benchmarkBatch())
	if err != nil {
		b.Fatal(err)
	}
	msg := rabbitmq.Message{Body: body, ContentType: rabbitmq.ContentTypeGob}
	ctx := context.Background()
	// Purging now and then keeps a long run from piling gigabytes on the
	// broker that other tests share; it costs little next to publishing.
	purger := channel(b, url)
	b.SetBytes(int64(len(body)))
	start := time.Now()
	n := 0
	for b.Loop() {
		if err := p.Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if n++; n%500 == 0 {
			if _, err := purger.QueuePurge(queue, false); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/secs, "msgs/s")
	b.ReportMetric(float64(b.N)*1000/secs, "users/s")
}
