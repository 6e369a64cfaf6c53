package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/wait"
)

// Headers of the dead-letter path.
const (
	HeaderDeathReason    = "x-death-reason"     // why the consumer dead-lettered the message
	HeaderDeathReasons   = "x-death-reasons"    // of a message of several records: why, one string per record
	HeaderOriginalQueue  = "x-original-queue"   // the queue it was taken from
	HeaderDeadLetteredAt = "x-dead-lettered-at" // when, RFC 3339
	HeaderReplayedAt     = "x-replayed-at"      // when ReplayDeadLetters moved it back, RFC 3339
)

// maxReasonBytes bounds one reason (the x-death-reason header, and each
// record's reason in x-death-reasons), keeping headers far below the frame
// size limit whatever an error message holds.
const maxReasonBytes = 1024

// DLQMessage describes a message in a dead-letter queue.
type DLQMessage struct {
	// Reason is the x-death-reason header; for a message the broker
	// dead-lettered by itself (rejected, expired) it is "broker: <reason>".
	Reason         string
	DeadLetteredAt time.Time // zero when unknown
	MessageID      string
	ContentType    string
	Headers        amqp.Table
	Size           int
	// Head is the start of the body (up to 64 bytes). Bodies hold personal
	// data such as emails: show it to operators, never log it.
	Head []byte
}

const headBytes = 64

// ListDeadLetters reports up to max messages (all of them if max <= 0)
// from the dead-letter queue of queue to fn, then returns them to the
// queue: it takes them with basic.get and requeues them with one
// basic.nack. They stay in the queue, though not necessarily in the same
// order, and a consumer of the dead-letter queue (there should be none)
// would see them redelivered. It stops at the first error of fn.
func ListDeadLetters(ctx context.Context, url, queue string, max int, fn func(DLQMessage) error) (err error) {
	conn, ch, _, err := openDLQ(url, queue, "list")
	if err != nil {
		return err
	}
	defer conn.Close()

	var last uint64 // tag of the last message taken; all are requeued at once
	defer func() {
		if last == 0 {
			return
		}
		nerr := ch.Nack(last, true, true)
		if nerr == nil {
			nerr = settled(ch, DLQName(queue))
		}
		if nerr != nil && err == nil {
			// Closing the channel requeues them anyway.
			err = fmt.Errorf("requeue listed dead letters: %w", nerr)
		}
	}()
	for n := 0; max <= 0 || n < max; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := ch.Get(DLQName(queue), false)
		if err != nil {
			return fmt.Errorf("get from %q: %w", DLQName(queue), classify(err))
		}
		if !ok {
			return nil
		}
		last = d.DeliveryTag
		if err := fn(describeDeadLetter(d)); err != nil {
			return err
		}
	}
	return nil
}

// replayBatchSize is how many dead letters ReplayDeadLetters moves per
// round of confirmations.
const replayBatchSize = 100

// ReplayDeadLetters moves up to max messages (if max <= 0, or more than
// the dead-letter queue held when it started, as many as it held then, so
// that messages a running consumer dead-letters again meanwhile are not
// replayed in a loop) from the dead-letter queue of
// queue back to queue (declared as topo), without their x-death-reason header and with
// x-replayed-at. Each is acked in the dead-letter queue only after the
// broker has confirmed its copy in queue, so a failure midway can
// duplicate a message but never lose one. It returns how many it moved.
func ReplayDeadLetters(ctx context.Context, url, queue string, topo Topology, max int) (int, error) {
	conn, ch, waiting, err := openDLQ(url, queue, "replay")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	// The target must exist, or the copies would be returned unroutable.
	if err := Declare(ch, queue, topo); err != nil {
		return 0, err
	}
	if err := ch.Confirm(false); err != nil {
		return 0, fmt.Errorf("put channel in confirm mode: %w", classify(err))
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, replayBatchSize))
	if max <= 0 || max > waiting {
		max = waiting
	}
	moved := 0
	for moved < max {
		if err := ctx.Err(); err != nil {
			return moved, err
		}
		batch, err := getBatch(ch, DLQName(queue), min(replayBatchSize, max-moved))
		if err != nil || len(batch) == 0 {
			return moved, err
		}
		now := time.Now()
		n, err := moveBatch(ctx, ch, returns, queue, batch, func(d amqp.Delivery) amqp.Publishing { return replayOf(d, now) })
		moved += n
		if err != nil {
			return moved, err
		}
	}
	return moved, settled(ch, DLQName(queue))
}

