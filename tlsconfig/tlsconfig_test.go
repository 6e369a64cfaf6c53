package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/internal/logbuf"
	"github.com/viswals/viswals/internal/tlstest"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/tlsconfig"
)

// certs are one test's CA and certificates, in a directory of its own.
type certs struct {
	dir       string
	ca        *tlstest.CA
	server    tlstest.Pair // for localhost, signed by ca
	expired   tlstest.Pair
	wrongHost tlstest.Pair
	untrusted tlstest.Pair // signed by a CA the clients do not trust
	client    tlstest.Pair // a client certificate signed by ca
	strangerC tlstest.Pair // a client certificate signed by the untrusted CA
}

func newCerts(t *testing.T) *certs {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlstest.NewCA(dir)
	require.NoError(t, err)
	other, err := tlstest.NewUntrustedCA(dir, "other-ca")
	require.NoError(t, err)
	c := &certs{dir: dir, ca: ca}
	for _, x := range []struct {
		p    *tlstest.Pair
		ca   *tlstest.CA
		name string
		leaf tlstest.Leaf
	}{
		{&c.server, ca, "server", tlstest.Leaf{Hosts: tlstest.Localhost}},
		{&c.expired, ca, "expired", tlstest.Leaf{Hosts: tlstest.Localhost, Expired: true}},
		{&c.wrongHost, ca, "wrong-host", tlstest.Leaf{Hosts: []string{"api.example.com"}}},
		{&c.untrusted, other, "untrusted", tlstest.Leaf{Hosts: tlstest.Localhost}},
		{&c.client, ca, "client", tlstest.Leaf{Client: true}},
		{&c.strangerC, other, "stranger", tlstest.Leaf{Client: true}},
	} {
		*x.p, err = x.ca.Issue(dir, x.name, x.leaf)
		require.NoError(t, err)
	}
	return c
}

func install(t *testing.T, p tlstest.Pair, certFile, keyFile string) {
	t.Helper()
	require.NoError(t, tlstest.Install(p, certFile, keyFile))
}

// serve starts an HTTPS server with cfg that answers 200 and the protocol,
// and returns its URL.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto)
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes, on purpose
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// client trusts roots and presents cert, when given, and speaks HTTP/2
// when the server offers it.
func client(roots *x509.CertPool, cert *tlstest.Pair) *http.Client {
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS}
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

// served returns the serial number of the certificate the server at url
// presents.
func served(t *testing.T, url string, roots *x509.CertPool) string {
	t.Helper()
	resp, err := client(roots, nil).Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}

func TestServesHTTP2WithTLS12OrLater(t *testing.T) {
	t.Parallel()
	c := newCerts(t)
	r, err := tlsconfig.NewReloader(c.server.CertFile, c.server.KeyFile, nil)
	require.NoError(t, err)
	cfg, err := tlsconfig.Server(r, "")
	require.NoError(t, err)
	url := serve(t, cfg)

	resp, err := client(c.ca.Pool(), nil).Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 2, resp.ProtoMajor, "protocol")
	assert.Equal(t, "HTTP/2.0", string(body))
	assert.GreaterOrEqual(t, resp.TLS.Version, uint16(tls.VersionTLS12))

	old := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: c.ca.Pool(), MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11,
	}}}
	_, err = old.Get(url)
	require.Error(t, err, "a TLS 1.1 client must be refused")
	assert.Contains(t, err.Error(), "protocol version")
}

