package main

import (
	"context"
	"fmt"
	"io"

	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/rabbitmq"
)

// runQueue implements `consumer queue migrate`: it replaces the work queue
// and its dead-letter queue, where they exist with other arguments than
// the settings give (a classic queue from before quorum was the default),
// by queues declared as configured, moving their messages.
func runQueue(ctx context.Context, cfg config.Consumer, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "migrate" {
		return fmt.Errorf("%w: want `queue migrate`", config.ErrUsage)
	}
	done, err := rabbitmq.MigrateQueues(ctx, cfg.RabbitURL, cfg.Queue, rabbitmq.Topology(cfg.Topology))
	for _, m := range done {
		state := "as configured"
		if m.Redeclared {
			state = "redeclared"
		}
		fmt.Fprintf(stdout, "queue=%s type=%s %s moved=%d\n", m.Queue, cfg.Topology.Type, state, m.Moved)
	}
	return err
}
