package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/csvin"
	"github.com/viswals/viswals/rabbitmq"
	"golang.org/x/sync/errgroup"
)

// run is the whole program, callable from tests.
func run(ctx context.Context, args []string, getenv config.Getenv, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := config.ParseProducer(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := config.NewLogger(stderr, cfg.LogLevel)

	in, err := openInput(cfg.Input, stdin)
	if err != nil {
		return err
	}
	defer in.Close()
	rows, err := csvin.NewReader(in)
	if err != nil {
		return fmt.Errorf("read %s: %w", cfg.Input, err)
	}

	rejectsPath := cfg.RejectsPath
	if rejectsPath == "" {
		rejectsPath = defaultRejectsPath(cfg.Input)
	}
	rejectsFile, err := os.Create(rejectsPath)
	if err != nil {
		return fmt.Errorf("create rejects file: %w", err)
	}
	defer rejectsFile.Close()
	rejects := csvin.NewRejectWriter(rejectsFile, rows.Header())

	pub, err := rabbitmq.NewPublisher(ctx, cfg.RabbitURL, cfg.Queue, rabbitmq.PublisherOptions{
		MaxInFlight:      cfg.MaxInFlight,
		ReconnectTimeout: cfg.ReconnectTimeout,
		Logger:           logger,
	})
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer pub.Close()

	contentType := rabbitmq.ContentTypeGob
	if cfg.Format == "json" {
		contentType = rabbitmq.ContentTypeJSON
	}
	progress := newProgress(stderr)
	start := time.Now()
	l := loader{
		rows:        rows,
		rejects:     rejects,
		pub:         pub,
		contentType: contentType,
		batchSize:   cfg.BatchSize,
		// The load id orders this run's rows after every earlier run's.
		loadID:   start.UnixNano(),
		progress: progress,
	}
	err = l.run(ctx)
	progress.Finish()
	if ferr := rejects.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write rejects: %w", ferr)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "read=%d published=%d rejected=%d messages=%d seconds=%.2f rows_per_second=%.0f rejects=%s\n",
		l.read, l.published, l.rejected, l.messages, took.Seconds(), float64(l.read)/max(took.Seconds(), 1e-9), rejectsPath)
	if err != nil {
		return err
	}
	logger.Info("load confirmed", "read", l.read, "published", l.published, "rejected", l.rejected, "seconds", took.Seconds())
	return nil
}

// loader moves rows from the CSV reader to the publisher: parsing runs in
// its own goroutine so that it overlaps encoding and publishing.
type loader struct {
	rows        *csvin.Reader
	rejects     *csvin.RejectWriter
	pub         *rabbitmq.Publisher
	contentType string
	batchSize   int
	loadID      int64
	progress    progress

	read, published, rejected, messages int64
}

func (l *loader) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan []viswals.Record, 4)
	g.Go(func() error {
		defer close(batches)
		return l.parse(gctx, batches)
	})
	g.Go(func() error {
		for batch := range batches {
			body, err := rabbitmq.Encode(l.contentType, batch)
			if err != nil {
				return fmt.Errorf("encode batch: %w", err)
			}
			if err := l.pub.Publish(gctx, rabbitmq.Message{Body: body, ContentType: l.contentType}); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			l.published += int64(len(batch))
			l.messages++
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if err := l.pub.Flush(ctx); err != nil {
		return fmt.Errorf("wait for broker confirms: %w", err)
	}
	return nil
}

// parse reads every row, writes rejects and sends batches of good records.
func (l *loader) parse(ctx context.Context, out chan<- []viswals.Record) error {
	batch := make([]viswals.Record, 0, l.batchSize)
	for {
		row, err := l.rows.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
		l.read++
		if l.read%4096 == 0 {
			l.progress.Set(l.read)
		}
		if row.Err != nil {
			l.rejected++
			if err := l.rejects.Write(row); err != nil {
				return fmt.Errorf("write rejects: %w", err)
			}
			continue
		}
		rec := row.Record
		rec.Version.Load = l.loadID
		batch = append(batch, rec)
		if len(batch) == l.batchSize {
			select {
			case out <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([]viswals.Record, 0, l.batchSize)
		}
	}
	l.progress.Set(l.read)
	if len(batch) > 0 {
		select {
		case out <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func openInput(path string, stdin io.Reader) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	return f, nil
}

// defaultRejectsPath puts the rejects next to the input: users.csv →
// users.rejects.csv.
func defaultRejectsPath(input string) string {
	if input == "-" {
		return "rejects.csv"
	}
	return strings.TrimSuffix(input, filepath.Ext(input)) + ".rejects.csv"
}