// settled returns once the acks and nacks sent on ch to queue have taken
// effect, so that whoever looks at the queue next (a replay after a
// listing) finds it as they left it. A quorum queue applies them
// asynchronously, after the channel that sent them may be gone. A
// basic.get is applied in order after them and answered only then; the
// message it may take is handed back, and waited for, the same way.
func settled(ch *amqp.Channel, queue string) error {
	d, ok, err := ch.Get(queue, false)
	if err != nil || !ok {
		return classify(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return classify(err)
	}
	if err := d.Nack(false, true); err != nil {
		return classify(err)
	}
	// Bounded: a message that expires meanwhile never comes back, and
	// the channel's close hands it back anyway.
	_ = wait.Poll(5*time.Second, "the message to be back in "+queue, func() (bool, string, error) {
		back, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err != nil || back.Messages > q.Messages, "", nil
	})
	return nil
}

// openDLQ connects and checks that the dead-letter queue of queue exists,
// without creating it (a mistyped queue name must not create a topology).
func openDLQ(url, queue, what string) (*amqp.Connection, *amqp.Channel, int, error) {
	if err := validQueueName(queue); err != nil {
		return nil, nil, 0, err
	}
	conn, err := dialNodes(url, "viswals dlq "+what+" "+queue)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, 0, fmt.Errorf("open channel: %w", classify(err))
	}
	q, err := ch.QueueDeclarePassive(DLQName(queue), true, false, false, false, nil)
	if err != nil {
		conn.Close()
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil, nil, 0, viswals.Errorf(viswals.ENOTFOUND, "dead-letter queue %q does not exist", DLQName(queue))
		}
		return nil, nil, 0, fmt.Errorf("inspect %q: %w", DLQName(queue), classify(err))
	}
	return conn, ch, q.Messages, nil
}

func getBatch(ch *amqp.Channel, queue string, n int) ([]amqp.Delivery, error) {
	var batch []amqp.Delivery
	for range n {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return nil, fmt.Errorf("get from %q: %w", queue, classify(err))
		}
		if !ok {
			break
		}
		batch = append(batch, d)
	}
	return batch, nil
}

// moveBatch publishes a copy (made by copyOf) of each message of batch to
// queue, waits for their confirmations, then acks the originals that were
// confirmed and requeues the rest. It returns how many it moved.
func moveBatch(ctx context.Context, ch *amqp.Channel, returns <-chan amqp.Return, queue string, batch []amqp.Delivery, copyOf func(amqp.Delivery) amqp.Publishing) (int, error) {
	requeueAll := func() { _ = ch.Nack(batch[len(batch)-1].DeliveryTag, true, true) }
	confirms := make([]*amqp.DeferredConfirmation, len(batch))
	for i, d := range batch {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, copyOf(d))
		if err != nil {
			requeueAll()
			return 0, fmt.Errorf("publish to %q: %w", queue, classify(err))
		}
		confirms[i] = dc
	}
	acked := 0
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			requeueAll()
			return 0, err
		}
		if ok {
			acked++
		}
	}
	// Returns come before the confirmations of their messages, so any
	// are in the buffer by now. Which message came back is not known:
	// keep the whole batch where it was (its routed copies become
	// duplicates, which consumers tolerate).
	if n := len(returns); n > 0 {
		for range n {
			<-returns
		}
		requeueAll()
		return 0, unavailablef("%d moved messages could not be routed to %q", n, queue)
	}
	if acked == len(batch) {
		// One ack for the batch: a quorum queue's client holds back
		// settlements beyond a few pending ones and loses them when the
		// channel closes right after, which would put them back.
		if err := ch.Ack(batch[len(batch)-1].DeliveryTag, true); err != nil {
			return 0, fmt.Errorf("settle moved messages: %w", classify(err))
		}
		return acked, nil
	}
	moved := 0
	for i, d := range batch {
		var err error
		if ok, _ := confirms[i].WaitContext(ctx); ok {
			err = d.Ack(false)
			moved++
		} else {
			err = d.Nack(false, true)
		}
		if err != nil {
			return moved, fmt.Errorf("settle moved message: %w", classify(err))
		}
	}
	return moved, unavailablef("the broker did not confirm %d moved messages; they stay where they were", len(batch)-moved)
}

