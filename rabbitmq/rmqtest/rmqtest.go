// Package rmqtest gives tests a queue of their own on a real RabbitMQ.
package rmqtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/wait"
)

// DefaultURL is the broker used when RABBITMQ_TEST_URL is not set.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// URL returns the broker URL for tests: RABBITMQ_TEST_URL or DefaultURL.
func URL() string {
	if u := os.Getenv("RABBITMQ_TEST_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewQueue returns the test broker's URL and a queue name unique to this
// test. The queue, its dead-letter queue and exchange (which the code
// under test declares) are deleted when the test ends. When the broker does
// not answer, the test is skipped under -short and fails otherwise (see
// internal/testenv): a missing broker must not pass the full suite as green.
func NewQueue(t testing.TB) (url, queue string) {
	t.Helper()
	url = URL()
	uri, err := amqp.ParseURI(url)
	if err != nil {
		t.Fatalf("RABBITMQ_TEST_URL: %v", err)
	}
	testenv.Service(t, "RabbitMQ", net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)))
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("RabbitMQ unreachable at %s (set RABBITMQ_TEST_URL): %v", redact(url), err)
	}
	conn.Close()
	queue = "test-" + sanitize(t.Name()) + "-" + randomHex(4)
	t.Cleanup(func() { deleteTopology(t, url, queue) })
	return url, queue
}

func deleteTopology(t testing.TB, url, queue string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Errorf("cleanup of queue %q: %v", queue, err)
		return
	}
	defer conn.Close()
	// A channel per operation: a failed one closes its channel.
	do := func(what string, op func(*amqp.Channel) error) {
		ch, err := conn.Channel()
		if err == nil {
			err = op(ch)
			ch.Close()
		}
		var ae *amqp.Error
		if err != nil && !(errors.As(err, &ae) && ae.Code == amqp.NotFound) {
			t.Errorf("cleanup: delete %s: %v", what, err)
		}
	}
	for _, q := range []string{queue, queue + ".dlq"} {
		do(q, func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err })
	}
	do(queue+".dlx", func(ch *amqp.Channel) error { return ch.ExchangeDelete(queue+".dlx", false, false) })
}

// Messages returns the number of messages ready in queue (not counting
// those delivered and not yet acknowledged) and its consumer count.
func Messages(t testing.TB, url, queue string) (ready, consumers int) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("inspect %q: %v", queue, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("inspect %q: %v", queue, err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect %q: %v", queue, err)
	}
	return q.Messages, q.Consumers
}

// WaitMessages polls queue until it holds want ready messages, failing the
// test after timeout.
func WaitMessages(t testing.TB, url, queue string, want int, timeout time.Duration) {
	t.Helper()
	wait.For(t, timeout, fmt.Sprintf("queue %q to hold %d ready messages", queue, want), func() (bool, string) {
		got, _ := Messages(t, url, queue)
		return got == want, fmt.Sprintf("%d ready", got)
	})
}

// Publish publishes raw messages straight to queue through the default
// exchange and waits for their confirmation: for tests that need a
// message the code under test would not produce.
func Publish(t testing.TB, url, queue string, msgs ...amqp.Publishing) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("publish to %q: %v", queue, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		t.Fatalf("publish to %q: %v", queue, err)
	}
	for _, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, m)
		if err != nil {
			t.Fatalf("publish to %q: %v", queue, err)
		}
		if !dc.Wait() {
			t.Fatalf("publish to %q: not confirmed", queue)
		}
	}
}

// Get takes one message from queue and acks it; ok is false when the queue
// is empty.
func Get(t testing.TB, url, queue string) (d amqp.Delivery, ok bool) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("get from %q: %v", queue, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("get from %q: %v", queue, err)
	}
	d, ok, err = ch.Get(queue, true)
	if err != nil {
		t.Fatalf("get from %q: %v", queue, err)
	}
	return d, ok
}

// sanitize keeps test names readable in queue names, within length limits.
func sanitize(name string) string {
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, name)
	if len(name) > 100 {
		name = name[:100]
	}
	return name
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// redact hides the password of an AMQP URL.
func redact(url string) string {
	if at := strings.LastIndex(url, "@"); at >= 0 {
		if scheme := strings.Index(url, "://"); scheme >= 0 && scheme < at {
			userinfo := url[scheme+3 : at]
			if user, _, ok := strings.Cut(userinfo, ":"); ok {
				return url[:scheme+3] + user + ":***" + url[at:]
			}
		}
	}
	return url
}
