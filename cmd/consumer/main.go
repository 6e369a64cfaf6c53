// Command consumer takes batches of users from RabbitMQ, stores them in
// Postgres and Redis with the emails encrypted, and serves the HTTP API.
// Subcommands: serve (the default), dlq list, dlq replay, healthcheck.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err and maps it to an exit code: 0 done, 1 fatal, 2 bad usage.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, config.ErrUsage):
		fmt.Fprintln(stderr, "consumer:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "consumer:", err)
		return 1
	}
}
