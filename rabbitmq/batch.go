package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
)

// Ingester stores the records of one message. It returns the records it
// refused (by position, with reasons) and an error only when the batch
// could not be settled, through no fault of its own (a store outage,
// shutdown): the message is then handed back to be delivered again.
// With a receipt (nil: the message names no load) it counts the rows into
// their load, once per message. RecordSummary records a load's summary;
// it fails only as Ingest does.
type Ingester interface {
	IngestCounted(ctx context.Context, recs []viswals.Record, redelivered bool, rc *viswals.Receipt) ([]viswals.Refusal, error)
	// IngestSealed is IngestCounted for records whose emails are sealed
	// already (a content type marked by WithSealedEmails).
	IngestSealed(ctx context.Context, recs []viswals.Record, redelivered bool, rc *viswals.Receipt) ([]viswals.Refusal, error)
	RecordSummary(ctx context.Context, sum viswals.LoadSummary) error
}

// BatchHandler is the consumer's message handler for batches of users:
// decode, assign versions to records sent without one, ingest, and
// dead-letter what cannot be stored. A message that cannot be decoded is
// dead-lettered as it is; when it names its load and its number of rows
// (HeaderRows), those rows are first counted as dead-lettered in the load.
// Records the ingester refused are dead-lettered whole, as new messages
// in the delivery's content type with a reason per record, before the
// delivery is acked; the rest of the batch is committed by then. Dead
// letters whose rows were counted carry HeaderDeadLetterKey.
func BatchHandler(in Ingester, log *slog.Logger) Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, d Delivery) Outcome {
		if isSummary(d) {
			return handleSummary(ctx, in, d, log)
		}
		rc := receiptOf(d)
		recs, err := Decode(d.ContentType, d.Body)
		if err != nil {
			log.Warn("dead-lettering undecodable message", "message_id", d.MessageID, "content_type", d.ContentType, "bytes", len(d.Body), "err", err)
			return undecodable(ctx, in, d, rc, "decode: "+err.Error(), log)
		}
		assignVersions(recs, time.Now())

		ingest := in.IngestCounted
		if EmailsSealed(d.ContentType) {
			ingest = in.IngestSealed
		}
		refused, err := ingest(ctx, recs, d.Redelivered, rc)
		if err != nil {
			log.Warn("requeueing message", "message_id", d.MessageID, "err", err)
			return Requeue{}
		}
		if len(refused) == 0 {
			return Ack{}
		}
		log.Warn("dead-lettering refused users", "message_id", d.MessageID, "refused", len(refused), "users", len(recs))
		parts, err := refusedParts(d.ContentType, recs, refused, rc)
		if err != nil {
			// The records decoded from this content type always encode
			// back to it; should that ever fail, the whole message goes
			// (its good users, committed, replay as no-ops).
			return DeadLetter{Reason: fmt.Sprintf("%d of %d users refused; re-encoding them failed: %v", len(refused), len(recs), err)}
		}
		return DeadLetterParts{Parts: parts}
	}
}

// assignVersions gives records without a version (from producers that do
// not send one) the arrival time as load and their position as line, so
// later messages win over earlier ones. A refused record is dead-lettered
// with the version it was given, so a replay cannot overwrite a write that
// arrived after it.
func assignVersions(recs []viswals.Record, arrival time.Time) {
	for i := range recs {
		if recs[i].Version == (viswals.Version{}) {
			recs[i].Version = viswals.Version{Load: arrival.UnixNano(), Line: int64(i + 1)}
		}
	}
}

// maxPartReasonsBytes bounds the per-record reasons of one dead letter, so
// that its headers stay far below the broker's frame size: refusals
// beyond it go into further dead letters.
const maxPartReasonsBytes = 32 << 10

// undecodable dead-letters d, which cannot be decoded, after counting its
// rows as dead-lettered in their load when it names both (rc and
// HeaderRows); a store that cannot count them now hands d back.
func undecodable(ctx context.Context, in Ingester, d Delivery, rc *viswals.Receipt, reason string, log *slog.Logger) Outcome {
	out := DeadLetter{Reason: reason}
	rows, ok := rowsOf(d)
	if rc == nil || !ok {
		return out
	}
	rc.Refused = rows
	if _, err := in.IngestCounted(ctx, nil, d.Redelivered, rc); err != nil {
		log.Warn("requeueing message", "message_id", d.MessageID, "err", err)
		return Requeue{}
	}
	out.Headers = amqp.Table{HeaderDeadLetterKey: deadLetterKey(rc.Message, 0)}
	return out
}

// refusedParts encodes the refused records of recs into dead letters,
// each with one reason per record it holds, and its number of records;
// with rc (the receipt they were counted under), the key a replay of each
// is counted under.
func refusedParts(contentType string, recs []viswals.Record, refused []viswals.Refusal, rc *viswals.Receipt) ([]Part, error) {
	var parts []Part
	var batch []viswals.Record
	var reasons []string
	size := 0
	flush := func() error {
		body, err := Encode(contentType, batch)
		if err != nil {
			return err
		}
		h := amqp.Table{HeaderRows: int64(len(batch))}
		if rc != nil {
			h[HeaderDeadLetterKey] = deadLetterKey(rc.Message, len(parts))
		}
		parts = append(parts, Part{
			Body:    body,
			Reason:  fmt.Sprintf("%d of %d users refused: %s", len(batch), len(recs), reasons[0]),
			Reasons: reasons,
			Headers: h,
		})
		batch, reasons, size = nil, nil, 0
		return nil
	}
	for _, r := range refused {
		rec := recs[r.Index]
		reason := truncateUTF8(fmt.Sprintf("id %d (line %d): %s", rec.ID, rec.Version.Line, r.Reason), maxReasonBytes)
		if size+len(reason) > maxPartReasonsBytes {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		batch = append(batch, rec)
		reasons = append(reasons, reason)
		size += len(reason)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return parts, nil
}

// handleSummary records a load's summary (see LoadsExchange).
func handleSummary(ctx context.Context, in Ingester, d Delivery, log *slog.Logger) Outcome {
	sum, err := decodeSummary(d)
	if err != nil {
		log.Warn("dead-lettering a malformed load summary", "message_id", d.MessageID, "err", err)
		return DeadLetter{Reason: err.Error()}
	}
	if err := in.RecordSummary(ctx, sum); err != nil {
		log.Warn("requeueing load summary", "message_id", d.MessageID, "err", err)
		return Requeue{}
	}
	return Ack{}
}
