package rabbitmq

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
)

// maxQueueName keeps "<queue>.dlq" within AMQP's 255-byte short string.
const maxQueueName = 255 - len(".dlq")

// DLXName is the dead-letter exchange of queue.
func DLXName(queue string) string { return queue + ".dlx" }

// DLQName is the dead-letter queue of queue, and also the routing key that
// binds it to DLXName(queue).
func DLQName(queue string) string { return queue + ".dlq" }

// Declare declares the topology of queue: a durable direct exchange
// DLXName(queue), a durable queue DLQName(queue) bound to it with routing
// key DLQName(queue), and the durable queue itself, whose rejected or
// expired messages the broker routes to that exchange. Producer, consumer
// and the dead-letter commands all call it with the same arguments, so
// whichever starts first creates the topology and the others find it
// identical. Declaring something that exists with other arguments fails
// with PRECONDITION_FAILED (and closes ch).
func Declare(ch *amqp.Channel, queue string) error {
	if err := validQueueName(queue); err != nil {
		return err
	}
	dlx, dlq := DLXName(queue), DLQName(queue)
	if err := ch.ExchangeDeclare(dlx, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q: %w", dlx, classify(err))
	}
	// Queues are classic (the broker's default). The type is not given as
	// an x-queue-type argument, so that a queue created by a tool that did
	// not give it either still passes the equivalence check.
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue %q: %w", dlq, classify(err))
	}
	if err := ch.QueueBind(dlq, dlq, dlx, false, nil); err != nil {
		return fmt.Errorf("bind queue %q to %q: %w", dlq, dlx, classify(err))
	}
	args := amqp.Table{
		"x-dead-letter-exchange":    dlx,
		"x-dead-letter-routing-key": dlq,
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %q: %w", queue, classify(err))
	}
	return nil
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
