// Package config turns environment variables and flags into the settings of
// the producer and the consumer. Every setting is a flag whose default comes
// from its environment variable, so `--help` lists them all with the values
// in effect. Only cmd/ calls it; other packages take plain values.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/viswals/viswals/emailcrypt"
)

// Defaults point at the services on localhost with their stock credentials.
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
	DefaultRabbitURL   = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultQueue       = "users"
	// DefaultConsumerAddr listens on loopback only: reaching the API from
	// elsewhere is a choice made by setting CONSUMER_PORT.
	DefaultConsumerAddr = "127.0.0.1:8080"
)

// Getenv looks up an environment variable; "" means unset.
type Getenv func(string) string

// WithDotEnv returns a Getenv that falls back to the KEY=VALUE lines of the
// file at path (when it exists) for variables the environment does not set.
func WithDotEnv(getenv Getenv, path string) (Getenv, error) {
	vars, err := godotenv.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return getenv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return vars[k]
	}, nil
}

// set registers settings on a FlagSet with defaults from the environment and
// remembers parse errors of environment values, reported after Parse.
type set struct {
	fs     *flag.FlagSet
	getenv Getenv
	errs   []error
	urls   []namedURL // checked by parse
}

type namedURL struct {
	name string
	p    *string
	list bool // comma-separated URLs
}

func (s *set) env(name, def string) string {
	if v := s.getenv(name); v != "" {
		return v
	}
	return def
}

func (s *set) String(p *string, flagName, envName, def, usage string) {
	s.fs.StringVar(p, flagName, s.env(envName, def), usage+envHint(envName))
}

// Secret is String for a value --help must not print: it shows only that
// the value is set. The value may also come from the file named by
// envName+"_FILE" (see secretEnv).
func (s *set) Secret(p *string, flagName, envName, def, usage string) {
	*p = s.secretEnv(envName, def)
	s.fs.Var(hidden{p: p, show: func(string) string { return "set, not shown" }}, flagName, usage+secretHint(envName))
}

// URL is String for a URL that may carry a password: --help shows it with
// the password replaced. Like a Secret, it may come from a file.
func (s *set) URL(p *string, flagName, envName, def, usage string) {
	*p = s.secretEnv(envName, def)
	s.fs.Var(hidden{p: p, show: RedactURL}, flagName, usage+secretHint(envName))
	s.urls = append(s.urls, namedURL{name: envName, p: p})
}

// EncryptionKeys are the settings of the email encryption keys: one key,
// or a list whose first key seals. Keyring makes them a keyring; every
// program that seals or opens emails takes them so.
type EncryptionKeys struct {
	EncryptionKey  string // ENCRYPTION_KEY: one key, id v1
	EncryptionKeys string // ENCRYPTION_KEYS: id:key,id:key, the primary first
}

// Keyring returns the keyring of the settings, or an error that names the
// setting at fault (ErrUsage) and holds no key material.
func (k EncryptionKeys) Keyring() (*emailcrypt.Keyring, error) {
	ring, err := emailcrypt.ParseKeyring(k.EncryptionKey, k.EncryptionKeys)
	if err != nil {
		return nil, usageError(err)
	}
	return ring, nil
}

// encryptionKeys registers the key settings.
func (s *set) encryptionKeys(k *EncryptionKeys) {
	s.Secret(&k.EncryptionKey, "encryption-key", "ENCRYPTION_KEY", "", "`key`: 32 random bytes, base64 or hex (openssl rand -base64 32); this or ENCRYPTION_KEYS is required")
	s.Secret(&k.EncryptionKeys, "encryption-keys", "ENCRYPTION_KEYS", "", "`id:key,id:key`: several keys for rotation; the first seals, all open (see docs/security.md)")
}

// URLList is URL for a comma-separated list of URLs (the nodes of a
// cluster): each is shown with its password replaced, and checked.
func (s *set) URLList(p *string, flagName, envName, def, usage string) {
	*p = s.secretEnv(envName, def)
	s.fs.Var(hidden{p: p, show: RedactURLList}, flagName, usage+secretHint(envName))
	s.urls = append(s.urls, namedURL{name: envName, p: p, list: true})
}

// FileSuffix names the variable that holds the path of a file with a
// secret's value instead of the value: ENCRYPTION_KEY_FILE for
// ENCRYPTION_KEY, the convention of container secrets (mounted as files,
// which other processes and `docker inspect` do not show).
const FileSuffix = "_FILE"

// secretEnv returns the value of the secret envName: from the variable,
// or from the file named by envName_FILE with one trailing line end
// removed, or def when neither is set. Setting both is an error, as is a
// file that cannot be read or is empty. Errors name the variables and the
// path, never the content.
func (s *set) secretEnv(envName, def string) string {
	fileVar := envName + FileSuffix
	v, path := s.getenv(envName), s.getenv(fileVar)
	switch {
	case path == "" && v == "":
		return def
	case path == "":
		return v
	case v != "":
		s.errs = append(s.errs, fmt.Errorf("both %s and %s are set; set one", envName, fileVar))
		return def
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below
		}
		s.errs = append(s.errs, fmt.Errorf("%s: cannot read %s: %v", fileVar, path, err))
		return def
	}
	v = strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if strings.TrimSpace(v) == "" {
		s.errs = append(s.errs, fmt.Errorf("%s: %s is empty", fileVar, path))
		return def
	}
	return v
}

// hidden is a string flag whose value is printed (by --help, or the usage
// after a flag error) only as show makes it.
type hidden struct {
	p    *string
	show func(string) string
}

