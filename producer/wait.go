package producer

import (
	"context"
	"fmt"
	"time"

	"github.com/viswals/viswals"
)

// WaitOptions shape Wait.
type WaitOptions struct {
	// Published is how many rows the load published.
	Published int64
	// Timeout: Wait gives up when the consumers commit nothing of the load
	// for this long (a consumer down, the queue stuck behind other work).
	Timeout time.Duration
	// Tick is how often Show is called while nothing arrives (default 1s).
	Tick time.Duration
	// Show is told the load's latest record and what the wait is at.
	Show func(rec viswals.LoadRecord, note string)
}

// Wait follows a load's records (from rabbitmq.LoadFollower) until every
// row it published is accounted for. It returns nil when all were
// committed; an EINVALID error naming the count when some went to the
// dead-letter queue, or at once when a consumer refused a message of the
// load for its signature (the load cannot complete); an EUNAVAILABLE error when the records stop coming
// for opts.Timeout, or the stream of records ends.
func Wait(ctx context.Context, load int64, records <-chan viswals.LoadRecord, opts WaitOptions) (viswals.LoadRecord, error) {
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Show == nil {
		opts.Show = func(viswals.LoadRecord, string) {}
	}
	rec := viswals.LoadRecord{ID: load}
	progress := time.Now()
	tick := time.NewTicker(opts.Tick)
	defer tick.Stop()
	opts.Show(rec, "waiting for the consumers")
	for {
		select {
		case <-ctx.Done():
			return rec, ctx.Err()
		case r, ok := <-records:
			if !ok {
				return rec, viswals.Errorf(viswals.EUNAVAILABLE, "lost track of load %d: %d of %d rows committed", load, rec.Received, opts.Published)
			}
			next := rec.Merge(r)
			if next.Received != rec.Received || (next.Summary != nil) != (rec.Summary != nil) {
				progress = time.Now()
			}
			rec = next
		case <-tick.C:
		}
		if rec.UnverifiedMessages > 0 {
			opts.Show(rec, "")
			return rec, viswals.Errorf(viswals.EINVALID, "load %d cannot complete: the consumers dead-lettered messages of it that failed their signature check (unsigned, or signed with another key); is INGEST_SIGNING_KEY the same for the producer and the consumers? %d of %d rows committed (see: consumer dlq list)",
				load, rec.Received, opts.Published)
		}
		switch rec.State() {
		case viswals.LoadComplete:
			opts.Show(rec, "")
			return rec, nil
		case viswals.LoadDeadLettered:
			opts.Show(rec, "")
			return rec, viswals.Errorf(viswals.EINVALID, "load %d: %d of %d rows went to the dead-letter queue (see: consumer dlq list)",
				load, rec.DeadLettered, opts.Published)
		}
		idle := time.Since(progress)
		if idle >= opts.Timeout {
			return rec, viswals.Errorf(viswals.EUNAVAILABLE, "load %d: gave up after %s without progress (--wait-timeout): the consumers committed %d of %d rows%s; is a consumer running on the queue?",
				load, opts.Timeout, rec.Received, opts.Published, summaryNote(rec))
		}
		note := ""
		if idle >= 2*opts.Tick {
			note = fmt.Sprintf("waiting for the consumers, %s without progress", idle.Round(time.Second))
		}
		opts.Show(rec, note)
	}
}

func summaryNote(rec viswals.LoadRecord) string {
	if rec.Summary == nil {
		return ", and the load's summary is not recorded yet"
	}
	return ""
}
