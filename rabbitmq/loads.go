package rabbitmq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
)

// A load (a producer run) travels as its batches, each with the load's id
// in HeaderLoad, then a summary (HeaderKind KindLoadSummary) with the
// producer's counts, on the same queue: whoever consumes the batches
// consumes the summary, with the same acks, redeliveries and dead
// letters. After each commit the consumer publishes the load's record on
// the loads exchange (LoadsExchange), routed by the load's id, for a
// producer that follows its load (FollowLoad).
const (
	HeaderLoad      = "x-viswals-load"
	HeaderKind      = "x-viswals-kind"
	KindLoadSummary = "load-summary"
	// HeaderRows is how many rows a batch holds, so that the rows of a
	// message the consumer cannot decode still count (as dead-lettered)
	// in their load.
	HeaderRows = "x-viswals-rows"
	// HeaderDeadLetterKey is set by the consumer on a dead letter whose
	// rows it counted as dead-lettered in their load: a replay of it is
	// counted under this key, moving its rows out of dead-lettered (see
	// viswals.Receipt.Replayed) once however often it is delivered.
	HeaderDeadLetterKey = "x-viswals-dead-letter"
)

// LoadsExchange is the name of the topic exchange the load records of
// queue's consumers are published on.
func LoadsExchange(queue string) string { return queue + ".loads" }

// BatchHeaders are the headers of a batch of load: the load's id and the
// batch's number of rows.
func BatchHeaders(load int64, rows int) amqp.Table {
	return amqp.Table{HeaderLoad: load, HeaderRows: int64(rows)}
}

// SummaryMessage is the last message of a load: the producer's counts, in
// JSON. Its message id is the same whenever it is sent, so it is counted
// once.
func SummaryMessage(sum viswals.LoadSummary) Message {
	body, _ := json.Marshal(sum) // a struct of integers always encodes
	return Message{
		Body:        body,
		ContentType: ContentTypeJSON,
		Headers:     amqp.Table{HeaderLoad: sum.Load, HeaderKind: KindLoadSummary},
		MessageID:   fmt.Sprintf("%d-summary", sum.Load),
	}
}

// isSummary reports whether d is a load's summary.
func isSummary(d Delivery) bool {
	k, _ := d.Headers[HeaderKind].(string)
	return k == KindLoadSummary
}

// decodeSummary reads a summary message.
func decodeSummary(d Delivery) (viswals.LoadSummary, error) {
	var sum viswals.LoadSummary
	if len(d.Body) > 4096 {
		return sum, fmt.Errorf("load summary of %d bytes is too large", len(d.Body))
	}
	if err := json.Unmarshal(d.Body, &sum); err != nil {
		return sum, fmt.Errorf("load summary: %w", err)
	}
	load, ok := loadOf(d)
	switch {
	case !ok || load != sum.Load:
		return sum, fmt.Errorf("load summary for load %d has header %s %v", sum.Load, HeaderLoad, d.Headers[HeaderLoad])
	case sum.Read < 0 || sum.Published < 0 || sum.Rejected < 0 || sum.Published+sum.Rejected != sum.Read:
		return sum, fmt.Errorf("load summary has inconsistent counts: read=%d published=%d rejected=%d", sum.Read, sum.Published, sum.Rejected)
	}
	return sum, nil
}

// loadOf reads the load id of d's headers.
func loadOf(d Delivery) (int64, bool) { return positiveHeader(d, HeaderLoad) }

// rowsOf reads HeaderRows: false when it is missing or cannot be a count
// of rows (a row takes more than a byte of a body).
func rowsOf(d Delivery) (int64, bool) {
	n, ok := positiveHeader(d, HeaderRows)
	return n, ok && n <= MaxBodyBytes
}

// positiveHeader reads header name of d as an integer >= 1, written by a
// Go producer as an integer, by others maybe as a decimal string (no
// sign, as viswals.ParseLoadID reads it).
func positiveHeader(d Delivery, name string) (int64, bool) {
	switch v := d.Headers[name].(type) {
	case int64:
		return v, v > 0
	case int32:
		return int64(v), v > 0
	case string:
		n, err := strconv.ParseUint(v, 10, 63)
		return int64(n), err == nil && n > 0
	}
	return 0, false
}

