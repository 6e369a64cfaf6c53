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
