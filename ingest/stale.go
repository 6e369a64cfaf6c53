package ingest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viswals/viswals"
)

// maxStale bounds the ids remembered while the cache is unreachable (8 MiB).
// Past it, the whole cache is dropped when it is back.
const maxStale = 1 << 20

// staleSet remembers the users whose cache entries may be out of date
// because writing them failed or was skipped while the cache was
// unreachable. Redis may come back with the entries it held (a hung server,
// a network partition, a restart with persistence), some of them older
// than Postgres by then; they are deleted before the cache is written
// again, and the next read fills them from Postgres.
type staleSet struct {
	mu       sync.Mutex
	ids      []int64
	overflow bool // more than maxStale: drop every entry
	// draining is set while a goroutine retries dropping the set: the
	// cache may come back after the last write of a load, and nothing
	// else would then drop the entries it missed.
	draining atomic.Bool
}

func (s *staleSet) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids) == 0 && !s.overflow
}

func (s *staleSet) addUsers(users []viswals.SealedUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overflow {
		return
	}
	if len(s.ids)+len(users) > maxStale {
		s.ids, s.overflow = nil, true
		return
	}
	for _, u := range users {
		s.ids = append(s.ids, u.ID)
	}
}

func (s *staleSet) addIDs(ids []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overflow {
		return
	}
	if len(s.ids)+len(ids) > maxStale {
		s.ids, s.overflow = nil, true
		return
	}
	s.ids = append(s.ids, ids...)
}

// setOverflow marks the set as too large to track: every entry goes.
func (s *staleSet) setOverflow() {
	s.mu.Lock()
	s.ids, s.overflow = nil, true
	s.mu.Unlock()
}

// take empties the set and returns what it held.
func (s *staleSet) take() (ids []int64, all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, all = s.ids, s.overflow
	s.ids, s.overflow = nil, false
	return ids, all
}

// staleChunk is how many entries one round trip deletes.
const staleChunk = 10_000

// dropStale deletes the entries of the stale set, if the cache can delete.
// On failure what is left goes back into the set.
func (in *Ingester) dropStale(ctx context.Context) error {
	inv, ok := in.cache.(invalidator)
	if !ok {
		return nil
	}
	ids, all := in.stale.take()
	if all {
		n, err := inv.DeleteAll(ctx)
		if err != nil {
			in.stale.setOverflow()
			return err
		}
		in.opts.Logger.Warn("cache dropped: it missed too many writes while unreachable", "entries", n)
		return nil
	}
	if len(ids) > 0 {
		in.opts.Logger.Info("dropping cache entries written while the cache was unreachable", "entries", len(ids))
	}
	for len(ids) > 0 {
		chunk := ids[:min(staleChunk, len(ids))]
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.opts.CacheTimeout)
		err := inv.Delete(cctx, chunk)
		cancel()
		if err != nil {
			in.stale.addIDs(ids)
			return err
		}
		ids = ids[len(chunk):]
	}
	return nil
}

// drainStaleLater makes sure a goroutine drops the stale set once the
// cache answers again, probing it every breaker cooldown, and ends when
// the set is empty. There is at most one such goroutine.
func (in *Ingester) drainStaleLater() {
	if _, ok := in.cache.(invalidator); !ok || !in.stale.draining.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			in.drainStale()
			in.stale.draining.Store(false)
			// Ids added after the last look and before the flag was
			// cleared found it set: look again.
			if in.stale.empty() || !in.stale.draining.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

func (in *Ingester) drainStale() {
	t := time.NewTimer(in.opts.CacheCooldown)
	defer t.Stop()
	for !in.stale.empty() {
		<-t.C
		if in.cacheBreaker.Allow() {
			if err := in.dropStale(context.Background()); err != nil {
				in.cacheBreaker.Trip(in.opts.CacheCooldown)
				in.opts.Logger.Warn("cache still unreachable; will drop the entries it missed later", "err", err)
			} else {
				in.cacheBreaker.Reset()
			}
		}
		t.Reset(in.opts.CacheCooldown)
	}
}

// recentWindow is how long a cache write counts as recent. A Redis
// replica may not have a recent write yet (replication is asynchronous),
// and a failover promotes the replica: when a write then fails, the
// recent ones may be lost too, older versions left in their place, so
// they join the stale set.
const recentWindow = 5 * time.Second

// recentWrites remembers the ids of the cache writes of the last
// recentWindow, up to maxStale of them.
type recentWrites struct {
	mu      sync.Mutex
	batches []recentBatch
	n       int
}

type recentBatch struct {
	at  time.Time
	ids []int64
}

func (r *recentWrites) add(now time.Time, users []viswals.SealedUser) {
	ids := make([]int64, len(users))
	for i := range users {
		ids[i] = users[i].ID
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, recentBatch{at: now, ids: ids})
	r.n += len(ids)
	r.prune(now)
}

// prune drops the batches older than the window, and the oldest past
// maxStale ids.
func (r *recentWrites) prune(now time.Time) {
	i := 0
	for i < len(r.batches) && (now.Sub(r.batches[i].at) > recentWindow || r.n > maxStale) {
		r.n -= len(r.batches[i].ids)
		i++
	}
	r.batches = r.batches[i:]
}

// take returns the ids of the recent writes and forgets them.
func (r *recentWrites) take(now time.Time) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prune(now)
	ids := make([]int64, 0, r.n)
	for _, b := range r.batches {
		ids = append(ids, b.ids...)
	}
	r.batches, r.n = nil, 0
	return ids
}
