// Command bench runs the performance harness (package bench) and prints
// every figure with its ratio; with -doc it writes the results into a
// section of docs/benchmarks.md and with -plot the charts to a PNG.
//
//	go run ./bench/cmd/bench -rows 1000000 -doc docs/benchmarks.md -plot docs/benchmarks.png
//	go run ./bench/cmd/bench -smoke
//	go run ./bench/cmd/bench -rows 10000000 -load-only -section rss10m -plot docs/rss-10m.png
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/viswals/viswals/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	smoke := fs.Bool("smoke", false, "tiny sizes, for CI")
	rows := fs.Int("rows", 0, "rows of the main load (default 1000000, smoke 20000)")
	loadOnly := fs.Bool("load-only", false, "measure the load only (COPY, e2e, RSS)")
	sweepRows := fs.Int("sweep-rows", -1, "rows per sweep point (0: no sweep)")
	wrkDur := fs.Duration("wrk-duration", 0, "each wrk run (default 10s, smoke 3s)")
	sseSubs := fs.Int("sse-subs", 0, "SSE subscribers (default 2000, smoke 100)")
	flood := fs.Int("flood", 0, "unfiltered SSE streams a flooder holds open during the main load (0: none)")
	floodRead := fs.Bool("flood-read", false, "the flooder reads its streams (default: it never reads them)")
	doc := fs.String("doc", "", "write the results into this markdown file")
	section := fs.String("section", "", "section of -doc to replace (default: results, or results-smoke)")
	plot := fs.String("plot", "", "write the charts to this PNG")
	workdir := fs.String("workdir", "", "keep binaries, data and logs here (default: a temp dir, removed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := bench.Full()
	if *smoke {
		cfg = bench.Smoke()
	}
	if *rows > 0 {
		cfg.Rows = *rows
	}
	if *sweepRows >= 0 {
		cfg.SweepRows = *sweepRows
	}
	if *wrkDur > 0 {
		cfg.WrkDuration = *wrkDur
	}
	if *sseSubs > 0 {
		cfg.SSESubs = *sseSubs
	}
	cfg.LoadOnly = *loadOnly
	cfg.Flood, cfg.FloodRead = *flood, *floodRead
	cfg.WorkDir = *workdir
	cfg.Out = os.Stdout
	cfg.PostgresURL = os.Getenv("BENCH_POSTGRES_URL")
	cfg.RedisURL = os.Getenv("REDIS_CONN_URL")
	cfg.RabbitURL = os.Getenv("RABBITMQ_CONN_URL")

	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Print(res.Markdown(commandLine(args)))
	if *doc != "" {
		name := *section
		if name == "" {
			name = "results"
			if *smoke {
				name = "results-smoke"
			}
		}
		if err := bench.UpdateSection(*doc, name, res.Markdown(commandLine(args))); err != nil {
			return err
		}
	}
	if *plot != "" {
		f, err := os.Create(*plot)
		if err != nil {
			return err
		}
		panels := res.Panels()
		if cfg.LoadOnly {
			panels = []bench.Panel{res.RSSPanel()}
		}
		if err := bench.WritePNG(f, panels, 600, 420); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

func commandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " '\"") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.TrimSpace("go run ./bench/cmd/bench " + strings.Join(q, " "))
}
