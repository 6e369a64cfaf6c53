package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	bar := producer.NewBar(stderr)
	start := time.Now()
	// The load id orders this run's rows after every earlier run's.
	loadID := start.UnixNano()
	p := producer.New(rows, pub, rejects, bar, producer.Options{
		ContentType: contentType,
		BatchSize:   cfg.BatchSize,
		LoadID:      loadID,
		Sealer:      sealer,
	})
	n, err := p.Run(ctx)
	bar.Finish()
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
	logger.Info("load confirmed", "read", n.Read, "published", n.Published, "rejected", n.Rejected, "seconds", took.Seconds())
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
