package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/rediscache"
	"github.com/viswals/viswals/rekey"
)

// rekeyFlags are rekey's own flags; the others are the consumer's.
type rekeyFlags struct {
	dryRun bool
	batch  int
}

// splitRekeyArgs takes rekey's own flags out of args and returns the rest
// for the consumer's settings.
func splitRekeyArgs(args []string, stderr io.Writer) (rekeyFlags, []string, error) {
	var f rekeyFlags
	fs := flag.NewFlagSet("consumer rekey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.dryRun, "dry-run", false, "only count the rows per key id and those to re-seal; write nothing")
	fs.IntVar(&f.batch, "batch", 1000, "rows per batch, each written in one transaction")
	var own, rest []string
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || fs.Lookup(name) == nil {
			rest = append(rest, args[i])
			continue
		}
		own = append(own, args[i])
		if name == "batch" && !hasValue && i+1 < len(args) {
			i++
			own = append(own, args[i])
		}
	}
	if err := fs.Parse(own); err != nil {
		return f, nil, fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	if f.batch < 1 || f.batch > 100_000 {
		return f, nil, fmt.Errorf("%w: --batch must be between 1 and 100000, got %d", config.ErrUsage, f.batch)
	}
	return f, rest, nil
}

// runRekey implements `consumer rekey`: every stored email not sealed
// under the primary key of ENCRYPTION_KEYS (or without the user id bound)
// is re-sealed, online and resumably (package rekey). The summary goes to
// stdout, the progress to stderr.
func runRekey(ctx context.Context, cfg config.Consumer, f rekeyFlags, logger *slog.Logger, stdout, stderr io.Writer) error {
	ring, err := cfg.Keyring()
	if err != nil {
		return err
	}
	store, err := postgres.Open(ctx, cfg.PostgresURL, postgres.PoolConfig{MaxConns: 2, AppName: "viswals-rekey"})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer store.Close()
	conn, err := redisConn(cfg)
	if err != nil {
		return err
	}
	rdb, _, err := rediscache.Connect(ctx, conn)
	if rdb == nil {
		return fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	// Redis down is not fatal: the rows are rewritten all the same, and
	// cache entries that then do not open are refilled from Postgres.
	defer rdb.Close()
	cache := rediscache.New(rdb, rediscache.Options{Prefix: cfg.RedisPrefix, TTL: cfg.RedisTTL})

	total, err := store.CountRows(ctx)
	if err != nil {
		return err
	}
	progress := newRekeyProgress(stderr, total, f.dryRun)
	start := time.Now()
	sum, err := rekey.Run(ctx, store, cache, ring, rekey.Options{
		BatchSize: f.batch, DryRun: f.dryRun, Progress: progress.show, Logger: logger,
	})
	progress.finish()
	elapsed := time.Since(start)
	verb := "rekey"
	if f.dryRun {
		verb = "rekey dry-run (would reseal)"
	}
	fmt.Fprintf(stdout, "%s: primary=%s %s elapsed=%s rows/s=%.0f\n", verb, ring.PrimaryKeyID(), sum,
		elapsed.Round(time.Millisecond), float64(sum.Scanned)/max(elapsed.Seconds(), 1e-9))
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("rekey stopped at id %d; run it again to go on: %w", sum.LastID, err)
	case err != nil:
		return fmt.Errorf("rekey stopped at id %d: %w", sum.LastID, err)
	case sum.Failed > 0:
		return fmt.Errorf("%d stored emails do not open with ENCRYPTION_KEYS (their ids are logged); keep every old key until they are dealt with", sum.Failed)
	}
	return nil
}

// rekeyProgress is a progress bar on a terminal and a plain line a second
// otherwise, so logs stay readable.
type rekeyProgress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	total int64
	last  time.Time
}

func newRekeyProgress(w io.Writer, total int64, dryRun bool) *rekeyProgress {
	p := &rekeyProgress{w: w, total: total, last: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		desc := "rekeying"
		if dryRun {
			desc = "counting"
		}
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionShowIts(),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *rekeyProgress) show(s rekey.Summary) {
	if p.bar != nil {
		_ = p.bar.Set64(s.Scanned)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= time.Second {
		p.last = now
		fmt.Fprintf(p.w, "rekey: %d/%d rows scanned, %d resealed, %d failed\n", s.Scanned, p.total, s.Resealed, s.Failed)
	}
}

func (p *rekeyProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
