// Command consumer takes batches of users from RabbitMQ, stores them in
// Postgres and Redis with the emails encrypted, and serves the HTTP API.
// Subcommands: serve (the default), dlq list, dlq replay, healthcheck.
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
		err = run(ctx, os.Args[1:], getenv, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(config.ExitCode("consumer", err, os.Stderr))
}
