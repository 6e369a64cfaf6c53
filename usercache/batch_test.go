package usercache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/wait"
)

// slowBatchCache is a BatchCache whose round trips take a while, so that
// concurrent reads pile up behind them.
type slowBatchCache struct {
	*memCache
	delay     time.Duration
	mu        sync.Mutex
	calls     int
	largest   int
	shortBy   int // return this many results fewer than asked
	blockNext chan struct{}
}

func (c *slowBatchCache) GetMany(ctx context.Context, ids []int64) ([]viswals.SealedUser, []error) {
	c.mu.Lock()
	c.calls++
	c.largest = max(c.largest, len(ids))
	block := c.blockNext
	c.blockNext = nil
	c.mu.Unlock()
	if block != nil {
		<-block
	}
	time.Sleep(c.delay)
	users, errs := make([]viswals.SealedUser, len(ids)), make([]error, len(ids))
	for i, id := range ids {
		users[i], errs[i] = c.Get(ctx, id)
	}
	return users[:len(ids)-c.shortBy], errs[:len(ids)-c.shortBy]
}

func TestBatchedCacheReads(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	cache := &slowBatchCache{memCache: newMemCache(), delay: 2 * time.Millisecond}
	src := newMemSource()
	s := NewStore(src, cache, fakeKeys{}, Options{})
	const n = 200
	for i := 1; i <= n; i++ {
		u := testUser(int64(i), "A", "B")
		src.users[u.ID] = u
		if i%2 == 0 { // half are cached, half are misses
			cache.Put(context.Background(), []viswals.SealedUser{u})
		}
	}
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Go(func() {
			if u, err := s.Get(context.Background(), int64(i)); err != nil || u.ID != int64(i) {
				t.Errorf("Get(%d): %+v %v", i, u, err)
			}
		})
	}
	wg.Wait()
	cache.mu.Lock()
	calls, largest := cache.calls, cache.largest
	cache.mu.Unlock()
	t.Logf("%d reads in %d round trips, the largest of %d", n, calls, largest)
	if calls >= n/2 || largest < 2 {
		t.Errorf("%d round trips for %d concurrent reads: not batched", calls, n)
	}
	// Misses were filled from the source through the same cache.
	if len(cache.users) != n {
		t.Errorf("%d users cached, want %d", len(cache.users), n)
	}
	goleak.VerifyNone(t, ignore)
}

func TestBatcherCancelAndShortReply(t *testing.T) {
	cache := &slowBatchCache{memCache: newMemCache()}
	cache.Put(context.Background(), []viswals.SealedUser{testUser(1, "A", "B")})
	b := newBatcher(cache)

	// A request that gives up while its round trip is out returns at
	// once; the round trip still completes and answers into the void.
	release := make(chan struct{})
	cache.blockNext = release
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := b.get(ctx, 1); errc <- err }()
	wait.For(t, time.Minute, "the round trip to be out", func() (bool, string) {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		return cache.calls == 1, fmt.Sprintf("%d calls", cache.calls)
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled get: %v", err)
	}
	close(release)
	if u, err := b.get(context.Background(), 1); err != nil || u.ID != 1 {
		t.Fatalf("get after a canceled one: %v %v", u, err)
	}

	// A cache that answers fewer ids than asked is an error, not a panic.
	cache.shortBy = 1
	if _, err := b.get(context.Background(), 1); viswals.ErrorCode(err) != viswals.EINTERNAL {
		t.Fatalf("short reply: %v", err)
	}
	wait.For(t, time.Minute, "no round trip in flight", func() (bool, string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.inflight == 0, fmt.Sprintf("%d in flight", b.inflight)
	})
}