// A client refuses a server certificate that is expired, for another host
// or signed by a CA it does not trust, saying which.
func TestClientRefusesBadServerCertificates(t *testing.T) {
	t.Parallel()
	c := newCerts(t)
	tests := []struct {
		name string
		pair tlstest.Pair
		want string
	}{
		{"expired", c.expired, "certificate has expired"},
		{"wrong host", c.wrongHost, "certificate is valid for api.example.com, not localhost"},
		{"untrusted CA", c.untrusted, "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Served as is: the reloader itself refuses an expired pair.
			url := serve(t, &tls.Config{Certificates: []tls.Certificate{tt.pair.TLS}})
			_, err := client(c.ca.Pool(), nil).Get(strings.Replace(url, "127.0.0.1", "localhost", 1))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Pairs that cannot be served are refused at start with the file named.
func TestNewReloaderRefusesBadFiles(t *testing.T) {
	t.Parallel()
	c := newCerts(t)
	garbage := filepath.Join(c.dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate\n"), 0o600))
	unreadable := filepath.Join(c.dir, "unreadable.key")
	require.NoError(t, os.WriteFile(unreadable, nil, 0o000))
	missing := filepath.Join(c.dir, "missing.pem")
	tests := []struct {
		name      string
		cert, key string
		want      []string
	}{
		{"missing certificate", missing, c.server.KeyFile, []string{"certificate", missing, "no such file"}},
		{"missing key", c.server.CertFile, missing, []string{"key", missing, "no such file"}},
		{"not PEM", garbage, c.server.KeyFile, []string{garbage, "failed to find any PEM data"}},
		{"key of another certificate", c.server.CertFile, c.client.KeyFile, []string{c.server.CertFile, c.client.KeyFile, "private key does not match public key"}},
		{"expired", c.expired.CertFile, c.expired.KeyFile, []string{c.expired.CertFile, "expired at"}},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct {
			name      string
			cert, key string
			want      []string
		}{"unreadable key", c.server.CertFile, unreadable, []string{unreadable, "permission denied"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tlsconfig.NewReloader(tt.cert, tt.key, nil)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// A renewed pair is served from the next handshake on, without a restart;
// a bad one is reported and the previous pair stays.
func TestReloadsChangedFiles(t *testing.T) {
	t.Parallel()
	c := newCerts(t)
	certFile, keyFile := filepath.Join(c.dir, "tls.crt"), filepath.Join(c.dir, "tls.key")
	install(t, c.server, certFile, keyFile)
	var logs logbuf.Buffer
	r, err := tlsconfig.NewReloader(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	cfg, err := tlsconfig.Server(r, "")
	require.NoError(t, err)
	url := serve(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go r.Run(ctx, 10*time.Millisecond)

	first := served(t, url, c.ca.Pool())
	assert.Equal(t, c.server.TLS.Leaf.SerialNumber.String(), first)

	renewed, err := c.ca.Issue(c.dir, "renewed", tlstest.Leaf{Hosts: tlstest.Localhost})
	require.NoError(t, err)
	install(t, renewed, certFile, keyFile)
	want := renewed.TLS.Leaf.SerialNumber.String()
	wait.For(t, time.Minute, "the renewed certificate to be served", func() (bool, string) {
		got := served(t, url, c.ca.Pool())
		return got == want, "serial " + got
	})
	wait.For(t, time.Minute, "the reload to be logged", func() (bool, string) {
		return strings.Contains(logs.String(), "TLS certificate reloaded"), logs.String()
	})

	// A key that does not match: the renewed pair stays, the error is logged.
	before := len(logs.String())
	install(t, tlstest.Pair{CertFile: renewed.CertFile, KeyFile: c.client.KeyFile}, certFile, keyFile)
	wait.For(t, time.Minute, "the bad pair to be reported", func() (bool, string) {
		return strings.Contains(logs.String()[before:], "still serving the previous certificate"), logs.String()[before:]
	})
	assert.Contains(t, logs.String()[before:], "private key does not match public key")
	assert.Equal(t, want, served(t, url, c.ca.Pool()), "the previous certificate is still served")

	// An expired renewal is refused the same way.
	changed, err := r.Reload()
	assert.False(t, changed)
	require.Error(t, err)
	install(t, c.expired, certFile, keyFile)
	changed, err = r.Reload()
	assert.False(t, changed)
	require.ErrorIs(t, err, tlsconfig.ErrExpired)
	assert.Equal(t, want, served(t, url, c.ca.Pool()))
}

func TestClientCertificatesRequired(t *testing.T) {
	t.Parallel()
	c := newCerts(t)
	r, err := tlsconfig.NewReloader(c.server.CertFile, c.server.KeyFile, nil)
	require.NoError(t, err)
	cfg, err := tlsconfig.Server(r, c.ca.CertFile)
	require.NoError(t, err)
	url := serve(t, cfg)

	tests := []struct {
		name string
		cert *tlstest.Pair
		want string
	}{
		{"no certificate", nil, "certificate required"},
		// The client offers only a certificate of a CA the server names.
		{"certificate of another CA", &c.strangerC, "certificate required"},
		{"server certificate as client", &c.server, "bad certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := handshake(strings.TrimPrefix(url, "https://"), c.ca.Pool(), tt.cert)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	t.Run("good certificate", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, handshake(strings.TrimPrefix(url, "https://"), c.ca.Pool(), &c.client))
		resp, err := client(c.ca.Pool(), &c.client).Get(url)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

// handshake connects to addr presenting cert (if any) and returns the
// server's verdict.
func handshake(addr string, roots *x509.CertPool, cert *tlstest.Pair) error {
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS}
	}
	return tlstest.Handshake(addr, cfg)
}

func TestCertPool(t *testing.T) {
	t.Parallel()
	c := newCerts(t)
	pool, err := tlsconfig.CertPool(c.ca.CertFile)
	require.NoError(t, err)
	_, err = c.server.TLS.Leaf.Verify(x509.VerifyOptions{Roots: pool})
	assert.NoError(t, err)

	empty := filepath.Join(c.dir, "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("# nothing\n"), 0o600))
	_, err = tlsconfig.CertPool(empty)
	require.Error(t, err)
	assert.Contains(t, err.Error(), empty+" holds no PEM certificate")

	_, err = tlsconfig.CertPool(filepath.Join(c.dir, "missing.pem"))
	require.True(t, errors.Is(err, os.ErrNotExist), "err = %v", err)
	assert.Contains(t, err.Error(), "missing.pem")
}
