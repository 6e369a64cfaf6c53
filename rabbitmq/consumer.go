package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Delivery is a message given to a Handler.
type Delivery struct {
	Body        []byte
	ContentType string
	Headers     amqp.Table
	MessageID   string
	Redelivered bool // the broker delivered it before, to this or another consumer
	DeliveryTag uint64
}

// Outcome is what a Handler decides about a delivery: Ack, Requeue,
// DeadLetter or DeadLetterParts.
type Outcome interface{ outcome() }

// Ack acknowledges the delivery: it is done and leaves the queue. Return it
// only once its effects are durable.
type Ack struct{}

// Requeue hands the delivery back to the queue (basic.nack with requeue)
// for this or another consumer to take again: for shutdown and for
// failures that are not the message's fault, such as a database outage.
// It does not count against the message.
type Requeue struct{}

// DeadLetter moves the delivery to the dead-letter queue with Reason in its
// x-death-reason header: for messages that can never succeed. The consumer
// acks the original only after the broker has confirmed the dead letter.
// Headers, if any, are set on top of the delivery's.
type DeadLetter struct {
	Reason  string
	Headers amqp.Table
}

// DeadLetterParts acks the delivery after dead-lettering Parts: new
// messages in the delivery's content type, with its headers, holding the
// parts of it that can never succeed (the rest was processed). Each is
// confirmed by the broker before the ack; if one cannot be, the delivery
// is requeued (parts already dead-lettered may then be dead-lettered
// twice, which a replay applies as a no-op).
type DeadLetterParts struct{ Parts []Part }

// Part is one message of DeadLetterParts.
type Part struct {
	Body []byte
	// Reason goes into x-death-reason, Reasons (one per record, when the
	// body holds several) into x-death-reasons.
	Reason  string
	Reasons []string
	// Headers are set on top of the delivery's (a signature of Body).
	Headers amqp.Table
}

func (Ack) outcome()             {}
func (Requeue) outcome()         {}
func (DeadLetter) outcome()      {}
func (DeadLetterParts) outcome() {}

// Handler processes one delivery. Its ctx is not cancelled when Run's
// context is (work in flight must finish), only DrainTimeout later, or when
// the connection the delivery came on is lost (the broker will deliver it
// again, so the work is moot).
type Handler func(ctx context.Context, d Delivery) Outcome

// ConsumerOptions tune a Consumer. Zero values take the defaults.
type ConsumerOptions struct {
	Prefetch int // unacknowledged deliveries the broker may send ahead (default 16)
	Workers  int // handlers running at once (default 2)
	// ReconnectBackoff is the longest wait between reconnection attempts
	// (default 5s); waits start at 100ms and double, with jitter.
	ReconnectBackoff time.Duration
	// DrainTimeout is how long handlers in flight may run after Run's
	// context is cancelled before their own context is (default 10s).
	DrainTimeout time.Duration
	Logger       *slog.Logger
	// Topology is how the queue is declared (the zero value: quorum).
	Topology Topology
	// OnDeadLetter, when set, is called for every message the consumer
	// dead-letters (for metrics).
	OnDeadLetter func()
	// MaxBodyBytes bounds a delivery's body (default MaxBodyBytes): a
	// larger one is dead-lettered before the handler sees it.
	MaxBodyBytes int
}

