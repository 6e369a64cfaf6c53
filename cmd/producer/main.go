// Command producer reads a CSV export of users, validates each row and
// publishes the good ones to RabbitMQ in batches, exiting 0 only after the
// broker confirmed every message. See run for the flow.
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
		err = run(ctx, os.Args[1:], getenv, os.Stdin, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err and maps it to the documented exit codes:
// 0 done, 1 fatal, 2 bad usage.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, config.ErrUsage):
		fmt.Fprintln(stderr, "producer:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "producer:", err)
		return 1
	}
}