func (h hidden) String() string {
	if h.p == nil || *h.p == "" {
		return ""
	}
	return h.show(*h.p)
}

func (h hidden) Set(v string) error {
	*h.p = v
	return nil
}

// RedactURL returns u with its password replaced, or a placeholder when u
// does not parse (it could hold a password anywhere then).
func RedactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return "(malformed URL, not shown)"
	}
	return parsed.Redacted()
}

// RedactURLList is RedactURL for a comma-separated list of URLs; one
// malformed URL hides the whole list.
func RedactURLList(list string) string {
	parts := strings.Split(list, ",")
	for i, u := range parts {
		parts[i] = RedactURL(strings.TrimSpace(u))
		if strings.HasPrefix(parts[i], "(malformed") {
			return "(malformed URL list, not shown)"
		}
	}
	return strings.Join(parts, ",")
}

func (s *set) Int(p *int, flagName, envName string, def int, usage string) {
	v := def
	if raw := s.getenv(envName); raw != "" {
		if _, err := fmt.Sscan(raw, &v); err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not an integer", envName, raw))
		}
	}
	s.fs.IntVar(p, flagName, v, usage+envHint(envName))
}

func (s *set) Float(p *float64, flagName, envName string, def float64, usage string) {
	v := def
	if raw := s.getenv(envName); raw != "" {
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not a number", envName, raw))
		}
		v = f
	}
	s.fs.Float64Var(p, flagName, v, usage+envHint(envName))
}

func (s *set) Duration(p *time.Duration, flagName, envName string, def time.Duration, usage string) {
	v := def
	if raw := s.getenv(envName); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not a duration like 30s or 24h", envName, raw))
		}
		v = d
	}
	s.fs.DurationVar(p, flagName, v, usage+envHint(envName))
}

func (s *set) Bool(p *bool, flagName, envName string, def bool, usage string) {
	v := def
	if raw := s.getenv(envName); raw != "" {
		switch strings.ToLower(raw) {
		case "1", "true", "yes", "on":
			v = true
		case "0", "false", "no", "off":
			v = false
		default:
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not true or false", envName, raw))
		}
	}
	s.fs.BoolVar(p, flagName, v, usage+envHint(envName))
}

func (s *set) parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	// A malformed URL is refused here, by a message without the URL: the
	// parsers of the clients would echo it, password included.
	for _, u := range s.urls {
		values := []string{*u.p}
		if u.list {
			values = strings.Split(*u.p, ",")
		}
		for i, v := range values {
			if u.list && strings.TrimSpace(v) == "" {
				s.errs = append(s.errs, fmt.Errorf("%s (entry %d) is empty", u.name, i+1))
				continue
			}
			if _, err := url.Parse(strings.TrimSpace(v)); err != nil {
				var ue *url.Error
				if errors.As(err, &ue) {
					err = ue.Err
				}
				name := u.name
				if len(values) > 1 {
					name = fmt.Sprintf("%s (entry %d)", u.name, i+1)
				}
				s.errs = append(s.errs, fmt.Errorf("%s is not a valid URL: %v", name, err))
			}
		}
	}
	return errors.Join(s.errs...)
}

func secretHint(name string) string {
	return " (env " + name + " or " + name + FileSuffix + ")"
}

func envHint(name string) string {
	if name == "" {
		return ""
	}
	return " (env " + name + ")"
}

// ErrUsage marks errors in the command line or settings (exit code 2).
var ErrUsage = errors.New("usage")

func usageError(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUsage, err)
}

// RabbitTopology is how the producer, the consumer and the dlq commands
// declare the work queue and its dead-letter queue; all of them must
// agree, so they read the same settings. Its fields match
// rabbitmq.Topology, which cmd/ converts it to.
type RabbitTopology struct {
	Type          string // quorum or classic
	DeliveryLimit int
	DLQTTL        time.Duration
	DLQMaxLength  int
}

func (s *set) rabbitTopology(t *RabbitTopology) {
	s.String(&t.Type, "queue-type", "RABBITMQ_QUEUE_TYPE", "quorum", "queue type of the work queue and its dead-letter queue: quorum (replicated on a cluster, with a delivery limit) or classic")
	s.Int(&t.DeliveryLimit, "delivery-limit", "RABBITMQ_DELIVERY_LIMIT", 20, "quorum queues: deliveries of a message (each crash of a consumer holding it counts) before the broker dead-letters it")
	s.Duration(&t.DLQTTL, "dlq-ttl", "RABBITMQ_DLQ_TTL", 7*24*time.Hour, "how long the dead-letter queue keeps a message before the broker drops it")
	s.Int(&t.DLQMaxLength, "dlq-max-length", "RABBITMQ_DLQ_MAX_LENGTH", 1_000_000, "messages the dead-letter queue keeps at most; beyond it the broker drops the oldest")
}

// check reports settings no broker accepts.
func (t RabbitTopology) check() error {
	switch {
	case t.Type != "quorum" && t.Type != "classic":
		return fmt.Errorf("RABBITMQ_QUEUE_TYPE must be quorum or classic, got %q", t.Type)
	case t.DeliveryLimit < 1:
		return fmt.Errorf("RABBITMQ_DELIVERY_LIMIT must be >= 1, got %d", t.DeliveryLimit)
	case t.DLQTTL < time.Millisecond:
		return fmt.Errorf("RABBITMQ_DLQ_TTL must be at least 1ms, got %s", t.DLQTTL)
	case t.DLQMaxLength < 1:
		return fmt.Errorf("RABBITMQ_DLQ_MAX_LENGTH must be >= 1, got %d", t.DLQMaxLength)
	}
	return nil
}