func (o ConsumerOptions) withDefaults() ConsumerOptions {
	if o.Prefetch <= 0 {
		o.Prefetch = 16
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.ReconnectBackoff <= 0 {
		o.ReconnectBackoff = 5 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnDeadLetter == nil {
		o.OnDeadLetter = func() {}
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = MaxBodyBytes
	}
	return o
}

// Consumer consumes one queue with manual acknowledgements and a prefetch
// window, and reconnects by itself.
//
// Poison messages: the handler decides. A message it cannot ever process
// (undecodable, invalid, unknown content type) it returns as DeadLetter,
// which always removes it from the queue; failures that are not the
// message's fault it returns as Requeue, which never counts against the
// message (so an outage of a dependency never dead-letters good messages).
// Delivery.Redelivered lets a handler be stricter on a second failure. A
// handler that panics dead-letters the message with the panic as reason,
// because the panic would otherwise recur on every redelivery.
type Consumer struct {
	queue    string
	nodes    *nodes
	nodesErr error // a malformed URL list, returned by Run
	opts     ConsumerOptions
	log      *slog.Logger

	running  atomic.Bool
	mu       sync.Mutex
	cur      *session // the connected session, nil between connections
	sessions atomic.Uint64
	tcp      tcpConn
}

// NewConsumer returns a Consumer of queue at url, which may list the
// nodes of a cluster, comma-separated; Run connects to one of them.
func NewConsumer(url, queue string, opts ConsumerOptions) *Consumer {
	opts = opts.withDefaults()
	n, err := parseNodes(url)
	return &Consumer{nodes: n, nodesErr: err, queue: queue, opts: opts, log: opts.Logger.With("queue", queue)}
}

// Connected reports whether the consumer holds a live connection (for
// readiness checks).
func (c *Consumer) Connected() bool { return c.session() != nil }

// Run declares the topology and consumes the queue, calling handle on
// Workers goroutines, until ctx is cancelled. It reconnects whenever the
// connection or a channel is lost, for as long as ctx lasts; deliveries
// of a lost connection are dropped unsettled (the broker redelivers them).
// On cancellation it stops the broker's deliveries, requeues those
// prefetched but not started, lets the handlers in flight finish and
// settle, closes the connection and returns nil. It returns an error only
// for a refusal no retry can fix (credentials, permissions, a queue
// declared with other arguments).
func (c *Consumer) Run(ctx context.Context, handle Handler) error {
	if err := validQueueName(c.queue); err != nil {
		return err
	}
	if c.nodesErr != nil {
		return c.nodesErr
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("rabbitmq: consumer is already running")
	}
	defer c.running.Store(false)

	bo := newBackoff(100*time.Millisecond, c.opts.ReconnectBackoff)
	connected := false // once connected, refusals of a restarting broker are retried
	for attempt := 1; ctx.Err() == nil; attempt++ {
		s, err := c.open()
		if err != nil {
			if permanent(err) && !(connected && refusedWhileRestarting(err)) {
				return fmt.Errorf("consume queue %q: %w", c.queue, err)
			}
			wait := bo.wait()
			c.log.Warn("cannot connect to RabbitMQ; retrying", "attempt", attempt, "retry_in", wait, "err", err)
			_ = sleep(ctx, wait)
			continue
		}
		if ctx.Err() != nil { // cancelled while connecting
			s.conn.Close()
			return nil
		}
		attempt, connected = 0, true
		started := time.Now()
		err = c.serve(ctx, s, handle)
		if err == nil {
			return nil
		}
		// A session that lasted resets the backoff; one that fails at
		// once (a broker accepting and dropping connections) does not,
		// so that reconnecting never turns into a tight loop.
		if time.Since(started) > c.opts.ReconnectBackoff {
			bo.reset()
		}
		wait := bo.wait()
		c.log.Warn("lost RabbitMQ connection; reconnecting", "retry_in", wait, "err", err)
		_ = sleep(ctx, wait)
	}
	return nil
}

func (c *Consumer) session() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

func (c *Consumer) setSession(s *session) {
	c.mu.Lock()
	c.cur = s
	c.mu.Unlock()
}

// session is one connection: a channel to consume on and a confirm-mode
// channel to publish dead letters on.
type session struct {
	conn       *amqp.Connection
	node       string // host:port of the broker
	ch         *amqp.Channel
	tag        string
	deliveries <-chan amqp.Delivery
	chClosed   chan *amqp.Error

	dlMu      sync.Mutex // one dead letter at a time: see deadLetter
	dl        *amqp.Channel
	dlReturns chan amqp.Return
	dlClosed  chan *amqp.Error
}

func (c *Consumer) open() (*session, error) {
	conn, node, err := c.nodes.dial("viswals consumer "+c.queue, &c.tcp, c.log)
	if err != nil {
		return nil, err
	}
	s := &session{conn: conn, node: node, tag: consumerTag()}
	if err := s.setup(c.queue, c.opts.Topology, c.opts.Prefetch); err != nil {
		conn.Close()
		return nil, classify(err)
	}
	c.sessions.Add(1)
	return s, nil
}

func (s *session) setup(queue string, topo Topology, prefetch int) error {
	var err error
	if s.ch, err = s.conn.Channel(); err != nil {
		return err
	}
	if err := Declare(s.ch, queue, topo); err != nil {
		return err
	}
	if err := s.ch.Qos(prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	if s.dl, err = s.conn.Channel(); err != nil {
		return err
	}
	if err := s.dl.Confirm(false); err != nil {
		return fmt.Errorf("put dead-letter channel in confirm mode: %w", err)
	}
	s.dlReturns = s.dl.NotifyReturn(make(chan amqp.Return, 1))
	s.chClosed = s.ch.NotifyClose(make(chan *amqp.Error, 1))
	s.dlClosed = s.dl.NotifyClose(make(chan *amqp.Error, 1))
	s.deliveries, err = s.ch.Consume(queue, s.tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	return nil
}

// serve runs the workers of one session until ctx is cancelled (then it
// drains and returns nil) or the session is lost (then it returns why).
func (c *Consumer) serve(ctx context.Context, s *session, handle Handler) error {
	defer s.conn.Close()
	c.setSession(s)
	defer c.setSession(nil)
	c.log.Info("consuming", "node", s.node, "prefetch", c.opts.Prefetch, "workers", c.opts.Workers)

	// Handlers get a context of their own: shutdown must not abort work
	// in flight, only bound it.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() { c.work(ctx, hctx, s, handle) })
	}
	workersDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(workersDone)
	}()

	select {
	case <-ctx.Done():
		c.log.Info("stopping: finishing deliveries in flight", "drain_timeout", c.opts.DrainTimeout)
		t := time.AfterFunc(c.opts.DrainTimeout, hcancel)
		defer t.Stop()
		// After cancel-ok the broker sends nothing more; the deliveries
		// already prefetched still come out of the channel, and the
		// workers requeue them since ctx is done.
		if err := s.ch.Cancel(s.tag, false); err != nil {
			c.log.Warn("cancelling the consumer failed", "err", err)
		}
		<-workersDone
		c.log.Info("stopped")
		return nil
	case err := <-s.chClosed:
		hcancel()
		<-workersDone
		return fmt.Errorf("channel closed: %w", closeErr(err))
	case err := <-s.dlClosed:
		hcancel()
		<-workersDone
		return fmt.Errorf("dead-letter channel closed: %w", closeErr(err))
	case <-workersDone:
		// The deliveries stopped without a close: the broker cancelled
		// the consumer (the queue was deleted). Reconnecting re-declares.
		return errors.New("the broker cancelled the consumer")
	}
}

func closeErr(err *amqp.Error) error {
	if err == nil {
		return amqp.ErrClosed
	}
	return err
}

func (c *Consumer) work(ctx, hctx context.Context, s *session, handle Handler) {
	for d := range s.deliveries {
		if ctx.Err() != nil {
			// Shutting down: give prefetched deliveries straight back.
			c.settle(hctx, s, d, Requeue{})
			continue
		}
		c.settle(hctx, s, d, c.call(hctx, handle, d))
	}
}

// call runs the handler, turning a panic into a dead letter: a panic
// on a message would recur on every redelivery of it.
func (c *Consumer) call(ctx context.Context, handle Handler, d amqp.Delivery) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("handler panicked; dead-lettering the message", "message_id", d.MessageId, "panic", p, "stack", string(debug.Stack()))
			out = DeadLetter{Reason: fmt.Sprintf("handler panicked: %v", p)}
		}
	}()
	// The client library has read the whole body by now: only the
	// broker's max_message_size keeps a larger one off this process. This
	// check keeps it from the handler (decoding would cost more again).
	if len(d.Body) > c.opts.MaxBodyBytes {
		c.log.Warn("dead-lettering an oversized message unread", "message_id", d.MessageId, "bytes", len(d.Body), "limit", c.opts.MaxBodyBytes)
		return DeadLetter{Reason: fmt.Sprintf("oversized: body of %d bytes exceeds the limit of %d; not read", len(d.Body), c.opts.MaxBodyBytes)}
	}
	out = handle(ctx, Delivery{
		Body:        d.Body,
		ContentType: d.ContentType,
		Headers:     d.Headers,
		MessageID:   d.MessageId,
		Redelivered: d.Redelivered,
		DeliveryTag: d.DeliveryTag,
	})
	if out == nil {
		out = DeadLetter{Reason: "handler returned no outcome"}
	}
	return out
}

