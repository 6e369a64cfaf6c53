package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// auditWriter buffers the audit log and writes it out every interval (and
// when the buffer fills, and on Close), so that a read that reveals emails
// does not cost a write to the log of its own. What a crash can lose is
// the last interval's lines.
type auditWriter struct {
	mu   sync.Mutex
	bw   *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newAuditWriter(w io.Writer, interval time.Duration) *auditWriter {
	a := &auditWriter{bw: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-t.C:
				a.flush()
			}
		}
	}()
	return a
}

func (a *auditWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bw.Write(p)
}

func (a *auditWriter) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.bw.Flush() // nowhere to report a failing log
}

// Close writes out what is buffered and stops the flushing.
func (a *auditWriter) Close() {
	close(a.stop)
	<-a.done
	a.flush()
}
