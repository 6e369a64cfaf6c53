package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/viswals/viswals/internal/logbuf"
	"github.com/viswals/viswals/internal/wait"
)

// Audit lines reach the log within the interval, and all of them on Close.
func TestAuditWriter(t *testing.T) {
	t.Parallel()
	var out logbuf.Buffer
	a := newAuditWriter(&out, 10*time.Millisecond)
	a.Write([]byte("one\n"))
	wait.For(t, time.Minute, "the line to be written out", func() (bool, string) {
		return out.String() == "one\n", out.String()
	})

	b := newAuditWriter(&out, time.Hour)
	b.Write([]byte("two\n"))
	assert.Equal(t, "one\n", out.String(), "buffered until the interval")
	b.Close()
	assert.Equal(t, "one\ntwo\n", out.String(), "Close writes out the rest")
	a.Close()
}