func (c *Consumer) settle(ctx context.Context, s *session, d amqp.Delivery, out Outcome) {
	var err error
	switch o := out.(type) {
	case Ack:
		err = d.Ack(false)
	case Requeue:
		err = d.Nack(false, true)
	case DeadLetter:
		pub := deadLetterOf(d, c.queue, o.Reason)
		maps.Copy(pub.Headers, o.Headers)
		err = c.deadLetter(ctx, s, d, []amqp.Publishing{pub})
	case DeadLetterParts:
		pubs := make([]amqp.Publishing, len(o.Parts))
		for i, p := range o.Parts {
			pubs[i] = partOf(d, c.queue, p)
		}
		err = c.deadLetter(ctx, s, d, pubs)
	}
	if err != nil {
		// The channel is gone: the broker redelivers the message.
		c.log.Debug("settling a delivery failed; the broker will redeliver it", "delivery_tag", d.DeliveryTag, "err", err)
	}
}

// deadLetter publishes pubs to the dead-letter queue, then acks d; if one
// cannot be published it requeues d instead.
func (c *Consumer) deadLetter(ctx context.Context, s *session, d amqp.Delivery, pubs []amqp.Publishing) error {
	for _, pub := range pubs {
		reason, _ := pub.Headers[HeaderDeathReason].(string)
		if err := s.deadLetter(ctx, c.queue, pub); err != nil {
			c.log.Error("cannot dead-letter a message; requeueing it", "message_id", d.MessageId, "reason", reason, "err", err)
			// Without this pause an unreachable dead-letter queue would
			// make the message go round in a tight loop.
			_ = sleep(ctx, time.Second)
			return d.Nack(false, true)
		}
		c.opts.OnDeadLetter()
		c.log.Warn("message dead-lettered", "message_id", d.MessageId, "reason", reason)
	}
	return d.Ack(false)
}

