// Command consumer takes batches of users from RabbitMQ, stores them in
// Postgres and Redis with the emails encrypted, and serves the HTTP API.
// Subcommands: serve (the default), dlq list, dlq replay, queue migrate,
// healthcheck, apikey create.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/viswals/viswals/config"
)

// defaultGOGC is the consumer's garbage collection target unless GOGC is
// set. Its live heap is small and it allocates fast while it loads or
// serves, so Go's default of 100 collects several times a second; 200
// makes loads faster for a higher peak RSS that stays well within the
// memory target (the paired runs are in docs/benchmarks.md).
const defaultGOGC = 200

// defaultMemoryLimit is the consumer's soft memory limit unless GOMEMLIMIT
// is set. GOGC 200 lets the heap grow to three times what is live, which
// is harmless while little is live; with thousands of SSE streams open
// the live heap grows, and the limit makes the collector work harder
// instead of the process growing. Far above what a load alone uses.
const defaultMemoryLimit = 256 << 20

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	getenv, err := config.WithDotEnv(os.Getenv, ".env")
	if err == nil {
		err = run(ctx, os.Args[1:], getenv, os.Stdin, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(config.ExitCode("consumer", err, os.Stderr))
}
