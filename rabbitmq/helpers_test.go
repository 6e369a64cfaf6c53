package rabbitmq_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rabbitmq"
)

// waitTimeout bounds every wait for the broker in these tests.
const waitTimeout = 20 * time.Second

// testLogger writes to stderr with -v and discards otherwise.
func testLogger(t testing.TB) *slog.Logger {
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// records returns users first..first+n-1.
func records(first, n int) []viswals.Record {
	recs := make([]viswals.Record, n)
	for i := range recs {
		id := int64(first + i)
		recs[i] = viswals.Record{
			User: viswals.User{
				ID: id, FirstName: fmt.Sprint("F", id), LastName: "L", Email: fmt.Sprintf("u%d@example.com", id),
				CreatedAt: ms(1_600_000_000_000 + id),
			},
			Version: viswals.Version{Load: 1, Line: id + 1},
		}
	}
	return recs
}

// runConsumer runs c with handle in the background; the returned stop
// cancels it and returns Run's error.
func runConsumer(t *testing.T, c *rabbitmq.Consumer, handle rabbitmq.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, handle) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitTimeout):
				err = fmt.Errorf("Run did not return within %s of cancellation", waitTimeout)
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// idSet collects the user ids a consumer receives, with counts.
type idSet struct {
	mu       sync.Mutex
	seen     map[int64]int
	messages int
}

func newIDSet() *idSet { return &idSet{seen: map[int64]int{}} }

// handler decodes each delivery and records its users.
func (s *idSet) handler(t *testing.T) rabbitmq.Handler {
	return func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		recs, err := rabbitmq.Decode(d.ContentType, d.Body)
		if err != nil {
			t.Errorf("decode: %v", err)
			return rabbitmq.DeadLetter{Reason: err.Error()}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.messages++
		for _, r := range recs {
			s.seen[r.ID]++
		}
		return rabbitmq.Ack{}
	}
}

func (s *idSet) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}
