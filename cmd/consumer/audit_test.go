package main

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/viswals/viswals/internal/wait"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Audit lines reach the log within the interval, and all of them on Close.
func TestAuditWriter(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	a := newAuditWriter(&out, 10*time.Millisecond)
	a.Write([]byte("one\n"))
	wait.For(t, 5*time.Second, "the line to be written out", func() (bool, string) {
		return out.String() == "one\n", out.String()
	})

	b := newAuditWriter(&out, time.Hour)
	b.Write([]byte("two\n"))
	assert.Equal(t, "one\n", out.String(), "buffered until the interval")
	b.Close()
	assert.Equal(t, "one\ntwo\n", out.String(), "Close writes out the rest")
	a.Close()
}
