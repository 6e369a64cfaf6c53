package rabbitmq

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff yields exponentially growing, jittered waits between reconnection
// attempts: first around min, doubling up to max. The jitter spreads the
// reconnections of many clients after a broker restart.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	if max < min {
		max = min
	}
	return &backoff{min: min, max: max, next: min}
}

// wait returns the next delay: a random duration in [d/2, d].
func (b *backoff) wait() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.next = b.min }

// sleep waits for d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
