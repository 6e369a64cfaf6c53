// Package wait polls a condition until it holds, for tests that wait on
// something happening elsewhere (a server starting, a message arriving, a
// row committed by another process). Polling with a deadline instead of
// sleeping a fixed time: the test goes on as soon as the state is reached,
// and when it is not, the failure says what was awaited and what was seen.
//
//	wait.For(t, 10*time.Second, "the row to be committed", func() (bool, string) {
//		n := count()
//		return n == 1, fmt.Sprintf("%d rows", n)
//	})
package wait

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// The polling interval starts short, so that a state reached at once costs
// little, and grows to maxInterval, so that a long wait does not spin.
const (
	minInterval = time.Millisecond
	maxInterval = 50 * time.Millisecond
)

// For polls cond until it reports done, and fails the test (t.Fatal) when
// timeout passes first, naming what was awaited and the state cond last
// reported. Call it from the test's goroutine.
func For(t testing.TB, timeout time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	err := Poll(timeout, what, func() (bool, string, error) {
		done, state := cond()
		return done, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Until is For for a condition with no state worth reporting.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	For(t, timeout, what, func() (bool, string) { return cond(), "" })
}

// ErrTimeout is what Poll's error wraps when timeout passed.
var ErrTimeout = errors.New("timed out")

// Poll polls cond until it reports done (Poll returns nil) or an error (Poll
// returns it: the state can no longer be reached, e.g. the process that
// would reach it exited), or until timeout passes (an error wrapping
// ErrTimeout, naming what was awaited and the state cond last reported).
// cond is called at least once.
func Poll(timeout time.Duration, what string, cond func() (done bool, state string, err error)) error {
	deadline := time.Now().Add(timeout)
	interval := minInterval
	for {
		done, state, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			if state == "" {
				return fmt.Errorf("%w after %s waiting for %s", ErrTimeout, timeout, what)
			}
			return fmt.Errorf("%w after %s waiting for %s; last: %s", ErrTimeout, timeout, what, state)
		}
		time.Sleep(interval) // the polling interval, not synchronisation
		interval = min(2*interval, maxInterval)
	}
}
