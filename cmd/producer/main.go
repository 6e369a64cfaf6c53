// Command producer reads a CSV export of users, validates each row and
// publishes the good ones to RabbitMQ in batches, exiting 0 only after the
// broker confirmed every message. See run for the flow.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/viswals/viswals/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	getenv, err := config.WithDotEnv(os.Getenv, ".env")
	if err == nil {
		err = run(ctx, os.Args[1:], getenv, os.Stdin, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(config.ExitCode("producer", err, os.Stderr))
}
