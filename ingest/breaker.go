package ingest

import (
	"sync"
	"time"
)

// breaker lets calls through until one fails, then refuses them for a
// cooldown, then lets one through again to probe.
type breaker struct {
	cooldown time.Duration

	mu        sync.Mutex
	openUntil time.Time
}

func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Now().Before(b.openUntil) {
		return false
	}
	return true
}

func (b *breaker) fail() {
	b.mu.Lock()
	b.openUntil = time.Now().Add(b.cooldown)
	b.mu.Unlock()
}

func (b *breaker) succeed() {
	b.mu.Lock()
	b.openUntil = time.Time{}
	b.mu.Unlock()
}
