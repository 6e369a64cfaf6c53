// Package producer is the producer's flow: rows read and validated by
// csvin are batched, stamped with the load's id and published; rejected
// rows go to the rejects writer. Run returns once the broker has confirmed
// every message.
package producer

import (
	"context"
	"fmt"
	"io"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/csvin"
	"github.com/viswals/viswals/rabbitmq"
	"golang.org/x/sync/errgroup"
)

// Rows yields the input's rows, good or rejected, then io.EOF.
// *csvin.Reader is one.
type Rows interface {
	Next() (csvin.Row, error)
}

// Publisher publishes messages with broker confirms: Flush returns once
// every message given to Publish is confirmed. *rabbitmq.Publisher is one.
type Publisher interface {
	Publish(ctx context.Context, msg rabbitmq.Message) error
	Flush(ctx context.Context) error
}

// Rejects records a rejected row. *csvin.RejectWriter is one; flushing it
// is left to its owner.
type Rejects interface {
	Write(row csvin.Row) error
}

// Progress is told how many rows have been read so far.
type Progress interface {
	Set(rows int64)
}

// Options shape the messages.
type Options struct {
	ContentType string // rabbitmq.ContentTypeGob or rabbitmq.ContentTypeJSON
	BatchSize   int    // users per message, at least 1
	// LoadID is stamped on every record's version, so that a later load's
	// rows win over an earlier one's.
	LoadID int64
	// Sealer, when set, seals every email before it is encoded, so that
	// the broker never holds one in plaintext; ContentType must then say
	// so (rabbitmq.WithSealedEmails).
	Sealer Sealer
}

// Sealer seals a user's email. *emailcrypt.Keyring is one.
type Sealer interface {
	Encrypt(userID int64, email string) (string, error)
}

// Counts is what a run did, in rows except Messages.
type Counts struct {
	Read, Published, Rejected, Messages int64
}

// Producer moves rows from the CSV reader to the publisher: parsing runs in
// its own goroutine so that it overlaps encoding and publishing. It is for
// one run.
type Producer struct {
	rows     Rows
	pub      Publisher
	rejects  Rejects
	progress Progress
	opts     Options

	n Counts
}

// New returns a Producer that reads rows, writes rejects, reports progress
// and publishes through pub.
func New(rows Rows, pub Publisher, rejects Rejects, progress Progress, opts Options) *Producer {
	return &Producer{rows: rows, pub: pub, rejects: rejects, progress: progress, opts: opts}
}

// Run reads every row and publishes the good ones in batches, then the
// load's summary, and waits for the broker to confirm them all. It returns the counts so far even
// when it fails.
func (p *Producer) Run(ctx context.Context) (Counts, error) {
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan []viswals.Record, 4)
	g.Go(func() error {
		defer close(batches)
		return p.parse(gctx, batches)
	})
	g.Go(func() error {
		for batch := range batches {
			if p.opts.Sealer != nil {
				for i := range batch {
					sealed, err := p.opts.Sealer.Encrypt(batch[i].ID, batch[i].Email)
					if err != nil {
						return fmt.Errorf("seal email of user %d: %w", batch[i].ID, err)
					}
					batch[i].Email = sealed
				}
			}
			body, err := rabbitmq.Encode(p.opts.ContentType, batch)
			if err != nil {
				return fmt.Errorf("encode batch: %w", err)
			}
			// The message id is the same if the publisher sends it again,
			// so the consumer counts it into the load once.
			msg := rabbitmq.Message{Body: body, ContentType: p.opts.ContentType,
				Headers: rabbitmq.BatchHeaders(p.opts.LoadID, len(batch)), MessageID: fmt.Sprintf("%d-%d", p.opts.LoadID, p.n.Messages+1)}
			if err := p.pub.Publish(gctx, msg); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			p.n.Published += int64(len(batch))
			p.n.Messages++
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return p.n, err
	}
	if err := p.pub.Flush(ctx); err != nil {
		return p.n, fmt.Errorf("wait for broker confirms: %w", err)
	}
	// The summary goes last, once the counts are final.
	sum := viswals.LoadSummary{Load: p.opts.LoadID, Read: p.n.Read, Published: p.n.Published, Rejected: p.n.Rejected}
	if err := p.pub.Publish(ctx, rabbitmq.SummaryMessage(sum)); err != nil {
		return p.n, fmt.Errorf("publish the load's summary: %w", err)
	}
	if err := p.pub.Flush(ctx); err != nil {
		return p.n, fmt.Errorf("wait for broker confirms: %w", err)
	}
	return p.n, nil
}

// parse reads every row, writes rejects and sends batches of good records.
func (p *Producer) parse(ctx context.Context, out chan<- []viswals.Record) error {
	batch := make([]viswals.Record, 0, p.opts.BatchSize)
	for {
		row, err := p.rows.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
		p.n.Read++
		if p.n.Read%4096 == 0 {
			p.progress.Set(p.n.Read)
		}
		if row.Err != nil {
			p.n.Rejected++
			if err := p.rejects.Write(row); err != nil {
				return fmt.Errorf("write rejects: %w", err)
			}
			continue
		}
		rec := row.Record
		rec.Version.Load = p.opts.LoadID
		batch = append(batch, rec)
		if len(batch) == p.opts.BatchSize {
			select {
			case out <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([]viswals.Record, 0, p.opts.BatchSize)
		}
	}
	p.progress.Set(p.n.Read)
	if len(batch) > 0 {
		select {
		case out <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