// deadLetterOf is the dead letter of delivery d: the same body and
// properties, its headers plus ours.
func deadLetterOf(d amqp.Delivery, queue, reason string) amqp.Publishing {
	return copyOf(d, deadLetterHeaders(d.Headers, queue, reason, time.Now()), d.Body)
}

// partOf is the dead letter of part p of delivery d: d's properties and
// headers (plus ours) with p's body.
func partOf(d amqp.Delivery, queue string, p Part) amqp.Publishing {
	h := deadLetterHeaders(d.Headers, queue, p.Reason, time.Now())
	if len(p.Reasons) > 0 {
		rs := make([]any, len(p.Reasons))
		for i, r := range p.Reasons {
			rs[i] = truncateUTF8(r, maxReasonBytes)
		}
		h[HeaderDeathReasons] = rs
	}
	// The delivery's signature is of its body, not of this one.
	delete(h, HeaderSignature)
	maps.Copy(h, p.Headers)
	return copyOf(d, h, p.Body)
}

// copyOf is a persistent message with d's properties and the given
// headers and body.
func copyOf(d amqp.Delivery, headers amqp.Table, body []byte) amqp.Publishing {
	return amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		CorrelationId:   d.CorrelationId,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            body,
	}
}

func deadLetterHeaders(orig amqp.Table, queue, reason string, now time.Time) amqp.Table {
	h := make(amqp.Table, len(orig)+3)
	maps.Copy(h, orig)
	h[HeaderDeathReason] = truncateUTF8(reason, maxReasonBytes)
	h[HeaderOriginalQueue] = queue
	h[HeaderDeadLetteredAt] = now.UTC().Format(time.RFC3339)
	return h
}

// replayOf is the copy of dead letter d sent back to its queue.
func replayOf(d amqp.Delivery, now time.Time) amqp.Publishing {
	h := maps.Clone(d.Headers)
	if h == nil {
		h = amqp.Table{}
	}
	delete(h, HeaderDeathReason)
	delete(h, HeaderDeathReasons)
	h[HeaderReplayedAt] = now.UTC().Format(time.RFC3339)
	return copyOf(d, h, d.Body)
}

func describeDeadLetter(d amqp.Delivery) DLQMessage {
	m := DLQMessage{
		MessageID:   d.MessageId,
		ContentType: d.ContentType,
		Headers:     d.Headers,
		Size:        len(d.Body),
		Head:        d.Body[:min(len(d.Body), headBytes)],
	}
	if r, ok := d.Headers[HeaderDeathReason].(string); ok {
		m.Reason = r
	} else if r := brokerDeathReason(d.Headers); r != "" {
		m.Reason = "broker: " + r
	}
	if at, ok := d.Headers[HeaderDeadLetteredAt].(string); ok {
		m.DeadLetteredAt, _ = time.Parse(time.RFC3339, at)
	}
	return m
}

// brokerDeathReason reads the reason of the latest entry of the x-death
// header the broker adds when it dead-letters a message itself.
func brokerDeathReason(h amqp.Table) string {
	deaths, ok := h["x-death"].([]any)
	if !ok || len(deaths) == 0 {
		return ""
	}
	latest, ok := deaths[0].(amqp.Table)
	if !ok {
		return ""
	}
	r, _ := latest["reason"].(string)
	return r
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
