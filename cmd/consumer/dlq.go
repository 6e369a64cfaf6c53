package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/rabbitmq"
)

// runDLQ implements `consumer dlq list` and `consumer dlq replay`.
func runDLQ(ctx context.Context, cfg config.Consumer, args []string, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return fmt.Errorf("%w: want `dlq list` or `dlq replay`", config.ErrUsage)
	}
	fs := flag.NewFlagSet("dlq "+args[0], flag.ContinueOnError)
	fs.SetOutput(stdout)
	max := fs.Int("max", 1000, "dead letters to handle at most")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	queue := rabbitmq.DLQName(cfg.Queue)
	if args[0] == "replay" {
		n, err := rabbitmq.ReplayDeadLetters(ctx, cfg.RabbitURL, cfg.Queue, rabbitmq.Topology(cfg.Topology), *max)
		fmt.Fprintf(stdout, "replayed=%d from=%s to=%s\n", n, queue, cfg.Queue)
		return err
	}
	n := 0
	err := rabbitmq.ListDeadLetters(ctx, cfg.RabbitURL, cfg.Queue, *max, func(m rabbitmq.DLQMessage) error {
		n++
		at := ""
		if !m.DeadLetteredAt.IsZero() {
			at = m.DeadLetteredAt.Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%d\tat=%s\tcontent_type=%s\tbytes=%d\treason=%q\n", n, at, m.ContentType, m.Size, m.Reason)
		return nil
	})
	fmt.Fprintf(stdout, "listed=%d queue=%s\n", n, queue)
	return err
}
