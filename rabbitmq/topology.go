package rabbitmq

import (
	"errors"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
)

// migratingSuffix names the queue MigrateQueues parks messages in.
const migratingSuffix = ".migrating"

// maxQueueName keeps "<queue>.dlq.migrating" within AMQP's 255-byte short
// string.
const maxQueueName = 255 - len(".dlq") - len(migratingSuffix)

// DLXName is the dead-letter exchange of queue.
func DLXName(queue string) string { return queue + ".dlx" }

// DLQName is the dead-letter queue of queue, and also the routing key that
// binds it to DLXName(queue).
func DLQName(queue string) string { return queue + ".dlq" }

// Queue types.
const (
	// Quorum queues are replicated over the nodes of a cluster (Raft) and
	// count deliveries, so a message that keeps killing its consumers is
	// dead-lettered after DeliveryLimit attempts.
	Quorum = "quorum"
	// Classic queues live on one node and count nothing: for a single
	// broker, or for queues declared before quorum was the default.
	Classic = "classic"
)

// Defaults of Topology.
const (
	DefaultDeliveryLimit = 20
	DefaultDLQTTL        = 7 * 24 * time.Hour
	DefaultDLQMaxLength  = 1_000_000
)

// Topology is how Declare declares a queue and its dead-letter queue. The
// zero value is the default: quorum queues, a delivery limit of 20, and a
// dead-letter queue that keeps messages for 7 days and at most 1,000,000
// of them. Everyone who declares a queue must use the same Topology, or
// the second declaration is refused (PRECONDITION_FAILED).
type Topology struct {
	// Type is Quorum (or "") or Classic.
	Type string
	// DeliveryLimit is, for a quorum queue, how many times a message may
	// be delivered and returned (requeued, or left unacked by a consumer
	// that died) before the broker dead-letters it with reason
	// delivery_limit. Classic queues have no limit.
	DeliveryLimit int
	// DLQTTL is how long a dead letter is kept; the broker then drops it.
	DLQTTL time.Duration
	// DLQMaxLength is how many dead letters are kept; beyond it the broker
	// drops the oldest.
	DLQMaxLength int
}

func (t Topology) withDefaults() Topology {
	if t.Type == "" {
		t.Type = Quorum
	}
	if t.DeliveryLimit <= 0 {
		t.DeliveryLimit = DefaultDeliveryLimit
	}
	if t.DLQTTL <= 0 {
		t.DLQTTL = DefaultDLQTTL
	}
	if t.DLQMaxLength <= 0 {
		t.DLQMaxLength = DefaultDLQMaxLength
	}
	return t
}

// Validate reports a Topology that no broker accepts.
func (t Topology) Validate() error {
	switch {
	case t.Type != "" && t.Type != Quorum && t.Type != Classic:
		return viswals.Errorf(viswals.EINVALID, "queue type %q is neither %s nor %s", t.Type, Quorum, Classic)
	case t.DLQTTL > 0 && t.DLQTTL < time.Millisecond:
		return viswals.Errorf(viswals.EINVALID, "dead-letter TTL %s is below the broker's resolution of 1ms", t.DLQTTL)
	}
	return nil
}

// queueArgs are the arguments of the work queue.
func (t Topology) queueArgs(queue string) amqp.Table {
	args := amqp.Table{
		"x-dead-letter-exchange":    DLXName(queue),
		"x-dead-letter-routing-key": DLQName(queue),
	}
	if t.Type == Quorum {
		args["x-queue-type"] = Quorum
		args["x-delivery-limit"] = int64(t.DeliveryLimit)
		// Dead-lettering stays at most once (the broker's default): the
		// at-least-once strategy needs the reject-publish overflow, whose
		// behaviour across a leader change is not tested here.
	}
	return args
}

// dlqArgs are the arguments of the dead-letter queue: its retention.
func (t Topology) dlqArgs() amqp.Table {
	args := amqp.Table{
		"x-message-ttl": t.DLQTTL.Milliseconds(),
		"x-max-length":  int64(t.DLQMaxLength),
	}
	if t.Type == Quorum {
		args["x-queue-type"] = Quorum
	}
	// A classic queue is declared without x-queue-type, as the broker's
	// default, so that a queue created by a tool that did not give it
	// either still passes the equivalence check.
	return args
}

// Declare declares the topology of queue: a durable direct exchange
// DLXName(queue), a durable queue DLQName(queue) bound to it with routing
// key DLQName(queue), and the durable queue itself, whose rejected or
// expired messages, and (quorum) those delivered too often, the broker
// routes to that exchange. Producer, consumer and the dead-letter
// commands all call it with the same arguments, so whichever starts first
// creates the topology and the others find it identical.
//
// Declaring a queue that exists with other arguments (a classic queue
// where a quorum queue is configured, other retention settings) fails
// with EINVALID, saying how to migrate it; the broker closes ch.
func Declare(ch *amqp.Channel, queue string, t Topology) error {
	if err := validQueueName(queue); err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return err
	}
	t = t.withDefaults()
	dlx, dlq := DLXName(queue), DLQName(queue)
	if err := ch.ExchangeDeclare(dlx, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q: %w", dlx, classify(err))
	}
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, t.dlqArgs()); err != nil {
		return declareError(dlq, t, err)
	}
	if err := ch.QueueBind(dlq, dlq, dlx, false, nil); err != nil {
		return fmt.Errorf("bind queue %q to %q: %w", dlq, dlx, classify(err))
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, t.queueArgs(queue)); err != nil {
		return declareError(queue, t, err)
	}
	return nil
}

// ErrQueueMismatch marks a queue that exists with other arguments than
// the configured Topology gives it.
var ErrQueueMismatch = errors.New("queue exists with other arguments")

// declareError explains a refused queue declaration. A queue's type and
// arguments cannot be changed in place, so the message says how to move
// its messages into a queue declared as configured.
func declareError(queue string, t Topology, err error) error {
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		return fmt.Errorf("declare queue %q: %w", queue, classify(err))
	}
	what := fmt.Sprintf("exists with other arguments than configured (a %s queue with dead-letter retention; it may come from an earlier version, which declared classic queues without retention)", t.Type)
	if strings.Contains(ae.Reason, "x-queue-type") {
		what = fmt.Sprintf("exists and is not a %s queue", t.Type)
	}
	return &codedError{code: viswals.EINVALID, err: fmt.Errorf(
		"%w: queue %q %s (%w); a queue cannot be changed in place: stop the producers and consumers and run "+
			"`consumer queue migrate`, which moves its messages into a queue declared as configured, "+
			"or set RABBITMQ_QUEUE_TYPE and the RABBITMQ_DLQ_* settings to what the queue was declared with",
		ErrQueueMismatch, queue, what, ae)}
}

func validQueueName(queue string) error {
	switch {
	case queue == "":
		return viswals.Errorf(viswals.EINVALID, "queue name is empty")
	case len(queue) > maxQueueName:
		return viswals.Errorf(viswals.EINVALID, "queue name is longer than %d bytes", maxQueueName)
	}
	return nil
}
