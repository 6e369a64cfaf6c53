package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
)

// Migration reports what MigrateQueues did to one queue.
type Migration struct {
	Queue string
	// Redeclared is true when the queue existed with other arguments and
	// was declared again as configured.
	Redeclared bool
	// Moved counts the messages that went through the parking queue.
	Moved int
}

// MigrateQueues brings queue and its dead-letter queue to topo: each that
// exists with other arguments (a classic queue where topo says quorum,
// other retention settings) is replaced by one declared as configured,
// with its messages. A queue's type and arguments cannot be changed in
// place, so its messages are first moved to "<name>.migrating" (a queue
// of topo's type), the old queue is deleted, the new one declared, and
// the messages moved back. Every move acks a message only after the
// broker has confirmed its copy, so an interruption can duplicate
// messages (which the consumer tolerates) but never lose one; running it
// again finishes the job. Queues already as configured are left alone.
//
// Nothing may use the queues meanwhile: it refuses to start while a
// queue has consumers, and producers must be stopped by the operator (a
// message published to a queue while it is being replaced is lost).
func MigrateQueues(ctx context.Context, url, queue string, topo Topology) ([]Migration, error) {
	if err := validQueueName(queue); err != nil {
		return nil, err
	}
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	topo = topo.withDefaults()
	conn, err := dialNodes(url, "viswals queue migrate "+queue)
	if err != nil {
		return nil, fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()

	dlx, dlq := DLXName(queue), DLQName(queue)
	if err := withChannel(conn, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(dlx, amqp.ExchangeDirect, true, false, false, false, nil)
	}); err != nil {
		return nil, fmt.Errorf("declare exchange %q: %w", dlx, classify(err))
	}
	parkArgs := amqp.Table{}
	if topo.Type == Quorum {
		parkArgs["x-queue-type"] = Quorum
	}
	// The dead-letter queue first: the work queue dead-letters into it.
	var done []Migration
	for _, q := range []struct {
		name string
		args amqp.Table
		bind func(*amqp.Channel) error
	}{
		{dlq, topo.dlqArgs(), func(ch *amqp.Channel) error { return ch.QueueBind(dlq, dlq, dlx, false, nil) }},
		{queue, topo.queueArgs(queue), nil},
	} {
		m, err := migrateQueue(ctx, conn, q.name, q.args, parkArgs, q.bind)
		if err != nil {
			return done, fmt.Errorf("migrate queue %q: %w", q.name, err)
		}
		done = append(done, m)
	}
	return done, nil
}

func migrateQueue(ctx context.Context, conn *amqp.Connection, name string, args, parkArgs amqp.Table, bind func(*amqp.Channel) error) (Migration, error) {
	m := Migration{Queue: name}
	park := name + migratingSuffix
	asConfigured, err := declaresAs(conn, name, args)
	if err != nil {
		return m, err
	}
	parked, err := queueExists(conn, park)
	if err != nil {
		return m, err
	}
	if !asConfigured {
		if err := noConsumers(conn, name); err != nil {
			return m, err
		}
		if err := withChannel(conn, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(park, true, false, false, false, parkArgs)
			return err
		}); err != nil {
			return m, fmt.Errorf("declare %q: %w", park, classify(err))
		}
		parked = true
		if err := emptyAndDelete(ctx, conn, name, park); err != nil {
			return m, err
		}
		if err := withChannel(conn, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(name, true, false, false, false, args)
			return err
		}); err != nil {
			return m, fmt.Errorf("declare %q as configured: %w", name, classify(err))
		}
		m.Redeclared = true
	}
	if bind != nil {
		if err := withChannel(conn, bind); err != nil {
			return m, fmt.Errorf("bind %q: %w", name, classify(err))
		}
	}
	if !parked {
		return m, nil
	}
	// Back from the parking queue (also when an earlier run stopped
	// after declaring the new queue).
	if m.Moved, err = moveAll(ctx, conn, park, name); err != nil {
		return m, err
	}
	if err := deleteIfEmpty(conn, park); err != nil {
		return m, fmt.Errorf("delete %q: %w", park, classify(err))
	}
	return m, nil
}

var errNotEmpty = errors.New("queue not empty")

// deleteIfEmpty deletes queue unless it holds messages. The if-empty
// flag of queue.delete would do it in one step, but quorum queues do not
// implement it (and the broker closes the connection), so the count is
// checked first: nothing publishes to the queues while they are migrated.
func deleteIfEmpty(conn *amqp.Connection, queue string) error {
	return withChannel(conn, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			return err
		}
		if q.Messages > 0 {
			return errNotEmpty
		}
		_, err = ch.QueueDelete(queue, false, false, false)
		return err
	})
}

// emptyAndDelete moves every message of name to park, then deletes name
// if it is still empty; a message that arrived meanwhile is moved too.
func emptyAndDelete(ctx context.Context, conn *amqp.Connection, name, park string) error {
	for range 5 {
		if _, err := moveAll(ctx, conn, name, park); err != nil {
			return err
		}
		err := deleteIfEmpty(conn, name)
		if errors.Is(err, errNotEmpty) {
			continue // something was published meanwhile
		}
		if err != nil {
			return fmt.Errorf("delete %q: %w", name, classify(err))
		}
		return nil
	}
	return viswals.Errorf(viswals.EINVALID, "queue %q keeps receiving messages: stop the producers before migrating", name)
}

// moveAll moves every message of from to to, with confirms, and returns
// how many it moved.
func moveAll(ctx context.Context, conn *amqp.Connection, from, to string) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, classify(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return 0, fmt.Errorf("put channel in confirm mode: %w", classify(err))
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, replayBatchSize))
	moved := 0
	for {
		if err := ctx.Err(); err != nil {
			return moved, err
		}
		batch, err := getBatch(ch, from, replayBatchSize)
		if err != nil {
			return moved, err
		}
		if len(batch) == 0 {
			return moved, settled(ch, from)
		}
		n, err := moveBatch(ctx, ch, returns, to, batch, func(d amqp.Delivery) amqp.Publishing { return copyOf(d, d.Headers, d.Body) })
		moved += n
		if err != nil {
			return moved, fmt.Errorf("move messages from %q to %q: %w", from, to, err)
		}
	}
}

// declaresAs reports whether name is declared with args: true when it
// did not exist (it does now) or has them, false when it has others.
func declaresAs(conn *amqp.Connection, name string, args amqp.Table) (bool, error) {
	err := withChannel(conn, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(name, true, false, false, false, args)
		return err
	})
	var ae *amqp.Error
	switch {
	case errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("declare %q: %w", name, classify(err))
	}
	return true, nil
}

func queueExists(conn *amqp.Connection, name string) (bool, error) {
	err := withChannel(conn, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		return err
	})
	var ae *amqp.Error
	switch {
	case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("inspect %q: %w", name, classify(err))
	}
	return true, nil
}

func noConsumers(conn *amqp.Connection, name string) error {
	var consumers int
	if err := withChannel(conn, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		consumers = q.Consumers
		return err
	}); err != nil {
		return fmt.Errorf("inspect %q: %w", name, classify(err))
	}
	if consumers > 0 {
		return viswals.Errorf(viswals.EINVALID, "queue %q has %d consumers: stop the consumers (and producers) before migrating", name, consumers)
	}
	return nil
}

// withChannel runs op on a channel of its own: a refused operation
// closes its channel.
func withChannel(conn *amqp.Connection, op func(*amqp.Channel) error) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	err = op(ch)
	if err == nil {
		ch.Close()
	}
	return err
}
