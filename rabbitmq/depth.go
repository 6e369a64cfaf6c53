package rabbitmq

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
)

// DepthWatch publishes the depth of a queue and of its dead-letter queue
// as the gauge viswals_queue_messages{queue="work"|"dead_letter"}: the
// ready messages the broker reports, read every interval (a growing DLQ,
// a queue that does not drain).
type DepthWatch struct {
	url, queue string
	log        *slog.Logger
	gauge      *prometheus.GaugeVec
	conn       *amqp.Connection
}

// NewDepthWatch registers the gauge on reg; Run reads the depths.
func NewDepthWatch(url, queue string, reg prometheus.Registerer, log *slog.Logger) *DepthWatch {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "viswals_queue_messages",
		Help: "Messages ready in the work queue and in its dead-letter queue, as the broker last reported."}, []string{"queue"})
	reg.MustRegister(g)
	return &DepthWatch{url: url, queue: queue, log: log, gauge: g}
}

// Run reads the depths every interval until ctx is done.
func (w *DepthWatch) Run(ctx context.Context, interval time.Duration) {
	defer func() {
		if w.conn != nil {
			w.conn.Close()
		}
	}()
	for {
		if err := w.read(); err != nil {
			w.log.Debug("cannot read the queue depths", "err", err)
		}
		if sleep(ctx, interval) != nil {
			return
		}
	}
}

func (w *DepthWatch) read() error {
	if w.conn == nil || w.conn.IsClosed() {
		conn, err := dialNodes(w.url, "viswals queue depth "+w.queue)
		if err != nil {
			return err
		}
		w.conn = conn
	}
	for label, name := range map[string]string{"work": w.queue, "dead_letter": DLQName(w.queue)} {
		// A channel per inspection: a missing queue closes it.
		ch, err := w.conn.Channel()
		if err != nil {
			w.conn.Close()
			return err
		}
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err == nil {
			w.gauge.WithLabelValues(label).Set(float64(q.Messages))
			ch.Close()
		}
	}
	return nil
}
