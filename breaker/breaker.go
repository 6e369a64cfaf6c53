// Package breaker is the one circuit breaker of the project: after a call
// to a dependency fails, its callers skip it for a cooldown instead of
// each waiting on it again, and the first call after the cooldown probes
// it. The read cache (usercache) and the consumer's cache writes (ingest)
// both guard Redis with it, each with a cooldown of its own.
package breaker

import (
	"sync/atomic"
	"time"
)

// epoch anchors the breaker's clock: times are durations since it, which
// Go measures on the monotonic clock, so a step of the wall clock neither
// holds a breaker open nor closes it early.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// Breaker refuses calls for a while after Trip. The zero value lets every
// call through. It is safe for concurrent use, and Allow is one atomic
// load, cheap enough for a request's hot path.
type Breaker struct {
	openUntil atomic.Int64 // nanoseconds since epoch; 0 when closed
}

// Allow reports whether a call may go ahead: no Trip, a Reset since the
// last one, or the last one's cooldown is over.
func (b *Breaker) Allow() bool { return now() >= b.openUntil.Load() }

// Trip makes Allow refuse calls for cooldown from now, after a failure.
func (b *Breaker) Trip(cooldown time.Duration) { b.openUntil.Store(now() + int64(cooldown)) }

// Reset lets calls through again at once, after a success.
func (b *Breaker) Reset() { b.openUntil.Store(0) }
