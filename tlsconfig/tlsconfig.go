// Package tlsconfig builds the TLS configurations of the service: the API
// server's, whose certificate is re-read from its files when they change
// (a renewed certificate is served without a restart), and the pools of
// CA certificates that clients trust.
package tlsconfig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Server returns the configuration of a TLS server that serves the
// certificate certs holds, TLS 1.2 or later, HTTP/2 or HTTP/1.1. With a
// clientCAFile every client must present a certificate signed by one of its
// CAs; the handshake of one that does not fails.
func Server(certs *Reloader, clientCAFile string) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if clientCAFile != "" {
		pool, err := CertPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// CertPool reads PEM CA certificates from file. A file that holds none is
// an error: a pool trusting nothing would fail every handshake later, with
// a message far from its cause.
func CertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// Reloader holds a certificate and its key read from two files, and reads
// them again when their content changes (Reload, or Run every interval).
// A new pair that does not load (half written, mismatched, expired) is
// reported and the previous one is kept: a bad renewal never takes the
// server down.
type Reloader struct {
	certFile, keyFile string
	logger            *slog.Logger
	now               func() time.Time

	cur atomic.Pointer[loaded]

	mu sync.Mutex // serialises Reload
}

// loaded is a pair in use and the file contents it came from.
type loaded struct {
	cert         *tls.Certificate
	certPEM, key []byte
}

// NewReloader loads the pair, and fails when it does not load: a server
// must not start without a certificate it can serve. logger (nil discards)
// gets the reloads and their failures.
func NewReloader(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, logger: logger, now: time.Now}
	l, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(l)
	return r, nil
}

// GetCertificate is tls.Config.GetCertificate: the pair loaded last.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load().cert, nil
}

// Leaf is the certificate served now.
func (r *Reloader) Leaf() *x509.Certificate { return r.cur.Load().cert.Leaf }

// Reload reads the files and, when their content changed and loads, serves
// the new pair from the next handshake on. It reports whether it did; the
// error is why a changed pair was not taken.
func (r *Reloader) Reload() (bool, error) {
	changed, _, err := r.reload()
	return changed, err
}

// reload is Reload, also returning a digest of what failed to load.
func (r *Reloader) reload() (changed bool, bad [sha256.Size]byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, key, err := r.read()
	if err != nil {
		return false, sha256.Sum256([]byte(err.Error())), err
	}
	cur := r.cur.Load()
	if bytes.Equal(certPEM, cur.certPEM) && bytes.Equal(key, cur.key) {
		return false, bad, nil
	}
	l, err := r.parse(certPEM, key)
	if err != nil {
		return false, sha256.Sum256(append(append([]byte(nil), certPEM...), key...)), err
	}
	r.cur.Store(l)
	return true, bad, nil
}

// Run calls Reload every interval until ctx is done, logging each new
// certificate and each pair that fails to load (see failures).
func (r *Reloader) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var f failures
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, bad, err := r.reload()
		if f.report(err != nil, bad) {
			r.logger.Error("TLS certificate files changed but do not load; still serving the previous certificate",
				"cert_file", r.certFile, "key_file", r.keyFile, "err", err)
		}
		if changed {
			leaf := r.Leaf()
			r.logger.Info("TLS certificate reloaded", "cert_file", r.certFile, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
		}
	}
}

// failures decides which failed polls are logged: a pair that fails is
// logged once, when two polls in a row found it. A renewal replaces the
// two files one after the other, and a poll between the two is no failure;
// a bad pair that stays must not fill the log either.
type failures struct {
	last     [sha256.Size]byte // what failed at the previous poll
	failed   bool              // the previous poll failed
	reported bool              // last has been logged
}

// report records a poll (failed or not, and the digest of what failed) and
// says whether to log it.
func (f *failures) report(failed bool, bad [sha256.Size]byte) bool {
	if !failed {
		*f = failures{}
		return false
	}
	again := f.failed && bad == f.last
	if !again {
		f.reported = false
	}
	f.last, f.failed = bad, true
	if again && !f.reported {
		f.reported = true
		return true
	}
	return false
}

func (r *Reloader) load() (*loaded, error) {
	certPEM, key, err := r.read()
	if err != nil {
		return nil, err
	}
	return r.parse(certPEM, key)
}

func (r *Reloader) read() (certPEM, key []byte, err error) {
	// os errors name the file already.
	if certPEM, err = os.ReadFile(r.certFile); err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	if key, err = os.ReadFile(r.keyFile); err != nil {
		return nil, nil, fmt.Errorf("key: %w", err)
	}
	return certPEM, key, nil
}

// ErrExpired marks a certificate outside its validity period.
var ErrExpired = errors.New("outside its validity period")

func (r *Reloader) parse(certPEM, key []byte) (*loaded, error) {
	cert, err := tls.X509KeyPair(certPEM, key)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	leaf := cert.Leaf // parsed by X509KeyPair
	now := r.now()
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("certificate %s expired at %s: %w", r.certFile, leaf.NotAfter.UTC().Format(time.RFC3339), ErrExpired)
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("certificate %s is valid only from %s: %w", r.certFile, leaf.NotBefore.UTC().Format(time.RFC3339), ErrExpired)
	}
	return &loaded{cert: &cert, certPEM: certPEM, key: key}, nil
}
