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
	"github.com/viswals/viswals/producer"
	"github.com/viswals/viswals/rabbitmq"
)

// run is the whole program, callable from tests: it parses the settings,
// opens the input, the rejects file and the publisher, and hands them to
// the producer.
func run(ctx context.Context, args []string, getenv config.Getenv, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := config.ParseProducer(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := config.NewLogger(stderr, cfg.LogLevel)

	in, size, err := openInput(cfg.Input, stdin)
	if err != nil {
		return err
	}
	defer in.Close()
	counted := producer.NewCountingReader(in)
	rows, err := csvin.NewReader(counted)
	if err != nil {
		return fmt.Errorf("read %s: %w", cfg.Input, err)
	}

	rejectsPath := cfg.RejectsPath
	if rejectsPath == "" {
		rejectsPath = defaultRejectsPath(cfg.Input)
	}
	rejectsFile, err := createPrivate(rejectsPath)
	if err != nil {
		return fmt.Errorf("create rejects file: %w", err)
	}
	defer rejectsFile.Close()
	rejects := csvin.NewRejectWriter(rejectsFile, rows.Header())

	var sealer producer.Sealer
	if cfg.Seal {
		keyring, err := cfg.Keys.Keyring()
		if err != nil {
			return fmt.Errorf("--seal: %w", err)
		}
		sealer = keyring
	}
	var signer *rabbitmq.Signer
	if cfg.SigningKey != "" {
		if signer, err = rabbitmq.NewSigner(cfg.SigningKey); err != nil {
			return fmt.Errorf("%w: %w", config.ErrUsage, err)
		}
	}
	pub, err := rabbitmq.NewPublisher(ctx, cfg.RabbitURL, cfg.Queue, rabbitmq.PublisherOptions{
		MaxInFlight:      cfg.MaxInFlight,
		ReconnectTimeout: cfg.ReconnectTimeout,
		Logger:           logger,
		Signer:           signer,
		Topology:         rabbitmq.Topology(cfg.Topology),
	})
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer pub.Close()

	contentType := rabbitmq.ContentTypeGob
	if cfg.Format == "json" {
		contentType = rabbitmq.ContentTypeJSON
	}
	if sealer != nil {
		contentType = rabbitmq.WithSealedEmails(contentType)
	}
	start := time.Now()
	// The load id orders this run's rows after every earlier run's.
	loadID := start.UnixNano()
	var follower *rabbitmq.LoadFollower
	if cfg.Wait {
		// Subscribed before the first message, so no record of the load
		// can pass unseen; its queue outlives the wait by a minute.
		follower, err = rabbitmq.FollowLoad(ctx, cfg.RabbitURL, cfg.Queue, loadID, cfg.WaitTimeout+time.Minute, logger)
		if err != nil {
			return err
		}
		defer follower.Close()
	}
	bar := producer.NewMeter(stderr, cfg.Progress, size, counted)
	defer bar.Finish()
	p := producer.New(rows, pub, rejects, bar, producer.Options{
		ContentType: contentType,
		BatchSize:   cfg.BatchSize,
		LoadID:      loadID,
		Sealer:      sealer,
	})
	n, err := p.Run(ctx)
	bar.Loaded()
	if ferr := rejects.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write rejects: %w", ferr)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "read=%d published=%d rejected=%d messages=%d seconds=%.2f rows_per_second=%.0f rejects=%s load=%d broker=%s queue=%s\n",
		n.Read, n.Published, n.Rejected, n.Messages, took.Seconds(), float64(n.Read)/max(took.Seconds(), 1e-9), rejectsPath,
		loadID, config.RedactURL(cfg.RabbitURL), cfg.Queue)
	if err != nil {
		return err
	}
	logger.Info("load confirmed", "load", loadID, "read", n.Read, "published", n.Published, "rejected", n.Rejected, "seconds", took.Seconds())
	if follower == nil {
		return nil
	}
	rec, err := producer.Wait(ctx, loadID, follower.Records(), producer.WaitOptions{
		Published: n.Published,
		Timeout:   cfg.WaitTimeout,
		Show:      func(rec viswals.LoadRecord, note string) { bar.Committed(rec.Received, n.Published, note) },
	})
	bar.Finish()
	took = time.Since(start)
	fmt.Fprintf(stdout, "load=%d state=%s received=%d inserted=%d updated=%d unchanged=%d dead_lettered=%d seconds=%.2f\n",
		loadID, rec.State(), rec.Received, rec.Inserted, rec.Updated, rec.Unchanged, rec.DeadLettered, took.Seconds())
	return err
}

// openInput opens the input and tells its size in bytes (-1 when unknown:
// stdin, a pipe).
func openInput(path string, stdin io.Reader) (io.ReadCloser, int64, error) {
	if path == "-" {
		return io.NopCloser(stdin), -1, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("open input: %w", err)
	}
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, nil
}

// createPrivate creates or truncates the file at path, readable and
// writable by its owner only: rejected rows hold emails. A file that
// existed with wider permissions is narrowed too.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
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