// receiptOf is the receipt d's rows are counted under: its load, and its
// message id, or a hash of its body when it has none (a redelivery or a
// republished copy carries the same body); for a replayed dead letter, the
// key the consumer gave it. nil when d names no load.
func receiptOf(d Delivery) *viswals.Receipt {
	load, ok := loadOf(d)
	if !ok {
		return nil
	}
	if k, _ := d.Headers[HeaderDeadLetterKey].(string); k != "" && len(k) <= 200 {
		return &viswals.Receipt{Load: load, Message: k, Replayed: true}
	}
	key := d.MessageID
	if key == "" || len(key) > 200 {
		sum := sha256.Sum256(d.Body)
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	return &viswals.Receipt{Load: load, Message: key}
}

// deadLetterKey is the HeaderDeadLetterKey of the part-th dead letter made
// of the message counted under key: the same for every delivery of that
// message, so that duplicates of a dead letter are counted once on replay,
// and of bounded length however often a dead letter goes round.
func deadLetterKey(key string, part int) string {
	sum := sha256.Sum256([]byte(key + "#" + strconv.Itoa(part)))
	return "dl:" + hex.EncodeToString(sum[:16])
}

// LoadEvents publishes load records on the loads exchange for followers.
// Records wait in memory, one per load (the newest), while the broker is
// unreachable, and go when it is back: a follower misses none that
// matters, only intermediate ones.
type LoadEvents struct {
	url, exchange string
	log           *slog.Logger

	mu      sync.Mutex
	pending map[int64]viswals.LoadRecord
	wake    chan struct{}
}

// NewLoadEvents returns the publisher of queue's load records at url; Run
// connects.
func NewLoadEvents(url, queue string, log *slog.Logger) *LoadEvents {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LoadEvents{url: url, exchange: LoadsExchange(queue), log: log,
		pending: map[int64]viswals.LoadRecord{}, wake: make(chan struct{}, 1)}
}

// Notify queues rec to be published; it never blocks.
func (e *LoadEvents) Notify(rec viswals.LoadRecord) {
	e.mu.Lock()
	if cur, ok := e.pending[rec.ID]; ok {
		rec = cur.Merge(rec)
	}
	e.pending[rec.ID] = rec
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run publishes queued records until ctx is done, reconnecting as needed.
func (e *LoadEvents) Run(ctx context.Context) error {
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		err := e.session(ctx)
		if ctx.Err() != nil {
			break
		}
		wait := bo.wait()
		e.log.Warn("load events: broker connection lost; reconnecting", "retry_in", wait, "err", err)
		_ = sleep(ctx, wait)
	}
	return nil
}

func (e *LoadEvents) session(ctx context.Context) error {
	conn, err := dialNodes(e.url, "viswals load events")
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(e.exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q: %w", e.exchange, err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	for {
		e.mu.Lock()
		batch := e.pending
		e.pending = map[int64]viswals.LoadRecord{}
		e.mu.Unlock()
		for id, rec := range batch {
			body, _ := json.Marshal(rec)
			err := ch.PublishWithContext(ctx, e.exchange, strconv.FormatInt(id, 10), false, false,
				amqp.Publishing{ContentType: ContentTypeJSON, Body: body, Timestamp: time.Now()})
			if err != nil {
				// Back in the queue, unless a newer record came meanwhile.
				for id, rec := range batch {
					e.Notify(rec)
					delete(batch, id)
				}
				return err
			}
			delete(batch, id)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			return closeErr(err)
		case <-e.wake:
		}
	}
}

// LoadFollower receives the records of one load, from the moment
// FollowLoad returns: call it before publishing the load's first message.
type LoadFollower struct {
	records chan viswals.LoadRecord
	cancel  context.CancelFunc
	done    chan struct{}
}

// FollowLoad subscribes to the records of load published for queue's
// consumers. Its queue outlives a lost connection (it is deleted by the
// broker after keep without a consumer), so records published while the
// follower reconnects wait for it.
func FollowLoad(ctx context.Context, url, queue string, load int64, keep time.Duration, log *slog.Logger) (*LoadFollower, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &LoadFollower{records: make(chan viswals.LoadRecord, 16), done: make(chan struct{})}
	name := fmt.Sprintf("%s.%d", LoadsExchange(queue), load)
	subscribe := func() (*amqp.Connection, <-chan amqp.Delivery, error) {
		conn, err := dialNodes(url, "viswals producer "+name)
		if err != nil {
			return nil, nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.ExchangeDeclare(LoadsExchange(queue), amqp.ExchangeTopic, true, false, false, false, nil)
		}
		if err == nil {
			_, err = ch.QueueDeclare(name, false, false, false, false, amqp.Table{"x-expires": max(keep.Milliseconds(), 1000)})
		}
		if err == nil {
			err = ch.QueueBind(name, strconv.FormatInt(load, 10), LoadsExchange(queue), false, nil)
		}
		var ds <-chan amqp.Delivery
		if err == nil {
			ds, err = ch.Consume(name, "", true, true, false, false, nil)
		}
		if err != nil {
			conn.Close()
			return nil, nil, classify(err)
		}
		return conn, ds, nil
	}
	conn, ds, err := subscribe()
	if err != nil {
		return nil, fmt.Errorf("follow load %d: %w", load, err)
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	go func() {
		defer close(f.done)
		defer close(f.records)
		bo := newBackoff(100*time.Millisecond, 5*time.Second)
		for {
			f.forward(lctx, ds, load, log)
			conn.Close()
			for {
				if lctx.Err() != nil {
					return
				}
				_ = sleep(lctx, bo.wait())
				if conn, ds, err = subscribe(); err == nil {
					bo.reset()
					break
				}
				log.Warn("following the load: cannot reach the broker; retrying", "err", err)
			}
		}
	}()
	return f, nil
}

// forward hands the records of ds to Records until ds ends or ctx is done.
func (f *LoadFollower) forward(ctx context.Context, ds <-chan amqp.Delivery, load int64, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-ds:
			if !ok {
				return
			}
			var rec viswals.LoadRecord
			if err := json.Unmarshal(d.Body, &rec); err != nil || rec.ID != load {
				log.Warn("ignoring a malformed load record", "err", err)
				continue
			}
			select {
			case f.records <- rec:
			case <-ctx.Done():
				return
			}
		}
	}
}

// Records yields the load's records as consumers commit them (the newest
// is not necessarily the last: merge them). It is closed by Close.
func (f *LoadFollower) Records() <-chan viswals.LoadRecord { return f.records }

// Close stops following.
func (f *LoadFollower) Close() {
	f.cancel()
	<-f.done
}
