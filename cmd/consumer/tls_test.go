package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/internal/tlstest"
	"github.com/viswals/viswals/internal/wait"
)

// apiCerts are a CA and the certificates the TLS tests of the API use.
type apiCerts struct {
	dir      string
	ca       *tlstest.CA
	server   tlstest.Pair
	renewed  tlstest.Pair
	expired  tlstest.Pair
	client   tlstest.Pair
	certFile string // where the consumer reads its pair: server's, then renewed's
	keyFile  string
}

func newAPICerts(t *testing.T) *apiCerts {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlstest.NewCA(dir)
	require.NoError(t, err)
	c := &apiCerts{dir: dir, ca: ca, certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	for _, x := range []struct {
		p    *tlstest.Pair
		name string
		leaf tlstest.Leaf
	}{
		{&c.server, "server", tlstest.Leaf{Hosts: tlstest.Localhost}},
		{&c.renewed, "renewed", tlstest.Leaf{Hosts: tlstest.Localhost}},
		{&c.expired, "expired", tlstest.Leaf{Hosts: tlstest.Localhost, Expired: true}},
		{&c.client, "client", tlstest.Leaf{Client: true}},
	} {
		*x.p, err = ca.Issue(dir, x.name, x.leaf)
		require.NoError(t, err)
	}
	c.install(t, c.server)
	return c
}

// install makes p the pair the consumer reads, each file replaced whole.
func (c *apiCerts) install(t *testing.T, p tlstest.Pair) {
	t.Helper()
	require.NoError(t, tlstest.Install(p, c.certFile, c.keyFile))
}

// client trusts the test CA, presents cert when given, and speaks HTTP/2.
func (c *apiCerts) httpClient(cert *tlstest.Pair) *http.Client {
	cfg := &tls.Config{RootCAs: c.ca.Pool()}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS}
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

// The API over HTTPS: HTTP/2, HSTS, the probes, the health check command,
// and a renewed certificate served without a restart.
func TestAPIOverTLS(t *testing.T) {
	t.Parallel()
	certs := newAPICerts(t)
	e := newTestEnv(t)
	e.vars["TLS_CERT_FILE"], e.vars["TLS_KEY_FILE"] = certs.certFile, certs.keyFile
	e.vars["TLS_RELOAD_INTERVAL"] = "20ms"
	client := certs.httpClient(nil)
	base := e.startConsumerWith(t, client)
	require.True(t, strings.HasPrefix(base, "https://"), base)

	wait.For(t, time.Minute, "/readyz over TLS", func() (bool, string) {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	for _, path := range []string{"/healthz", "/readyz", "/users?limit=1"} {
		resp, err := client.Get(base + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, body)
		assert.Equal(t, 2, resp.ProtoMajor, "GET %s: protocol %s", path, resp.Proto)
		assert.Equal(t, "max-age=31536000", resp.Header.Get("Strict-Transport-Security"), "GET %s", path)
	}

	// Plain HTTP to the HTTPS port is answered, in plain HTTP, by a refusal.
	resp, err := http.Get("http://" + strings.TrimPrefix(base, "https://") + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// The image's health check speaks HTTPS when TLS is on. It gives up
	// after a short time of its own, which a starved machine can exceed:
	// it is asked again until it passes (over plain HTTP it never would).
	vars := map[string]string{"CONSUMER_PORT": strings.TrimPrefix(base, "https://")}
	for k, v := range e.vars {
		vars[k] = v
	}
	wait.For(t, time.Minute, "the health check to pass", func() (bool, string) {
		err := run(context.Background(), []string{"healthcheck"}, func(k string) string { return vars[k] }, strings.NewReader(""), io.Discard, io.Discard)
		return err == nil, fmt.Sprint(err)
	})

	serial := func() string {
		resp, err := certs.httpClient(nil).Get(base + "/healthz")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	assert.Equal(t, certs.server.TLS.Leaf.SerialNumber.String(), serial())
	certs.install(t, certs.renewed)
	want := certs.renewed.TLS.Leaf.SerialNumber.String()
	wait.For(t, time.Minute, "the renewed certificate to be served", func() (bool, string) {
		got := serial()
		return got == want, got
	})

	// An expired renewal is refused and logged; the renewed one stays.
	// (A poll between the renewal's two files may have logged a mismatch:
	// only what comes after counts.)
	before := len(e.logs.String())
	certs.install(t, certs.expired)
	wait.For(t, time.Minute, "the expired certificate to be reported", func() (bool, string) {
		after := e.logs.String()[before:]
		return strings.Contains(after, "still serving the previous certificate") && strings.Contains(after, "expired at"), after
	})
	assert.Equal(t, want, serial())
}

// With TLS_CLIENT_CA_FILE a client without a certificate of that CA is
// refused at the handshake; one with it is served.
func TestAPIClientCertificates(t *testing.T) {
	t.Parallel()
	certs := newAPICerts(t)
	e := newTestEnv(t)
	e.vars["TLS_CERT_FILE"], e.vars["TLS_KEY_FILE"] = certs.certFile, certs.keyFile
	e.vars["TLS_CLIENT_CA_FILE"] = certs.ca.CertFile
	good := certs.httpClient(&certs.client)
	base := e.startConsumerWith(t, good)

	resp, err := good.Get(base + "/users?limit=1")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, resp.ProtoMajor)

	err = tlstest.Handshake(strings.TrimPrefix(base, "https://"), &tls.Config{RootCAs: certs.ca.Pool()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate required")
}

// Certificate settings that cannot work stop the consumer at start, before
// it connects to anything, with a message naming the setting and the file.
func TestBadTLSFilesStopTheConsumer(t *testing.T) {
	t.Parallel()
	certs := newAPICerts(t)
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	empty := filepath.Join(certs.dir, "empty.pem")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	missing := filepath.Join(certs.dir, "missing.pem")
	tests := []struct {
		name  string
		vars  map[string]string
		usage bool // a usage error (exit code 2)
		want  []string
	}{
		{"certificate without key", map[string]string{"TLS_CERT_FILE": certs.certFile}, true,
			[]string{"TLS_CERT_FILE and TLS_KEY_FILE go together"}},
		{"missing certificate", map[string]string{"TLS_CERT_FILE": missing, "TLS_KEY_FILE": certs.keyFile}, false,
			[]string{"TLS_CERT_FILE", missing, "no such file or directory"}},
		{"missing key", map[string]string{"TLS_CERT_FILE": certs.certFile, "TLS_KEY_FILE": missing}, false,
			[]string{"TLS_KEY_FILE", missing, "no such file or directory"}},
		{"key of another certificate", map[string]string{"TLS_CERT_FILE": certs.certFile, "TLS_KEY_FILE": certs.client.KeyFile}, false,
			[]string{certs.certFile, certs.client.KeyFile, "private key does not match public key"}},
		{"not a certificate", map[string]string{"TLS_CERT_FILE": empty, "TLS_KEY_FILE": certs.keyFile}, false,
			[]string{empty, "failed to find any PEM data"}},
		{"expired", map[string]string{"TLS_CERT_FILE": certs.expired.CertFile, "TLS_KEY_FILE": certs.expired.KeyFile}, false,
			[]string{certs.expired.CertFile, "expired at"}},
		{"missing client CA", map[string]string{"TLS_CERT_FILE": certs.certFile, "TLS_KEY_FILE": certs.keyFile, "TLS_CLIENT_CA_FILE": missing}, false,
			[]string{"TLS_CLIENT_CA_FILE", missing, "no such file or directory"}},
		{"client CA without certificates", map[string]string{"TLS_CERT_FILE": certs.certFile, "TLS_KEY_FILE": certs.keyFile, "TLS_CLIENT_CA_FILE": empty}, false,
			[]string{"TLS_CLIENT_CA_FILE", empty, "holds no PEM certificate"}},
		{"missing Redis CA", map[string]string{"REDIS_CONN_URL": "rediss://127.0.0.1:1/0", "REDIS_CA_FILE": missing}, false,
			[]string{"REDIS_CA_FILE", missing, "no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{
				"ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(key),
				"CONSUMER_PORT":  "127.0.0.1:0",
				// Nothing answers there: the consumer must stop before.
				"POSTGRES_CONN_URL": "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable",
			}
			for k, v := range tt.vars {
				vars[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			err := run(ctx, nil, func(k string) string { return vars[k] }, strings.NewReader(""), io.Discard, &stderr)
			require.Error(t, err)
			assert.NotErrorIs(t, err, context.DeadlineExceeded, "the consumer waited instead of stopping")
			assert.Equal(t, tt.usage, config.ExitCode("consumer", err, io.Discard) == 2, "usage error: %v", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
