package breaker

import (
	"sync"
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		steps func(*Breaker)
		allow bool
	}{
		{"zero value", func(*Breaker) {}, true},
		{"tripped", func(b *Breaker) { b.Trip(time.Hour) }, false},
		{"reset after a trip", func(b *Breaker) { b.Trip(time.Hour); b.Reset() }, true},
		{"cooldown over", func(b *Breaker) { b.Trip(-time.Nanosecond) }, true},
		{"a later trip wins", func(b *Breaker) { b.Trip(time.Hour); b.Trip(-time.Nanosecond) }, true},
		{"tripped again after a reset", func(b *Breaker) { b.Reset(); b.Trip(time.Hour) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b Breaker
			tc.steps(&b)
			if got := b.Allow(); got != tc.allow {
				t.Errorf("Allow() = %v, want %v", got, tc.allow)
			}
		})
	}
}

// Run with -race: callers on many goroutines share one breaker.
func TestBreakerConcurrentUse(t *testing.T) {
	t.Parallel()
	var b Breaker
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 1000 {
				if b.Allow() && i%2 == 0 {
					b.Trip(time.Hour)
				} else {
					b.Reset()
				}
			}
		})
	}
	wg.Wait()
	b.Reset()
	if !b.Allow() {
		t.Error("refuses calls after Reset")
	}
}
