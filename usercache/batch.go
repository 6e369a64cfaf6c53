package usercache

import (
	"context"
	"sync"
	"time"

	"github.com/viswals/viswals"
)

// BatchCache is a Cache that can also read many users in one round trip.
// When the cache given to NewStore implements it, concurrent Gets share
// round trips to Redis: one Get at a time per slot sends the ids that
// queued while the previous round trip was out, which turns one network
// round trip (two system calls, a context switch and a Redis command) per
// request into one per batch under load, and costs nothing when requests
// come one by one.
type BatchCache interface {
	Cache
	// GetMany returns, for each id in order, the user or the error Get
	// would have returned for it.
	GetMany(ctx context.Context, ids []int64) ([]viswals.SealedUser, []error)
}

// batcher groups concurrent cache reads. It has no long-lived goroutine: a
// request that finds a free slot starts one round trip for the queue, and
// a round trip that ends with requests queued starts the next.
type batcher struct {
	cache       BatchCache
	maxBatch    int
	maxInflight int
	timeout     time.Duration

	mu       sync.Mutex
	queue    []*batchReq
	inflight int
}

type batchReq struct {
	id   int64
	user viswals.SealedUser
	err  error
	done chan struct{} // capacity 1: the sender never blocks
}

var batchReqPool = sync.Pool{New: func() any { return &batchReq{done: make(chan struct{}, 1)} }}

// One round trip in flight at a time: the requests that arrive meanwhile
// make the next batch. On two cores that beat four in flight, whose more,
// smaller batches cost more system calls and more goroutines competing for
// the same cores (docs/benchmarks.md has the figures).
func newBatcher(c BatchCache) *batcher {
	return &batcher{cache: c, maxBatch: 128, maxInflight: 1, timeout: 2 * time.Second}
}

func (b *batcher) get(ctx context.Context, id int64) (viswals.SealedUser, error) {
	r := batchReqPool.Get().(*batchReq)
	r.id = id
	b.mu.Lock()
	b.queue = append(b.queue, r)
	var batch []*batchReq
	if b.inflight < b.maxInflight {
		b.inflight++
		batch = b.takeLocked()
	}
	b.mu.Unlock()
	if batch != nil {
		// In a goroutine of its own, so that this request, like every
		// other in the batch, can give up when its context ends.
		go b.send(batch)
	}
	select {
	case <-r.done:
		u, err := r.user, r.err
		r.user, r.err = viswals.SealedUser{}, nil
		batchReqPool.Put(r)
		return u, err
	case <-ctx.Done():
		// r is answered later by the batch it is in; it is not reused.
		return viswals.SealedUser{}, ctx.Err()
	}
}

// takeLocked removes up to maxBatch requests from the queue.
func (b *batcher) takeLocked() []*batchReq {
	n := min(len(b.queue), b.maxBatch)
	batch := make([]*batchReq, n)
	copy(batch, b.queue)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return batch
}

// send does one round trip for batch, then passes the slot on to a new
// goroutine if requests queued meanwhile, or frees it.
func (b *batcher) send(batch []*batchReq) {
	ids := make([]int64, len(batch))
	for i, r := range batch {
		ids[i] = r.id
	}
	// The batch serves several requests: no single one's context may
	// cancel it.
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	users, errs := b.cache.GetMany(ctx, ids)
	cancel()
	for i, r := range batch {
		if i < len(users) && i < len(errs) {
			r.user, r.err = users[i], errs[i]
		} else {
			r.err = viswals.Errorf(viswals.EINTERNAL, "cache returned %d results for %d ids", len(users), len(ids))
		}
		r.done <- struct{}{}
	}
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.inflight--
		b.mu.Unlock()
		return
	}
	next := b.takeLocked()
	b.mu.Unlock()
	go b.send(next)
}
