package ingest

import (
	"time"

	cb "github.com/viswals/viswals/breaker"
)

// breaker guards the cache writes: the shared breaker with the cooldown it
// trips for, which drainStale also waits between probes of the cache.
type breaker struct {
	cooldown time.Duration
	state    cb.Breaker
}

func (b *breaker) allow() bool { return b.state.Allow() }

func (b *breaker) fail() { b.state.Trip(b.cooldown) }

func (b *breaker) succeed() { b.state.Reset() }
