package wait_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/viswals/viswals/internal/wait"
)

func TestPoll(t *testing.T) {
	t.Parallel()
	stop := errors.New("the server exited")
	tests := []struct {
		name    string
		cond    func(calls int) (bool, string, error)
		wantErr []string // substrings of the error; none for success
		wantIs  error
	}{
		{
			name: "done at once",
			cond: func(int) (bool, string, error) { return true, "", nil },
		},
		{
			name: "done after some polls",
			cond: func(calls int) (bool, string, error) { return calls == 5, fmt.Sprint(calls), nil },
		},
		{
			name:    "never done",
			cond:    func(calls int) (bool, string, error) { return false, "still empty", nil },
			wantErr: []string{"timed out after 30ms waiting for the queue to fill", "last: still empty"},
			wantIs:  wait.ErrTimeout,
		},
		{
			name:    "never done, no state",
			cond:    func(calls int) (bool, string, error) { return false, "", nil },
			wantErr: []string{"timed out after 30ms waiting for the queue to fill"},
			wantIs:  wait.ErrTimeout,
		},
		{
			name:    "cannot be done",
			cond:    func(calls int) (bool, string, error) { return false, "", stop },
			wantErr: []string{"waiting for the queue to fill: the server exited"},
			wantIs:  stop,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			err := wait.Poll(30*time.Millisecond, "the queue to fill", func() (bool, string, error) {
				calls++
				return tt.cond(calls)
			})
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Poll: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, tt.wantIs) {
				t.Fatalf("Poll: %v, want an error that is %v", err, tt.wantIs)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

// TestForFails checks that For fails the test with Poll's message.
func TestForFails(t *testing.T) {
	t.Parallel()
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait.For(rec, 10*time.Millisecond, "the row", func() (bool, string) { return false, "0 rows" })
	}()
	<-done
	if !strings.Contains(rec.fatal, "waiting for the row; last: 0 rows") {
		t.Fatalf("For failed with %q", rec.fatal)
	}
}

// recorder records a Fatal instead of failing the test, and ends the
// goroutine that called it as Fatal does.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) {
	r.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}
