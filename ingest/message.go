package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rabbitmq"
)

// DeadLetterer sends a new message to the dead-letter queue and returns
// once the broker confirmed it.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, body []byte, contentType string, headers amqp.Table, reason string) error
}

// maxReasonBytes bounds the reason header of a dead letter.
const maxReasonBytes = 2048

// Handler returns the consumer's message handler: decode the batch, ingest
// it, and dead-letter what cannot be stored. The message is acked only
// after its good users are committed and its bad ones are dead-lettered.
func (in *Ingester) Handler(dlq DeadLetterer) rabbitmq.Handler {
	return func(ctx context.Context, d rabbitmq.Delivery) rabbitmq.Outcome {
		recs, err := rabbitmq.Decode(d.ContentType, d.Body)
		if err != nil {
			in.opts.Metrics.DeadLettered.Inc()
			in.opts.Logger.Warn("dead-lettering undecodable message", "message_id", d.MessageID, "content_type", d.ContentType, "bytes", len(d.Body), "err", err)
			return rabbitmq.DeadLetter{Reason: "decode: " + err.Error()}
		}
		assignVersions(recs, time.Now())

		rejected, err := in.ingest(ctx, recs, d.Redelivered)
		if err != nil {
			// Not the message's fault (the store stayed down until shutdown
			// or the delivery's connection died): let it be delivered again.
			in.opts.Logger.Warn("requeueing message", "message_id", d.MessageID, "err", err)
			return rabbitmq.Requeue{}
		}
		if len(rejected) == 0 {
			return rabbitmq.Ack{}
		}
		in.opts.Metrics.DeadLettered.Inc()
		reason := rejectReason(rejected, len(recs))
		in.opts.Logger.Warn("dead-lettering invalid users", "message_id", d.MessageID, "invalid", len(rejected), "users", len(recs))
		if len(rejected) == len(recs) {
			return rabbitmq.DeadLetter{Reason: reason}
		}
		// Only the invalid users go to the dead-letter queue, as a new
		// message in the same encoding; the good ones are committed.
		bad := make([]viswals.Record, len(rejected))
		for i, r := range rejected {
			bad[i] = r.Record
		}
		body, err := rabbitmq.Encode(d.ContentType, bad)
		if err != nil {
			return rabbitmq.DeadLetter{Reason: reason}
		}
		if err := dlq.DeadLetter(ctx, body, d.ContentType, d.Headers, reason); err != nil {
			in.opts.Logger.Warn("dead-letter failed; requeueing message", "message_id", d.MessageID, "err", err)
			return rabbitmq.Requeue{}
		}
		return rabbitmq.Ack{}
	}
}

// assignVersions gives records without a version (from producers that do
// not send one) the arrival time as load and their position as line, so
// later messages win over earlier ones.
func assignVersions(recs []viswals.Record, arrival time.Time) {
	for i := range recs {
		if recs[i].Version == (viswals.Version{}) {
			recs[i].Version = viswals.Version{Load: arrival.UnixNano(), Line: int64(i + 1)}
		}
	}
}

func rejectReason(rejected []Rejected, total int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d users invalid:", len(rejected), total)
	for _, r := range rejected {
		item := fmt.Sprintf(" id %d (line %d): %s;", r.Record.ID, r.Record.Version.Line, r.Reason)
		if b.Len()+len(item) > maxReasonBytes {
			b.WriteString(" ...")
			break
		}
		b.WriteString(item)
	}
	return b.String()
}
