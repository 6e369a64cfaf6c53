// Package rabbitmq carries batches of users from the producer to the
// consumer through RabbitMQ, without losing any.
//
// Topology (Declare): a durable queue whose dead letters go through the
// direct exchange "<queue>.dlx" to the durable queue "<queue>.dlq", both
// quorum queues by default (classic on request), the work queue with a
// delivery limit and the dead-letter queue with a TTL and a length limit.
// Producer, consumer and the dead-letter commands declare it identically,
// so any of them may start first; MigrateQueues replaces queues declared
// otherwise (classic queues of earlier versions), keeping their messages.
//
// Messages (Encode, Decode): one body carries a batch of users, as gob
// (the default) or JSON (for producers not written in Go).
//
// Delivery is at least once, end to end:
//   - the Publisher sends persistent messages with publisher confirms and
//     keeps every message until the broker confirms it, republishing it
//     after a nack or a lost connection; Flush reports whether all were
//     confirmed;
//   - the Consumer acks a message only when its handler says so, after the
//     work is durable; a lost connection leaves unacked messages to the
//     broker, which delivers them again;
//   - a message that can never be processed is moved to "<queue>.dlq" with
//     its reason in the x-death-reason header (published with a confirm
//     before the original is acked), never requeued forever and never
//     dropped; ListDeadLetters and ReplayDeadLetters serve the operator.
//
// A message may therefore arrive more than once; the consumer's writes are
// idempotent, so duplicates change nothing.
//
// Logs carry queue names, counts, reasons and message ids, never bodies:
// they hold emails.
package rabbitmq
