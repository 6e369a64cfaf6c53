package config

import (
	"flag"
	"fmt"
	"io"
	"time"
)

// Producer holds the producer's settings.
type Producer struct {
	Input            string // a path, or "-" for stdin
	RejectsPath      string
	RabbitURL        string
	Queue            string
	Topology         RabbitTopology
	BatchSize        int
	Format           string // "gob" or "json"
	MaxInFlight      int
	ReconnectTimeout time.Duration
	LogLevel         string
	SigningKey       string // INGEST_SIGNING_KEY; "": messages go unsigned
	Seal             bool   // seal emails before publishing, with Keys
	Keys             EncryptionKeys
	Wait             bool          // follow the load until the consumers committed it
	WaitTimeout      time.Duration // give up waiting after this long without progress
	Progress         string        // auto, bar, plain or none
}

// ParseProducer reads the producer's flags and environment. It returns
// flag.ErrHelp after printing usage for -h/--help, and an ErrUsage error
// for bad flags or values.
func ParseProducer(args []string, getenv Getenv, out io.Writer) (Producer, error) {
	var c Producer
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: producer [flags] FILE   (FILE may be - for stdin)\n\nReads a CSV export of users, validates every row and publishes the good\nones to RabbitMQ; exits 0 once the broker confirmed every message.\n\nflags:")
		fs.PrintDefaults()
	}
	s := &set{fs: fs, getenv: getenv}
	s.String(&c.RejectsPath, "rejects", "", "", "where to write rejected rows (default: FILE with .rejects.csv, or rejects.csv for stdin)")
	s.URLList(&c.RabbitURL, "rabbitmq-url", "RABBITMQ_CONN_URL", DefaultRabbitURL, "RabbitMQ `URL`, or the URLs of a cluster's nodes, comma-separated (connects to any, and to another when one is lost)")
	s.String(&c.Queue, "queue", "RABBITMQ_QUEUE_NAME", DefaultQueue, "queue to publish to")
	s.rabbitTopology(&c.Topology)
	s.Int(&c.BatchSize, "batch", "PRODUCER_BATCH_SIZE", 2000, "users per message")
	s.String(&c.Format, "format", "PRODUCER_FORMAT", "gob", "message encoding: gob or json")
	s.Int(&c.MaxInFlight, "max-in-flight", "PRODUCER_MAX_IN_FLIGHT", 32, "messages published but not yet confirmed")
	s.Duration(&c.ReconnectTimeout, "reconnect-timeout", "PRODUCER_RECONNECT_TIMEOUT", time.Minute, "give up when the broker stays unreachable this long")
	s.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	s.Secret(&c.SigningKey, "signing-key", "INGEST_SIGNING_KEY", "", "`key` to sign every message with (HMAC-SHA256), the consumer's INGEST_SIGNING_KEY")
	s.Bool(&c.Seal, "seal", "PRODUCER_SEAL", false, "seal every email with the consumer's keys (ENCRYPTION_KEY or ENCRYPTION_KEYS) before publishing, so the broker never holds plaintext")
	s.encryptionKeys(&c.Keys)
	s.Bool(&c.Wait, "wait", "PRODUCER_WAIT", false, "after publishing, follow the load until the consumers committed all of it; exit 0 only then (non-zero when rows were dead-lettered)")
	s.Duration(&c.WaitTimeout, "wait-timeout", "PRODUCER_WAIT_TIMEOUT", 2*time.Minute, "with --wait, give up (exit 1) when the consumers commit nothing of the load for this long")
	s.String(&c.Progress, "progress", "PRODUCER_PROGRESS", "auto", "progress on stderr: bar (redrawn in place), plain (a line every 5s, for logs), none, or auto (bar on a terminal, plain otherwise)")
	if err := s.parse(args); err != nil {
		return c, usageError(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return c, usageError(fmt.Errorf("want exactly one FILE argument, got %d", fs.NArg()))
	}
	c.Input = fs.Arg(0)
	if err := c.Topology.check(); err != nil {
		return c, usageError(err)
	}
	switch {
	case c.BatchSize < 1 || c.BatchSize > 100_000:
		return c, usageError(fmt.Errorf("--batch must be between 1 and 100000, got %d", c.BatchSize))
	case c.Format != "gob" && c.Format != "json":
		return c, usageError(fmt.Errorf("--format must be gob or json, got %q", c.Format))
	case c.Progress != "auto" && c.Progress != "bar" && c.Progress != "plain" && c.Progress != "none":
		return c, usageError(fmt.Errorf("--progress must be auto, bar, plain or none, got %q", c.Progress))
	case c.WaitTimeout <= 0:
		return c, usageError(fmt.Errorf("--wait-timeout must be > 0, got %s", c.WaitTimeout))
	case c.MaxInFlight < 1:
		return c, usageError(fmt.Errorf("--max-in-flight must be >= 1, got %d", c.MaxInFlight))
	}
	return c, nil
}