// deadLetter publishes pub to the dead-letter exchange and waits for the
// broker's confirmation. It is mandatory: if the dead-letter queue is
// missing or unbound the broker returns the message instead of dropping
// it. Dead letters are published one at a time so that a basic.return can
// be matched to its message: the broker sends it before the ack, and the
// library hands it to dlReturns before it closes the confirmation, so once
// the confirmation is done a return, if any, is already in the buffer.
func (s *session) deadLetter(ctx context.Context, queue string, pub amqp.Publishing) error {
	s.dlMu.Lock()
	defer s.dlMu.Unlock()
	select {
	case <-s.dlReturns: // left by an earlier publish whose wait was abandoned
	default:
	}
	dc, err := s.dl.PublishWithDeferredConfirmWithContext(ctx, DLXName(queue), DLQName(queue), true, false, pub)
	if err != nil {
		return unavailablef("publish dead letter: %w", err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		return unavailablef("wait for the dead letter's confirmation: %w", err)
	}
	select {
	case r, ok := <-s.dlReturns:
		if ok {
			return unavailablef("dead letter returned by the broker (%d %s): is %q bound to %q?", r.ReplyCode, r.ReplyText, DLQName(queue), DLXName(queue))
		}
	default:
	}
	if !acked {
		return unavailablef("the broker did not confirm the dead letter")
	}
	return nil
}

// consumerTag is unique per session so that Cancel names only ours.
func consumerTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "viswals-" + hex.EncodeToString(b[:])
}
