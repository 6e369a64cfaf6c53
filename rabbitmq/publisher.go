package rabbitmq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
)

// Message is one message to publish.
type Message struct {
	// Body must not be modified after Publish: the publisher keeps it until
	// the broker confirms it, to republish it if needed.
	Body        []byte
	ContentType string // required: ContentTypeGob or ContentTypeJSON for batches of users
	Headers     amqp.Table
	MessageID   string // optional; lets a reader recognise a republished duplicate
}

// PublisherOptions tune a Publisher. Zero values take the defaults.
type PublisherOptions struct {
	// MaxInFlight bounds the messages published but not yet confirmed
	// (default 64). Their bodies are kept for republishing, so this bounds
	// the publisher's memory; Publish blocks while the window is full.
	MaxInFlight int
	// ReconnectTimeout is how long the publisher keeps trying to (re)connect
	// before Publish and Flush fail with EUNAVAILABLE (default 60s).
	ReconnectTimeout time.Duration
	Logger           *slog.Logger
	// Signer, when set, signs every message (HeaderSignature).
	Signer *Signer
	// Topology is how the queue is declared (the zero value: quorum).
	Topology Topology
}

func (o PublisherOptions) withDefaults() PublisherOptions {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.ReconnectTimeout <= 0 {
		o.ReconnectTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// PublisherStats counts what a Publisher did.
type PublisherStats struct {
	Published   uint64 // messages accepted by Publish
	Confirmed   uint64 // messages the broker confirmed (each counted once)
	Republished uint64 // sends beyond a message's first: after a nack or a reconnection
	Nacked      uint64 // negative confirmations from the broker
	Reconnects  uint64 // connections re-established after a loss
}

// Publisher publishes persistent messages to one queue (through the default
// exchange) with publisher confirms, handled as a stream: Publish returns
// once the message is sent, and confirmations are collected as they come.
// A nacked message is sent again; when the connection drops, the publisher
// reconnects with backoff, re-declares the topology and republishes every
// unconfirmed message, so a message given to Publish is either confirmed or
// reported by Flush as failed. Republishing may duplicate a message: the
// consumer must be idempotent. It is safe for concurrent use.
type Publisher struct {
	log    *slog.Logger
	signer *Signer
	reqs   chan *entry
	flush  chan flushReq

	cancel    context.CancelFunc // stops the loop
	closeOnce sync.Once
	done      chan struct{} // closed when the loop has exited
	err       error         // why it exited; read only after done is closed

	tcp          tcpConn
	cutAfterSend atomic.Bool // test hook: cut the connection right after the next send

	published, confirmed, republished, nacked, reconnects atomic.Uint64
}

// entry is a message in the publisher's custody, from Publish until its
// confirmation.
type entry struct {
	seq   uint64 // order of acceptance by Publish
	pub   amqp.Publishing
	dc    *amqp.DeferredConfirmation // its confirmation on the current channel; nil if not sent there
	sends int
}

type flushReq struct {
	upTo uint64 // every message accepted up to this seq must be confirmed
	done chan error
}

// NewPublisher connects to url (or to one of the nodes of a cluster,
// given as a comma-separated list of URLs; after a loss it reconnects to
// another), declares the topology of queue and returns
// a Publisher. It retries the connection for opts.ReconnectTimeout (or
// until ctx is done); ctx bounds only this first connection.
func NewPublisher(ctx context.Context, url, queue string, opts PublisherOptions) (*Publisher, error) {
	if err := validQueueName(queue); err != nil {
		return nil, err
	}
	nodes, err := parseNodes(url)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &Publisher{
		log:    opts.Logger.With("queue", queue),
		signer: opts.Signer,
		reqs:   make(chan *entry),
		flush:  make(chan flushReq),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	l := &publishLoop{p: p, nodes: nodes, queue: queue, opts: opts}
	if err := l.connect(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("connect publisher for queue %q: %w", queue, err)
	}
	go l.run(lctx)
	return p, nil
}

// Publish hands msg to the publisher, which sends it at once. It blocks
// while MaxInFlight messages await confirmation, or while the publisher
// reconnects. A nil error means the publisher has taken the message: it
// will be confirmed, or Flush will return an error. It fails with
// EUNAVAILABLE once the broker has been unreachable for ReconnectTimeout.
func (p *Publisher) Publish(ctx context.Context, msg Message) error {
	if msg.ContentType == "" {
		return viswals.Errorf(viswals.EINVALID, "publish: message has no content type")
	}
	if len(msg.Body) > MaxBodyBytes {
		return viswals.Errorf(viswals.EINVALID, "publish: body of %d bytes exceeds the limit of %d", len(msg.Body), MaxBodyBytes)
	}
	// Checked here because a send that fails is taken for a lost
	// connection: nothing about the message itself may make it fail.
	if err := msg.Headers.Validate(); err != nil {
		return viswals.Errorf(viswals.EINVALID, "publish: invalid headers: %v", err)
	}
	if p.signer != nil {
		h := make(amqp.Table, len(msg.Headers)+1)
		maps.Copy(h, msg.Headers)
		h[HeaderSignature] = p.signer.Sign(msg.ContentType, msg.Body)
		msg.Headers = h
	}
	e := &entry{pub: amqp.Publishing{
		Headers:      msg.Headers,
		ContentType:  msg.ContentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    msg.MessageID,
		Timestamp:    time.Now(),
		Body:         msg.Body,
	}}
	select {
	case p.reqs <- e:
		return nil
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush waits until every message accepted by Publish before the call is
// confirmed by the broker.
func (p *Publisher) Flush(ctx context.Context) error {
	f := flushReq{done: make(chan error, 1)}
	select {
	case p.flush <- f:
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-f.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the publisher and closes its connection. Messages not yet
// confirmed are abandoned: call Flush first.
func (p *Publisher) Close() error {
	p.closeOnce.Do(p.cancel)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		// The loop is stuck writing to a broker that does not read (a
		// blocked connection): cutting the socket releases it.
		p.tcp.cut()
		<-p.done
	}
	return nil
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{
		Published:   p.published.Load(),
		Confirmed:   p.confirmed.Load(),
		Republished: p.republished.Load(),
		Nacked:      p.nacked.Load(),
		Reconnects:  p.reconnects.Load(),
	}
}

var errPublisherClosed = errors.New("rabbitmq: publisher is closed")

// publishLoop is the goroutine that owns the connection, the channel and
// the messages awaiting confirmation; Publish and Flush talk to it through
// channels, so none of its state needs a lock.
type publishLoop struct {
	p     *Publisher
	nodes *nodes
	node  string // host:port of the broker of the current connection
	queue string
	opts  PublisherOptions

	conn     *amqp.Connection
	ch       *amqp.Channel // nil while disconnected
	closed   chan *amqp.Error
	inflight []*entry // sent on ch and awaiting confirmation, in send order
	unsent   []*entry // accepted but not on ch: nacked, or sent on a lost channel
	seq      uint64
	waiters  []flushReq
	// connected is set by the first connection: from then on, refusals
	// of a restarting broker are retried (see refusedWhileRestarting).
	connected bool
	// settled is when the broker last acked a message on this
	// connection, or when the connection was opened.
	settled time.Time
}

func (l *publishLoop) run(ctx context.Context) {
	defer close(l.p.done)
	for {
		if l.ch == nil {
			if err := l.connect(ctx); err != nil {
				if ctx.Err() != nil {
					err = errPublisherClosed
				}
				l.stop(err)
				return
			}
			l.p.reconnects.Add(1)
			l.p.log.Info("reconnected to RabbitMQ", "node", l.node, "republishing", len(l.unsent))
		}
		l.sendUnsent()
		if l.ch == nil {
			continue // lost again while republishing
		}
		l.answerFlushes()

		var reqs chan *entry // nil (never ready) while the window is full
		if len(l.inflight)+len(l.unsent) < l.opts.MaxInFlight {
			reqs = l.p.reqs
		}
		var oldest <-chan struct{}
		if len(l.inflight) > 0 {
			// Confirms come (nearly) in send order; waiting on the
			// oldest and then collecting every one that is done keeps
			// this to one select case.
			oldest = l.inflight[0].dc.Done()
		}
		select {
		case <-ctx.Done():
			l.stop(errPublisherClosed)
			return
		case e := <-reqs:
			l.seq++
			e.seq = l.seq
			l.p.published.Add(1)
			l.send(e)
		case <-oldest:
			nacked := l.collectConfirms()
			switch {
			case nacked == 0:
			case time.Since(l.settled) > nackReopen:
				// After its queue's leader was lost, a channel of
				// RabbitMQ 3.10 may keep nacking every publish although
				// a new leader was elected; a new connection is told
				// of it.
				l.lose(fmt.Errorf("broker nacked every message for %s", nackReopen))
			default:
				l.p.log.Warn("broker nacked messages; republishing them", "nacked", nacked)
				// A broker that refuses messages for a while (a queue
				// electing a leader) would otherwise get them back at
				// once, in a tight loop.
				_ = sleep(ctx, nackPause)
			}
		case err := <-l.closed:
			l.lose(closeErr(err))
		case f := <-l.p.flush:
			f.upTo = l.seq
			l.waiters = append(l.waiters, f)
		}
	}
}

// connect opens a connection and a confirm-mode channel and declares the
// topology, retrying with backoff for ReconnectTimeout.
func (l *publishLoop) connect(ctx context.Context) error {
	deadline := time.Now().Add(l.opts.ReconnectTimeout)
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	for attempt := 1; ; attempt++ {
		err := l.open()
		if err == nil {
			l.connected = true
			return nil
		}
		if permanent(err) && !(l.connected && refusedWhileRestarting(err)) {
			return err
		}
		wait := min(bo.wait(), time.Until(deadline))
		if wait <= 0 {
			return unavailablef("RabbitMQ unreachable for %s: %w", l.opts.ReconnectTimeout, err)
		}
		l.p.log.Warn("cannot connect to RabbitMQ; retrying", "attempt", attempt, "retry_in", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (l *publishLoop) open() error {
	conn, node, err := l.nodes.dial("viswals publisher "+l.queue, &l.p.tcp, l.p.log)
	if err != nil {
		return err
	}
	l.node = node
	ch, err := conn.Channel()
	if err == nil {
		err = Declare(ch, l.queue, l.opts.Topology)
	}
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return classify(err)
	}
	l.conn, l.ch = conn, ch
	l.settled = time.Now()
	l.closed = ch.NotifyClose(make(chan *amqp.Error, 1)) // also told when conn closes
	logBlocked(conn, l.p.log)
	return nil
}

// send publishes e on the current channel. A failure can only mean the
// channel is gone (Publish validated the message): e waits in unsent.
func (l *publishLoop) send(e *entry) {
	dc, err := l.ch.PublishWithDeferredConfirm("", l.queue, false, false, e.pub)
	if err != nil {
		l.unsent = append(l.unsent, e)
		l.lose(err)
		return
	}
	if e.sends > 0 {
		l.p.republished.Add(1)
	}
	e.sends++
	e.dc = dc
	l.inflight = append(l.inflight, e)
	if l.p.cutAfterSend.CompareAndSwap(true, false) {
		l.p.tcp.cut()
	}
}

func (l *publishLoop) sendUnsent() {
	for len(l.unsent) > 0 && l.ch != nil {
		e := l.unsent[0]
		l.unsent[0] = nil
		l.unsent = l.unsent[1:]
		l.send(e)
	}
}

// nackPause is how long the publisher waits before resending nacked
// messages. nackReopen is how long it goes on being nacked, without an
// ack, before it reconnects (to the next node of a cluster).
const (
	nackPause  = 200 * time.Millisecond
	nackReopen = 3 * time.Second
)

// collectConfirms settles every message at the head of inflight whose
// confirmation has arrived: an ack releases it, a nack queues it to be sent
// again. When the channel closes, the library reports every pending
// confirmation as a nack, so those are sent again too, after reconnecting.
// It returns the number of nacks from the broker.
func (l *publishLoop) collectConfirms() (nacked int) {
	for len(l.inflight) > 0 {
		e := l.inflight[0]
		select {
		case <-e.dc.Done():
		default:
			return nacked
		}
		l.inflight[0] = nil
		l.inflight = l.inflight[1:]
		if e.dc.Acked() {
			l.p.confirmed.Add(1)
			l.settled = time.Now()
			continue
		}
		if !l.ch.IsClosed() {
			nacked++
			l.p.nacked.Add(1)
		}
		e.dc = nil
		l.unsent = append(l.unsent, e)
	}
	return nacked
}

// lose drops the current connection; its unconfirmed messages join unsent,
// in their original order, to be republished after reconnecting.
func (l *publishLoop) lose(err error) {
	l.p.log.Warn("connection to RabbitMQ lost; reconnecting", "unconfirmed", len(l.inflight)+len(l.unsent), "err", err)
	l.conn.Close()
	l.conn, l.ch, l.closed = nil, nil, nil
	for _, e := range l.inflight {
		e.dc = nil
	}
	l.unsent = append(l.unsent, l.inflight...)
	l.inflight = nil
	slices.SortFunc(l.unsent, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
}

// answerFlushes releases the Flush calls whose messages are all confirmed.
func (l *publishLoop) answerFlushes() {
	if len(l.waiters) == 0 {
		return
	}
	oldest := uint64(1<<64 - 1) // seq of the oldest message not yet confirmed
	for _, e := range l.inflight {
		oldest = min(oldest, e.seq)
	}
	for _, e := range l.unsent {
		oldest = min(oldest, e.seq)
	}
	waiting := l.waiters[:0]
	for _, f := range l.waiters {
		if f.upTo < oldest {
			f.done <- nil
		} else {
			waiting = append(waiting, f)
		}
	}
	l.waiters = waiting
}

// stop ends the loop with err, which Publish and Flush return from now on.
func (l *publishLoop) stop(err error) {
	if n := len(l.inflight) + len(l.unsent); n > 0 {
		l.p.log.Error("publisher stopped with unconfirmed messages", "unconfirmed", n, "err", err)
	}
	if l.conn != nil {
		l.conn.Close()
	}
	l.p.err = err
	for _, f := range l.waiters {
		f.done <- err
	}
}

// logBlocked logs when the broker blocks the connection (a memory or disk
// alarm): publishing then stalls, and the log says why.
func logBlocked(conn *amqp.Connection, log *slog.Logger) {
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	go func() {
		for b := range blocked {
			if b.Active {
				log.Warn("RabbitMQ blocked the connection; publishing stalls until it recovers", "reason", b.Reason)
			} else {
				log.Info("RabbitMQ unblocked the connection")
			}
		}
	}()
}
